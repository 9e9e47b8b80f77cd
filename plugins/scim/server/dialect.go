package server

import "strings"

// resourceEndpoints are the endpoint names of RFC 7644 §3.2, as routed.
var resourceEndpoints = []string{"Users", "Groups", "ServiceProviderConfig", "ResourceTypes", "Schemas"}

// canonicalEndpoint returns the RFC spelling of an endpoint name given in any case: Microsoft
// Entra ID sends /users and /groups, and a name differing only in case has no other meaning.
// Anything else is returned unchanged (and answered 404).
func canonicalEndpoint(name string) string {
	for _, e := range resourceEndpoints {
		if strings.EqualFold(name, e) {
			return e
		}
	}
	return name
}
