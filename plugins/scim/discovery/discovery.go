// Package discovery builds the SCIM discovery documents (RFC 7644 §4): ServiceProviderConfig,
// ResourceTypes and Schemas, generated from the same definitions that drive filters and PATCH so
// that they can only tell the truth.
package discovery

import (
	"strings"

	"github.com/gatehouse/gatehouse/plugins/scim/protocol"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
)

// Schema URNs of the discovery resources (RFC 7643 §8.7.2).
const (
	ServiceProviderConfigSchema = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	ResourceTypeSchema          = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	SchemaSchema                = "urn:ietf:params:scim:schemas:core:2.0:Schema"
)

// Meta is the meta attribute of a discovery resource.
type Meta struct {
	ResourceType string `json:"resourceType"`
	Location     string `json:"location"`
}

type supported struct {
	Supported bool `json:"supported"`
}

type bulk struct {
	Supported      bool `json:"supported"`
	MaxOperations  int  `json:"maxOperations"`
	MaxPayloadSize int  `json:"maxPayloadSize"`
}

type filterSupport struct {
	Supported  bool `json:"supported"`
	MaxResults int  `json:"maxResults"`
}

// AuthenticationScheme describes how clients authenticate.
type AuthenticationScheme struct {
	Type        string `json:"type"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Primary     bool   `json:"primary"`
}

// ServiceProviderConfig is the /ServiceProviderConfig document.
type ServiceProviderConfig struct {
	Schemas               []string               `json:"schemas"`
	DocumentationURI      string                 `json:"documentationUri,omitempty"`
	Patch                 supported              `json:"patch"`
	Bulk                  bulk                   `json:"bulk"`
	Filter                filterSupport          `json:"filter"`
	ChangePassword        supported              `json:"changePassword"`
	Sort                  supported              `json:"sort"`
	ETag                  supported              `json:"etag"`
	AuthenticationSchemes []AuthenticationScheme `json:"authenticationSchemes"`
	Meta                  Meta                   `json:"meta"`
}

// NewServiceProviderConfig returns the document for a server whose SCIM base URL is baseURL
// (no trailing slash). What it claims is what the server does: PATCH, filters (up to
// protocol.MaxResults per page), sorting (sortBy on the attributes plugins/scim/server sorts by,
// 400 invalidValue on others) and ETags; no bulk, no password change.
func NewServiceProviderConfig(baseURL string) ServiceProviderConfig {
	return ServiceProviderConfig{
		Schemas: []string{ServiceProviderConfigSchema},
		Patch:   supported{true},
		Bulk:    bulk{Supported: false},
		Filter:  filterSupport{Supported: true, MaxResults: protocol.MaxResults},
		// Passwords are never stored: Gatehouse users sign in through SSO.
		ChangePassword: supported{false},
		Sort:           supported{true},
		ETag:           supported{true},
		AuthenticationSchemes: []AuthenticationScheme{{
			Type:        "oauthbearertoken",
			Name:        "OAuth Bearer Token",
			Description: "A static bearer token in the HTTP Authorization header (Okta's \"HTTP Header\" mode).",
			Primary:     true,
		}},
		Meta: Meta{ResourceType: "ServiceProviderConfig", Location: trim(baseURL) + "/ServiceProviderConfig"},
	}
}

// SchemaExtension names an extension of a resource type.
type SchemaExtension struct {
	Schema   string `json:"schema"`
	Required bool   `json:"required"`
}

// ResourceType is one /ResourceTypes document.
type ResourceType struct {
	Schemas          []string          `json:"schemas"`
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Endpoint         string            `json:"endpoint"`
	Description      string            `json:"description"`
	Schema           string            `json:"schema"`
	SchemaExtensions []SchemaExtension `json:"schemaExtensions,omitempty"`
	Meta             Meta              `json:"meta"`
}

// NewResourceType returns the document for rt.
func NewResourceType(baseURL string, rt *schema.ResourceType) ResourceType {
	doc := ResourceType{
		Schemas:     []string{ResourceTypeSchema},
		ID:          rt.ID,
		Name:        rt.Name,
		Endpoint:    rt.Endpoint,
		Description: rt.Description,
		Schema:      rt.Schema.ID,
		Meta:        Meta{ResourceType: "ResourceType", Location: trim(baseURL) + "/ResourceTypes/" + rt.ID},
	}
	for _, e := range rt.Extensions {
		doc.SchemaExtensions = append(doc.SchemaExtensions, SchemaExtension{Schema: e.Schema.ID, Required: e.Required})
	}
	return doc
}

// ResourceTypes returns every resource type document, in a stable order.
func ResourceTypes(baseURL string) []ResourceType {
	var out []ResourceType
	for _, rt := range schema.ResourceTypes() {
		out = append(out, NewResourceType(baseURL, rt))
	}
	return out
}

// ResourceTypeByID returns the document of the resource type id (case-insensitive).
func ResourceTypeByID(baseURL, id string) (ResourceType, bool) {
	for _, rt := range schema.ResourceTypes() {
		if strings.EqualFold(rt.ID, id) {
			return NewResourceType(baseURL, rt), true
		}
	}
	return ResourceType{}, false
}

// Schema is one /Schemas document.
type Schema struct {
	Schemas     []string            `json:"schemas"`
	ID          string              `json:"id"`
	Name        string              `json:"name"`
	Description string              `json:"description"`
	Attributes  []*schema.Attribute `json:"attributes"`
	Meta        Meta                `json:"meta"`
}

// NewSchema returns the document for s.
func NewSchema(baseURL string, s *schema.Schema) Schema {
	return Schema{
		Schemas:     []string{SchemaSchema},
		ID:          s.ID,
		Name:        s.Name,
		Description: s.Description,
		Attributes:  s.Attributes,
		Meta:        Meta{ResourceType: "Schema", Location: trim(baseURL) + "/Schemas/" + s.ID},
	}
}

// Schemas returns every schema document, in a stable order.
func Schemas(baseURL string) []Schema {
	var out []Schema
	for _, s := range schema.Schemas() {
		out = append(out, NewSchema(baseURL, s))
	}
	return out
}

// SchemaByID returns the document of the schema id (case-insensitive).
func SchemaByID(baseURL, id string) (Schema, bool) {
	for _, s := range schema.Schemas() {
		if strings.EqualFold(s.ID, id) {
			return NewSchema(baseURL, s), true
		}
	}
	return Schema{}, false
}

// List wraps discovery documents in a ListResponse (RFC 7644 §4: /Schemas and /ResourceTypes
// answer with one).
func List[T any](docs []T) map[string]any {
	return map[string]any{
		"schemas":      []string{protocol.ListResponseSchema},
		"totalResults": len(docs),
		"startIndex":   1,
		"itemsPerPage": len(docs),
		"Resources":    docs,
	}
}

func trim(s string) string { return strings.TrimRight(s, "/") }
