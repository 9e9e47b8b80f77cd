package protocol

import (
	"net/url"
	"strings"

	fp "github.com/scim2/filter-parser/v2"

	"github.com/gatehouse/gatehouse/plugins/scim/schema"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// Projection is the attributes / excludedAttributes selection of a request (RFC 7644 §3.9). The
// zero value returns every default attribute. Either way, returned:never attributes (password)
// are never output and returned:always ones (id, schemas, meta) always are.
type Projection struct {
	include map[string]bool
	exclude map[string]bool
}

// ParseProjection reads attributes and excludedAttributes (comma-separated attribute paths,
// possibly URN-qualified) from the query. A malformed path is 400 invalidValue; unknown attributes
// are allowed and select nothing.
func ParseProjection(rt *schema.ResourceType, q url.Values) (Projection, error) {
	var p Projection
	var err error
	if p.include, err = parseAttrList(rt, q.Get("attributes")); err != nil {
		return Projection{}, err
	}
	if p.exclude, err = parseAttrList(rt, q.Get("excludedAttributes")); err != nil {
		return Projection{}, err
	}
	return p, nil
}

func parseAttrList(rt *schema.ResourceType, s string) (map[string]bool, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if len(s) > 4096 {
		return nil, scimerr.BadRequest(scimerr.InvalidValue, "attribute list is too long")
	}
	out := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		ap, err := ParseAttrPath(item)
		if err != nil {
			return nil, scimerr.BadRequest(scimerr.InvalidValue, "%q is not an attribute path", item)
		}
		ref := rt.Resolve(ap.URI(), ap.AttributeName, ap.SubAttributeName())
		out[refKey(ref)] = true
	}
	return out, nil
}

// ParseAttrPath parses an attribute path (RFC 7644 §3.10: [URI ":"] ATTRNAME ["." ATTRNAME]).
// The common unqualified forms ("userName", "name.givenName") are read directly: the
// third-party parser is a backtracking PEG that cost a projected lookup several times what the
// rest of it did. Anything else goes to that parser, which must never take the server down.
func ParseAttrPath(s string) (ap fp.AttributePath, err error) {
	if name, sub, ok := simpleAttrPath(s); ok {
		ap.AttributeName = name
		if sub != "" {
			ap.SubAttribute = &sub
		}
		return ap, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = scimerr.BadRequest(scimerr.InvalidValue, "bad attribute path")
		}
	}()
	return fp.ParseAttrPath([]byte(s))
}

// simpleAttrPath splits s when it is ATTRNAME or ATTRNAME "." ATTRNAME in the parser's grammar
// (ATTRNAME = ["$"] ALPHA *("-" / "_" / DIGIT / ALPHA), ASCII), without "$" or a URI: for
// such s the parser gives the same two names (FuzzSimpleAttrPath holds them together).
func simpleAttrPath(s string) (name, sub string, ok bool) {
	name, sub, dotted := strings.Cut(s, ".")
	if !isSimpleAttrName(name) || (dotted && !isSimpleAttrName(sub)) {
		return "", "", false
	}
	return name, sub, true
}

func isSimpleAttrName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_'):
		default:
			return false
		}
	}
	return true
}

// refKey is the lower-case selection key of a reference: "name.givenname",
// "urn:...:user:employeenumber", or the extension URN for a whole extension.
func refKey(ref schema.Ref) string {
	if ref.ExtRoot {
		return strings.ToLower(ref.Ext)
	}
	k := strings.ToLower(ref.Name)
	if ref.Ext != "" {
		k = strings.ToLower(ref.Ext) + ":" + k
	}
	if ref.SubName != "" {
		k += "." + strings.ToLower(ref.SubName)
	}
	return k
}

// Apply returns the projection of r that goes on the wire: a new top-level map whose complex
// values are r's own when the projection keeps them whole (every lookup's name, emails...) and
// filtered copies otherwise. It is meant to be encoded, not modified.
func (p Projection) Apply(rt *schema.ResourceType, r schema.Resource) map[string]any {
	out := make(map[string]any, len(r))
	for k, v := range r {
		if ext := rt.Extension(k); ext != nil || isExtObject(k, v) {
			obj, _ := v.(map[string]any)
			prefix := strings.ToLower(k)
			whole := p.include[prefix]
			if p.exclude[prefix] {
				continue
			}
			sub := map[string]any{}
			for ak, av := range obj {
				var def *schema.Attribute
				if ext != nil {
					def = ext.Attribute(ak)
				}
				if pv, keep := p.attr(prefix+":", ak, def, av, whole); keep {
					sub[ak] = pv
				}
			}
			if len(sub) > 0 {
				out[k] = sub
			}
			continue
		}
		if pv, keep := p.attr("", k, rt.Attribute(k), v, false); keep {
			out[k] = pv
		}
	}
	return out
}

// IsDefault reports whether p is the default projection: no attributes and no
// excludedAttributes.
func (p Projection) IsDefault() bool { return len(p.include) == 0 && len(p.exclude) == 0 }

// KeepsRaw reports whether Apply outputs the top-level member key of a resource of type rt
// exactly as it is, value being the member's canonical text (see IsCanonicalObject): neither
// dropped nor filtered, so that a caller may copy value into the response instead of decoding
// it. It answers only for the default projection (false for any other), step by step as Apply
// and attr decide; false means "build the response through Apply", never "drop it".
func (p Projection) KeepsRaw(rt *schema.ResourceType, key, value string) bool {
	if !p.IsDefault() || value == "" {
		return false
	}
	ext := rt.Extension(key)
	if ext == nil && !(value[0] == '{' && hasURNPrefix(key)) {
		return keepsRawValue(rt.Attribute(key), value)
	}
	// An extension: Apply keeps the object's members that attr keeps, and the object if any.
	if value[0] != '{' || value == "{}" {
		return false
	}
	members := NewMembers(value)
	for k, v, ok := members.Next(); ok; k, v, ok = members.Next() {
		var def *schema.Attribute
		if ext != nil {
			def = ext.Attribute(k)
		}
		if !keepsRawValue(def, v) {
			return false
		}
	}
	return true
}

