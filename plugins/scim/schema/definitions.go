package schema

import "sync"

// Schema URNs (RFC 7643 §8.7).
const (
	UserSchema       = "urn:ietf:params:scim:schemas:core:2.0:User"
	GroupSchema      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	EnterpriseSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
)

// Schema is one schema definition as published under /Schemas.
type Schema struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Attributes  []*Attribute `json:"attributes"`
}

// Attribute returns the top-level attribute called name (case-insensitive), or nil.
func (s *Schema) Attribute(name string) *Attribute {
	if s == nil {
		return nil
	}
	return findAttr(s.Attributes, name)
}

// multiValuedStd is the value/display/type/primary shape RFC 7643 §2.4 gives most multi-valued
// attributes; valueType and valueOpts describe "value".
func multiValuedStd(name, desc string, valueType Type, types []string, valueOpts ...func(*Attribute)) *Attribute {
	return attr(name, Complex, desc, multi, subs(
		attr("value", valueType, "The attribute's significant value.", valueOpts...),
		attr("display", String, "A human-readable name, primarily used for display purposes."),
		attr("type", String, "A label indicating the attribute's function.", canonical(types...)),
		attr("primary", Boolean, "Whether this value is the preferred one; at most one value is primary."),
	))
}

// commonAttributes are defined for every resource (RFC 7643 §3.1). They are not listed in any
// schema's attributes under /Schemas, but filters, PATCH and projection need their definitions.
var commonAttributes = []*Attribute{
	attr("id", String, "Unique identifier of the resource, assigned by the service provider.",
		caseExact, readOnly, always, unique(Server)),
	attr("externalId", String, "Identifier of the resource assigned by the provisioning client.",
		caseExact),
	attr("schemas", Reference, "The schema URNs the resource conforms to.",
		multi, caseExact, readOnly, always, refs("uri")),
	attr("meta", Complex, "Resource metadata.", readOnly, always, subs(
		attr("resourceType", String, "The name of the resource type.", caseExact, readOnly),
		attr("created", DateTime, "When the resource was added to the service provider.", readOnly),
		attr("lastModified", DateTime, "When the resource was last updated.", readOnly),
		attr("location", Reference, "The URI of the resource.", readOnly, refs("uri")),
		attr("version", String, "The version (ETag) of the resource.", caseExact, readOnly),
	)),
}

// UserSchemaDef is the core User schema (RFC 7643 §4.1).
var UserSchemaDef = &Schema{
	ID:          UserSchema,
	Name:        "User",
	Description: "User Account",
	Attributes: []*Attribute{
		attr("userName", String, "Unique identifier for the User; the Gatehouse user name.",
			required, unique(Server)),
		attr("name", Complex, "The components of the user's real name.", subs(
			attr("formatted", String, "The full name, formatted for display."),
			attr("familyName", String, "The family name (last name)."),
			attr("givenName", String, "The given name (first name)."),
			attr("middleName", String, "The middle name(s)."),
			attr("honorificPrefix", String, "The honorific prefix(es)."),
			attr("honorificSuffix", String, "The honorific suffix(es)."),
		)),
		attr("displayName", String, "The name of the User, suitable for display."),
		attr("nickName", String, "The casual way to address the user."),
		attr("profileUrl", Reference, "A URI to the user's online profile.", refs("external")),
		attr("title", String, "The user's title, such as \"Vice President\"."),
		attr("userType", String, "The relationship between the organization and the user."),
		attr("preferredLanguage", String, "The user's preferred written or spoken language."),
		attr("locale", String, "The user's default location for localization."),
		attr("timezone", String, "The user's time zone in IANA format."),
		attr("active", Boolean, "The user's administrative status; false deactivates the user."),
		attr("password", String, "The user's cleartext password. Gatehouse never stores nor returns it.",
			writeOnly, never),
		multiValuedStd("emails", "Email addresses for the user.", String, []string{"work", "home", "other"}),
		multiValuedStd("phoneNumbers", "Phone numbers for the user.", String,
			[]string{"work", "home", "mobile", "fax", "pager", "other"}),
		multiValuedStd("ims", "Instant messaging addresses for the user.", String,
			[]string{"aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"}),
		multiValuedStd("photos", "URLs of photos of the user.", Reference, []string{"photo", "thumbnail"},
			refs("external")),
		attr("addresses", Complex, "Physical mailing addresses for the user.", multi, subs(
			attr("formatted", String, "The full mailing address, formatted for display."),
			attr("streetAddress", String, "The full street address component."),
			attr("locality", String, "The city or locality component."),
			attr("region", String, "The state or region component."),
			attr("postalCode", String, "The zip code or postal code component."),
			attr("country", String, "The country name component."),
			attr("type", String, "A label indicating the address's function.", canonical("work", "home", "other")),
			attr("primary", Boolean, "Whether this is the preferred address."),
		)),
		attr("groups", Complex, "The groups the user belongs to, managed through the Group resource.",
			multi, readOnly, subs(
				attr("value", String, "The id of the group.", caseExact, readOnly),
				attr("$ref", Reference, "The URI of the group.", readOnly, refs("User", "Group")),
				attr("display", String, "The display name of the group.", readOnly),
				attr("type", String, "How the membership is derived.", readOnly, canonical("direct", "indirect")),
			)),
		multiValuedStd("entitlements", "Entitlements of the user.", String, nil),
		multiValuedStd("roles", "Roles of the user (as sent by the client).", String, nil),
		multiValuedStd("x509Certificates", "X.509 certificates of the user.", Binary, nil),
	},
}

