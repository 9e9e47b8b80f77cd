// Package schema holds the SCIM 2.0 schema definitions Gatehouse serves (core User and Group,
// the enterprise User extension, the common attributes) and the attribute-map representation of a
// SCIM resource with case-insensitive, URN-aware attribute lookup (RFC 7643 §2.1, §3.3).
//
// The same definitions drive discovery (/Schemas, /ResourceTypes), filter evaluation (types and
// caseExact), PATCH (mutability, multi-valued shape) and response projection (returned).
package schema

import "strings"

// Type is a SCIM attribute data type (RFC 7643 §2.3).
type Type string

// Attribute data types.
const (
	String    Type = "string"
	Boolean   Type = "boolean"
	Decimal   Type = "decimal"
	Integer   Type = "integer"
	DateTime  Type = "dateTime"
	Binary    Type = "binary"
	Reference Type = "reference"
	Complex   Type = "complex"
)

// Mutability says whether and when clients may set an attribute (RFC 7643 §7).
type Mutability string

// Mutability values.
const (
	ReadOnly  Mutability = "readOnly"
	ReadWrite Mutability = "readWrite"
	Immutable Mutability = "immutable"
	WriteOnly Mutability = "writeOnly"
)

// Returned says when an attribute is in a response (RFC 7643 §7).
type Returned string

// Returned values.
const (
	Always  Returned = "always"
	Never   Returned = "never"
	Default Returned = "default"
	Request Returned = "request"
)

// Uniqueness says across what an attribute's value is unique (RFC 7643 §7).
type Uniqueness string

// Uniqueness values.
const (
	None   Uniqueness = "none"
	Server Uniqueness = "server"
	Global Uniqueness = "global"
)

// Attribute is one attribute definition as published under /Schemas.
type Attribute struct {
	Name            string       `json:"name"`
	Type            Type         `json:"type"`
	MultiValued     bool         `json:"multiValued"`
	Description     string       `json:"description"`
	Required        bool         `json:"required"`
	CanonicalValues []string     `json:"canonicalValues,omitempty"`
	CaseExact       bool         `json:"caseExact"`
	Mutability      Mutability   `json:"mutability"`
	Returned        Returned     `json:"returned"`
	Uniqueness      Uniqueness   `json:"uniqueness"`
	ReferenceTypes  []string     `json:"referenceTypes,omitempty"`
	SubAttributes   []*Attribute `json:"subAttributes,omitempty"`
}

// SubAttribute returns the sub-attribute called name (case-insensitive), or nil.
func (a *Attribute) SubAttribute(name string) *Attribute {
	if a == nil {
		return nil
	}
	return findAttr(a.SubAttributes, name)
}

// ReadOnly reports whether clients may never set the attribute.
func (a *Attribute) ReadOnly() bool { return a != nil && a.Mutability == ReadOnly }

func findAttr(attrs []*Attribute, name string) *Attribute {
	for _, a := range attrs {
		if strings.EqualFold(a.Name, name) {
			return a
		}
	}
	return nil
}

// attr builds a single-valued attribute with the RFC defaults (readWrite, returned default,
// uniqueness none, caseExact false) that the options below adjust.
func attr(name string, t Type, desc string, opts ...func(*Attribute)) *Attribute {
	a := &Attribute{
		Name: name, Type: t, Description: desc,
		Mutability: ReadWrite, Returned: Default, Uniqueness: None,
	}
	// References are compared exactly (RFC 7643 §2.3.7 makes them caseExact URIs).
	if t == Reference {
		a.CaseExact = true
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

func multi(a *Attribute)    { a.MultiValued = true }
func required(a *Attribute) { a.Required = true }
func caseExact(a *Attribute) {
	a.CaseExact = true
}
func readOnly(a *Attribute)  { a.Mutability = ReadOnly }
func immutable(a *Attribute) { a.Mutability = Immutable }
func writeOnly(a *Attribute) { a.Mutability = WriteOnly }
func never(a *Attribute)     { a.Returned = Never }
func always(a *Attribute)    { a.Returned = Always }
func unique(u Uniqueness) func(*Attribute) {
	return func(a *Attribute) { a.Uniqueness = u }
}
func canonical(v ...string) func(*Attribute) {
	return func(a *Attribute) { a.CanonicalValues = v }
}
func refs(v ...string) func(*Attribute) {
	return func(a *Attribute) { a.ReferenceTypes = v }
}
func subs(s ...*Attribute) func(*Attribute) {
	return func(a *Attribute) { a.SubAttributes = s }
}