// keepsRawValue is attr under the default projection, for an attribute that must come out
// whole: not returned:never nor returned:request, and kept whole by projectValue.
func keepsRawValue(def *schema.Attribute, value string) bool {
	if def != nil && (def.Returned == schema.Never || def.Returned == schema.Request) {
		return false
	}
	switch value[0] {
	case '{':
		return keepsRawObject(def, value)
	case '[':
		if value == "[]" {
			return false
		}
		elems := NewElements(value)
		for e, ok := elems.Next(); ok; e, ok = elems.Next() {
			if e[0] == '{' && !keepsRawObject(def, e) {
				return false
			}
		}
	}
	return true
}

// keepsRawObject is keepsWhole for one object: not empty, and no returned:never sub-attribute.
func keepsRawObject(def *schema.Attribute, obj string) bool {
	if obj == "{}" {
		return false
	}
	if def == nil {
		return true
	}
	members := NewMembers(obj)
	for k, _, ok := members.Next(); ok; k, _, ok = members.Next() {
		if !(subFilter{def: def}).keep(k) {
			return false
		}
	}
	return true
}

// hasURNPrefix is strings.HasPrefix(strings.ToLower(k), "urn:") without the copy.
func hasURNPrefix(k string) bool { return len(k) >= 4 && strings.EqualFold(k[:4], "urn:") }

// Returns reports whether the projection outputs sub-attribute sub of the core attribute name
// when a resource has it ("members", "display"): a caller skips the work of filling in what
// would not be output. It asks attr itself, with a one-element probe, so that it cannot drift
// from Apply.
func (p Projection) Returns(rt *schema.ResourceType, name, sub string) bool {
	def := rt.Attribute(name)
	if def == nil {
		return false
	}
	_, keep := p.attr("", def.Name, def, []any{map[string]any{sub: ""}}, false)
	return keep
}

func isExtObject(k string, v any) bool {
	_, ok := v.(map[string]any)
	return ok && hasURNPrefix(k)
}

// attr projects one attribute; forced is set when an enclosing extension was selected whole.
func (p Projection) attr(prefix, name string, def *schema.Attribute, v any, forced bool) (any, bool) {
	if def != nil && def.Returned == schema.Never {
		return nil, false
	}
	always := def != nil && def.Returned == schema.Always
	if p.IsDefault() {
		// The default projection (every lookup): no selection key to build.
		if !always && !forced && def != nil && def.Returned == schema.Request {
			return nil, false
		}
		return projectValue(v, subFilter{def: def})
	}
	key := prefix + strings.ToLower(name)
	if !always && p.exclude[key] {
		return nil, false
	}
	keep := subFilter{p: &p, def: def, key: key}
	switch {
	case always, forced:
	case len(p.include) > 0:
		if !p.include[key] {
			// Only some sub-attributes asked for ("name.givenName", "emails.value")?
			subPrefix := key + "."
			any := false
			for k := range p.include {
				if strings.HasPrefix(k, subPrefix) {
					any = true
					break
				}
			}
			if !any {
				return nil, false
			}
			keep.onlyIncluded = true
		}
	default:
		if def != nil && def.Returned == schema.Request {
			return nil, false
		}
	}
	return projectValue(v, keep)
}

// subFilter decides which sub-attributes of one attribute are output: never returned:never
// ones, and with a selection (p set), not excluded ones and, when onlyIncluded, only the
// included ones. It is a value rather than a closure so that the default projection allocates
// nothing to decide.
type subFilter struct {
	def          *schema.Attribute
	p            *Projection
	key          string
	onlyIncluded bool
}

func (f subFilter) keep(s string) bool {
	if f.def != nil {
		if sd := f.def.SubAttribute(s); sd != nil && sd.Returned == schema.Never {
			return false
		}
	}
	if f.p == nil {
		return true
	}
	subKey := f.key + "." + strings.ToLower(s)
	if f.p.exclude[subKey] {
		return false
	}
	return !f.onlyIncluded || f.p.include[subKey]
}

func projectValue(v any, f subFilter) (any, bool) {
	if keepsWhole(v, f) {
		// Nothing to filter out: no copy.
		return v, true
	}
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, sv := range t {
			if f.keep(k) {
				m[k] = sv
			}
		}
		return m, len(m) > 0
	case []any:
		out := make([]any, 0, len(t))
		for _, e := range t {
			if em, ok := e.(map[string]any); ok {
				if pm, ok := projectValue(em, f); ok {
					out = append(out, pm)
				}
				continue
			}
			out = append(out, e)
		}
		return out, len(out) > 0
	default:
		return v, true
	}
}

// keepsWhole reports whether projectValue would return v unchanged: a non-empty value whose
// objects (directly or as array elements) are non-empty and keep every key.
func keepsWhole(v any, f subFilter) bool {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			return false
		}
		for k := range t {
			if !f.keep(k) {
				return false
			}
		}
		return true
	case []any:
		if len(t) == 0 {
			return false
		}
		for _, e := range t {
			if em, ok := e.(map[string]any); ok && !keepsWhole(em, f) {
				return false
			}
		}
		return true
	default:
		return true
	}
}