// EnterpriseSchemaDef is the enterprise User extension (RFC 7643 §4.3).
var EnterpriseSchemaDef = &Schema{
	ID:          EnterpriseSchema,
	Name:        "EnterpriseUser",
	Description: "Enterprise User",
	Attributes: []*Attribute{
		attr("employeeNumber", String, "Numeric or alphanumeric identifier assigned to a person."),
		attr("costCenter", String, "Identifies the name of a cost center."),
		attr("organization", String, "Identifies the name of an organization."),
		attr("division", String, "Identifies the name of a division."),
		attr("department", String, "Identifies the name of a department."),
		attr("manager", Complex, "The user's manager.", subs(
			attr("value", String, "The id of the manager's User resource.", caseExact),
			attr("$ref", Reference, "The URI of the manager's User resource.", refs("User")),
			attr("displayName", String, "The display name of the manager.", readOnly),
		)),
	},
}

// GroupSchemaDef is the core Group schema (RFC 7643 §4.2).
var GroupSchemaDef = &Schema{
	ID:          GroupSchema,
	Name:        "Group",
	Description: "Group",
	Attributes: []*Attribute{
		// Unique per plugin (a taken name is 409 uniqueness, as a group's displayName keys the
		// roles it maps to), so advertised "server" rather than RFC 7643 §4.2's "none": a client
		// reading /Schemas must not expect a second group of the same name to be created.
		attr("displayName", String, "A human-readable name for the Group; unique per plugin, in any case.", required, unique(Server)),
		attr("members", Complex, "A list of members of the Group.", multi, subs(
			attr("value", String, "The id of the member resource.", caseExact, immutable),
			attr("$ref", Reference, "The URI of the member resource.", immutable, refs("User", "Group")),
			attr("display", String, "The display name of the member."),
			attr("type", String, "The type of the member.", immutable, canonical("User", "Group")),
		)),
	},
}

// Extension ties an extension schema to a resource type.
type Extension struct {
	Schema   *Schema
	Required bool
}

// ResourceType describes one SCIM endpoint's resources (RFC 7643 §6).
type ResourceType struct {
	ID          string
	Name        string
	Endpoint    string
	Description string
	Schema      *Schema
	Extensions  []Extension

	// primaryOnce computes primaryAttrs: the core attributes with a primary sub-attribute.
	primaryOnce  sync.Once
	primaryAttrs []string
}

// UserResourceType is the User resource type with the optional enterprise extension.
var UserResourceType = &ResourceType{
	ID: "User", Name: "User", Endpoint: "/Users", Description: "User Account",
	Schema:     UserSchemaDef,
	Extensions: []Extension{{Schema: EnterpriseSchemaDef, Required: false}},
}

// GroupResourceType is the Group resource type.
var GroupResourceType = &ResourceType{
	ID: "Group", Name: "Group", Endpoint: "/Groups", Description: "Group",
	Schema: GroupSchemaDef,
}

// ResourceTypes lists every resource type served, in a stable order.
func ResourceTypes() []*ResourceType {
	return []*ResourceType{UserResourceType, GroupResourceType}
}

// Schemas lists every schema served, in a stable order.
func Schemas() []*Schema {
	return []*Schema{UserSchemaDef, GroupSchemaDef, EnterpriseSchemaDef}
}
