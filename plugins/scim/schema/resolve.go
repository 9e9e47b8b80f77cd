package schema

import (
	"strings"
)

// Ref is an attribute reference resolved against a resource type: where the attribute lives (the
// core object or an extension object) and its definition when the schema knows it. Unknown
// attributes resolve with a nil Attr and are handled schema-less (string-like, caseExact false):
// clients such as Okta may send custom attributes under their own schema URN, and refusing them
// would break provisioning for no security gain.
type Ref struct {
	// Ext is the key of the extension object holding the attribute ("" for core and common
	// attributes).
	Ext string
	// ExtSchema is the extension's definition when it is known.
	ExtSchema *Schema
	// ExtRoot is set when the reference names the extension object itself
	// ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User").
	ExtRoot bool
	// Name is the attribute name: canonical when known, as given otherwise.
	Name string
	// Attr is the attribute's definition, nil when unknown.
	Attr *Attribute
	// SubName is the sub-attribute name ("" when none): canonical when known.
	SubName string
	// Sub is the sub-attribute's definition, nil when unknown or absent.
	Sub *Attribute
}

// Leaf returns the definition of the referenced value: the sub-attribute when one is named, the
// attribute otherwise (nil when unknown).
func (r Ref) Leaf() *Attribute {
	if r.SubName != "" {
		return r.Sub
	}
	return r.Attr
}

// Extension returns the known extension schema with the given URN (case-insensitive), or nil.
func (rt *ResourceType) Extension(urn string) *Schema {
	for _, e := range rt.Extensions {
		if strings.EqualFold(e.Schema.ID, urn) {
			return e.Schema
		}
	}
	return nil
}

// IsSchemaURN reports whether urn is the core schema or one of the extensions of rt.
func (rt *ResourceType) IsSchemaURN(urn string) bool {
	return strings.EqualFold(urn, rt.Schema.ID) || rt.Extension(urn) != nil
}

// Attribute returns the definition of an unqualified top-level attribute: common attributes first,
// then the core schema.
func (rt *ResourceType) Attribute(name string) *Attribute {
	if a := findAttr(commonAttributes, name); a != nil {
		return a
	}
	return rt.Schema.Attribute(name)
}

// Resolve resolves an attribute path given as (schema URN prefix, attribute name, sub-attribute
// name), the shape filter-parser produces. An empty uri means an unqualified name: common and core
// attributes first, then (as a convenience for clients that do not qualify) a known extension
// attribute of that name.
func (rt *ResourceType) Resolve(uri, name, sub string) Ref {
	var ref Ref
	switch {
	case uri == "":
		ref.Attr = rt.Attribute(name)
		if ref.Attr == nil {
			for _, e := range rt.Extensions {
				if a := e.Schema.Attribute(name); a != nil {
					ref.Ext, ref.ExtSchema, ref.Attr = e.Schema.ID, e.Schema, a
					break
				}
			}
		}
	case strings.EqualFold(uri, rt.Schema.ID):
		ref.Attr = rt.Attribute(name)
	case rt.Extension(uri) != nil:
		ref.ExtSchema = rt.Extension(uri)
		ref.Ext = ref.ExtSchema.ID
		ref.Attr = ref.ExtSchema.Attribute(name)
	default:
		// The parser splits "urn:...:2.0:User" into URI "urn:...:2.0" and name "User"; put the
		// pieces back together to recognise a path naming a whole extension.
		if sub == "" {
			if ext := rt.Extension(uri + ":" + name); ext != nil {
				return Ref{Ext: ext.ID, ExtSchema: ext, ExtRoot: true}
			}
		}
		ref.Ext = uri
	}
	ref.Name = name
	if ref.Attr != nil {
		ref.Name = ref.Attr.Name
	}
	if sub != "" {
		ref.SubName = sub
		if ref.Attr != nil {
			ref.Sub = ref.Attr.SubAttribute(sub)
			if ref.Sub != nil {
				ref.SubName = ref.Sub.Name
			}
		}
	}
	return ref
}

// Container returns the object that holds the referenced attribute: the resource itself, or its
// extension object. With create set, a missing extension object is created.
func (r Resource) Container(ref Ref, create bool) map[string]any {
	if ref.Ext == "" {
		return r
	}
	if v, ok := Lookup(r, ref.Ext); ok {
		if m, ok := v.(map[string]any); ok {
			return m
		}
		if !create {
			return nil
		}
	}
	if !create {
		return nil
	}
	m := map[string]any{}
	Set(r, ref.Ext, m)
	return m
}

// Get returns the value of the referenced attribute (not descending into a sub-attribute).
func (r Resource) Get(ref Ref) (any, bool) {
	if ref.ExtRoot {
		return Lookup(r, ref.Ext)
	}
	c := r.Container(ref, false)
	if c == nil {
		return nil, false
	}
	return Lookup(c, ref.Name)
}
