package services

import (
	"slices"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Labels the SCIM provisioner sets on the users it manages. They are
// internal: written by Gatehouse, read by Gatehouse.
const (
	// LabelSCIMID holds the SCIM id of the record a user was provisioned from.
	LabelSCIMID = "gatehouse.dev/scim-id"
	// LabelSCIMAttributes held a copy of a provisioned user's SCIM attributes
	// in builds before the attributes were kept in the SCIM record only. It is
	// no longer written (a SCIM write removes it), but users stored with it
	// stay valid: it is the one label allowed to be larger than the usual
	// label value limit, up to MaxSCIMAttributesBytes.
	LabelSCIMAttributes = "gatehouse.dev/scim-attributes"
	// MaxSCIMAttributesBytes bounds the SCIM attributes kept for one user.
	MaxSCIMAttributesBytes = 100 << 10
)

// labelValueLimit is the largest value allowed for label key k.
func labelValueLimit(k string) int {
	if k == LabelSCIMAttributes {
		return MaxSCIMAttributesBytes
	}
	return maxLabelValueBytes
}

// AttributeWildcard is the attributes_to_roles value that matches any value
// of the attribute.
const AttributeWildcard = "*"

// RolesFromAttributes returns the roles that connector's attributes_to_roles
// grant to an identity with the given attributes: a mapping applies when the
// identity has an attribute of exactly the mapping's name with a value equal
// to the mapping's value (byte-wise, case-sensitive), or with any non-empty
// value when the mapping's value is AttributeWildcard. The result is sorted
// and free of duplicates; nil when nothing matches or connector is nil.
//
// This is the one role-mapping rule of Gatehouse: SAML login applies it to
// the assertion's attributes, SCIM provisioning to {"groups": <the user's
// SCIM group names>}, so that a user gets the same roles either way.
func RolesFromAttributes(connector *typesv1.SAMLConnector, attrs map[string][]string) []string {
	var roles []string
	for _, m := range connector.GetSpec().GetAttributesToRoles() {
		values := attrs[m.GetName()]
		match := false
		for _, v := range values {
			if v == "" {
				continue
			}
			if m.GetValue() == AttributeWildcard || v == m.GetValue() {
				match = true
				break
			}
		}
		if match {
			roles = append(roles, m.GetRoles()...)
		}
	}
	if len(roles) == 0 {
		return nil
	}
	slices.Sort(roles)
	return slices.Compact(roles)
}
