package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	fp "github.com/scim2/filter-parser/v2"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/plugins/scim/schema"
)

// reencode decodes s as the slow path does (UseNumber) and encodes it with the response encoder.
func reencode(t testing.TB, s string) (string, bool) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return "", false
	}
	if _, err := dec.Token(); err == nil {
		return "", false
	}
	b, err := appendJSON(nil, v)
	require.NoError(t, err)
	return string(b), true
}

var canonicalSeeds = []string{
	`{}`,
	`{"a":1}`,
	`{"":"","A":[],"a":{},"b":[null,true,false,-0,1.5e-3,1E+2,123456789012345678901234567890]}`,
	`{"s":"\"\\\b\f\n\r\t\u0000\u001f\u003c\u003e\u0026\u2028\u2029é😀` + "\x7f" + `"}`,
	`{"n":{"m":{"o":[[[]]]}}}`,
	`{"nickName": "x"}`,
	`{"b":1,"a":2}`,
	`{"a":1,"a":2}`,
	`{"a":"\u00e9"}`,
	`{"a":"\/"}`,
	`{"a":"\u003C"}`,
	`{"a":"\u000a"}`,
	`{"a":"<"}`,
	"{\"a\":\"\u2028\"}",
	"{\"a\":\"\xff\"}",
	`{"a":"\ufffd"}`,
	`{"a\u0026":1}`,
	`{"a":1}{}`,
	`{"a":01}`,
	`{"a":1.}`,
	`{"a":.5}`,
	`{"a":1e}`,
	`{"a":tru}`,
	`{"a":"x`,
	`[1]`,
	` {}`,
	`{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
}

// TestIsCanonicalObject: what json.Marshal writes for a decoded SCIM resource is canonical, and
// canonical text is exactly what the encoder writes back.
func TestIsCanonicalObject(t *testing.T) {
	t.Parallel()
	for _, s := range canonicalSeeds {
		got, ok := reencode(t, s)
		canonical := IsCanonicalObject(s)
		if canonical {
			require.True(t, ok, s)
			require.Equal(t, s, got)
		}
		// Anything json.Marshal writes from a decoded object is canonical, unless it has an
		// escaped key (refused so that keys need no unescaping) or is deeper than maxRawDepth.
		if ok && strings.HasPrefix(s, "{") && !strings.Contains(s, `\u0026":`) && !strings.Contains(s, "[[[[[[") {
			require.True(t, IsCanonicalObject(got), "re-encoded %s: %s", s, got)
		}
	}
	require.True(t, IsCanonicalObject(`{"a":"\u003c\u0026\u003e","b":{"c":[1,"\n"]}}`))
	require.False(t, IsCanonicalObject(`{"b":1,"a":2}`))
	require.False(t, IsCanonicalObject(`{"a":1,"a":1}`))
	require.False(t, IsCanonicalObject(`{"a":"\u00e9"}`))
	require.False(t, IsCanonicalObject(""))
}

// FuzzIsCanonicalObject: text taken as canonical is what the encoder writes for it, and the
// member iterators take it apart where the encoder put it together.
func FuzzIsCanonicalObject(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !IsCanonicalObject(s) {
			return
		}
		got, ok := reencode(t, s)
		require.True(t, ok, "%q", s)
		require.Equal(t, s, got)
		var rebuilt bytes.Buffer
		rebuilt.WriteByte('{')
		members := NewMembers(s)
		for k, v, ok := members.Next(); ok; k, v, ok = members.Next() {
			if rebuilt.Len() > 1 {
				rebuilt.WriteByte(',')
			}
			rebuilt.WriteString(`"` + k + `":`)
			if v[0] == '[' {
				rebuilt.WriteByte('[')
				elems := NewElements(v)
				for i := 0; ; i++ {
					e, ok := elems.Next()
					if !ok {
						break
					}
					if i > 0 {
						rebuilt.WriteByte(',')
					}
					rebuilt.WriteString(e)
				}
				rebuilt.WriteByte(']')
			} else {
				rebuilt.WriteString(v)
			}
		}
		rebuilt.WriteByte('}')
		require.Equal(t, s, rebuilt.String())
	})
}

// rawTestRT has an attribute of each returned kind, and a returned:never sub-attribute, which
// the real schemas (password aside) do not.
var rawTestRT = &schema.ResourceType{
	ID: "T", Name: "T", Endpoint: "/T",
	Schema: &schema.Schema{ID: "urn:t:core", Attributes: []*schema.Attribute{
		{Name: "secret", Type: schema.String, Returned: schema.Never},
		{Name: "onRequest", Type: schema.String, Returned: schema.Request},
		{Name: "always", Type: schema.String, Returned: schema.Always},
		{Name: "plain", Type: schema.String, Returned: schema.Default},
		{Name: "creds", Type: schema.Complex, MultiValued: true, Returned: schema.Default, SubAttributes: []*schema.Attribute{
			{Name: "value", Type: schema.String, Returned: schema.Default},
			{Name: "hash", Type: schema.String, Returned: schema.Never},
		}},
		{Name: "box", Type: schema.Complex, Returned: schema.Default, SubAttributes: []*schema.Attribute{
			{Name: "pin", Type: schema.String, Returned: schema.Never},
			{Name: "label", Type: schema.String, Returned: schema.Default},
		}},
	}},
	Extensions: []schema.Extension{{Schema: &schema.Schema{ID: "urn:t:ext", Attributes: []*schema.Attribute{
		{Name: "hidden", Type: schema.String, Returned: schema.Never},
		{Name: "shown", Type: schema.String, Returned: schema.Default},
		{Name: "box", Type: schema.Complex, Returned: schema.Default, SubAttributes: []*schema.Attribute{
			{Name: "pin", Type: schema.String, Returned: schema.Never},
		}},
	}}}},
}

var keepsRawSeeds = []struct {
	key, value string
	want       bool
}{
	{"plain", `"x"`, true},
	{"PLAIN", `null`, true},
	{"always", `"x"`, true},
	{"secret", `"x"`, false},
	{"Secret", `"x"`, false},
	{"onRequest", `"x"`, false},
	{"unknown", `{"a":{},"b":[]}`, true},
	{"unknown", `{}`, false},
	{"unknown", `[]`, false},
	{"unknown", `[1,[],{"a":1}]`, true},
	{"unknown", `[{}]`, false},
	{"creds", `[{"value":"v"}]`, true},
	{"creds", `[{"hash":"h","value":"v"}]`, false},
	{"creds", `[{"HASH":"h"}]`, false},
	{"creds", `["loose"]`, true},
	{"box", `{"label":"l"}`, true},
	{"box", `{"label":"l","pin":"1"}`, false},
	{"urn:t:ext", `{"shown":"s"}`, true},
	{"URN:T:EXT", `{"shown":"s"}`, true},
	{"urn:t:ext", `{"hidden":"h","shown":"s"}`, false},
	{"urn:t:ext", `{"box":{"pin":"1"}}`, false},
	{"urn:t:ext", `{"box":{"other":"1"}}`, true},
	{"urn:t:ext", `{}`, false},
	{"urn:t:ext", `"x"`, false},
	{"urn:t:ext", `{"shown":[]}`, false},
	{"urn:other", `{"hidden":"h","x":{"a":{}}}`, true},
	{"urn:other", `{"hidden":"h","x":{}}`, false},
	{"urn:other", `{}`, false},
	{"urn:other", `"x"`, true},
	{"urn:other", `[]`, false},
}

// TestKeepsRaw: KeepsRaw says true exactly when the default projection outputs the member as it
// is, and never for a returned:never attribute or sub-attribute.
func TestKeepsRaw(t *testing.T) {
	t.Parallel()
	for _, c := range keepsRawSeeds {
		require.Equal(t, c.want, Projection{}.KeepsRaw(rawTestRT, c.key, c.value), "%s: %s", c.key, c.value)
		require.Equal(t, c.want, keptWhole(t, rawTestRT, c.key, c.value), "Apply, %s: %s", c.key, c.value)
	}
	p, err := ParseProjection(rawTestRT, map[string][]string{"attributes": {"plain"}})
	require.NoError(t, err)
	require.False(t, p.KeepsRaw(rawTestRT, "plain", `"x"`), "only the default projection is answered")
}

// keptWhole reports whether the default projection outputs {key: value} unchanged.
func keptWhole(t testing.TB, rt *schema.ResourceType, key, value string) bool {
	obj := `{"` + key + `":` + value + `}`
	res, err := schema.Decode([]byte(obj))
	require.NoError(t, err)
	got, err := appendObject(nil, Projection{}.Apply(rt, res))
	require.NoError(t, err)
	return string(got) == obj
}

// FuzzKeepsRaw: for any canonical member, KeepsRaw is true exactly when Apply keeps it whole,
// for the test type and the real User type.
func FuzzKeepsRaw(f *testing.F) {
	for _, c := range keepsRawSeeds {
		f.Add(c.key, c.value)
	}
	f.Add("emails", `[{"primary":true,"type":"work","value":"a@x"}]`)
	f.Add("password", `"x"`)
	f.Add("0", `{},"1":0`) // two members in one: not an input (found by the fuzzer)
	f.Add("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", `{"manager":{"value":"m"}}`)
	f.Fuzz(func(t *testing.T, key, value string) {
		obj := `{"` + key + `":` + value + `}`
		if !IsCanonicalObject(obj) {
			return
		}
		// KeepsRaw is given one member as Members reads it: a value that is itself
		// several members (`{},"1":0`) is not an input it can be given.
		m := NewMembers(obj)
		if k, v, ok := m.Next(); !ok || k != key || v != value {
			return
		}
		if _, _, more := m.Next(); more {
			return
		}
		for _, rt := range []*schema.ResourceType{rawTestRT, schema.UserResourceType} {
			require.Equal(t, keptWhole(t, rt, key, value), Projection{}.KeepsRaw(rt, key, value), "%s", obj)
		}
	})
}

var attrPathSeeds = []string{
	"userName", "name.givenName", "emails.value", "a", "A1-_b.c", "x509Certificates.value",
	"$ref", "members.$ref", "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName",
	"a.", ".a", "a..b", "a.b.c", "1a", "-a", "a b", "é", "a.é", "", "name.1", "urn:x:y",
}

// FuzzSimpleAttrPath: a path ParseAttrPath reads itself is one the parser reads the same way.
func FuzzSimpleAttrPath(f *testing.F) {
	for _, s := range attrPathSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, sub, ok := simpleAttrPath(s)
		if !ok {
			return
		}
		want, err := func() (ap fp.AttributePath, err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return fp.ParseAttrPath([]byte(s))
		}()
		require.NoError(t, err, "%q", s)
		require.Nil(t, want.URIPrefix, "%q", s)
		require.Equal(t, want.AttributeName, name, "%q", s)
		require.Equal(t, want.SubAttributeName(), sub, "%q", s)
		require.Equal(t, want.SubAttribute != nil, sub != "", "%q", s)
		got, err := ParseAttrPath(s)
		require.NoError(t, err)
		require.Equal(t, want, got)
	})
}

// TestParseAttrPath: the paths the quick reader leaves to the parser are still parsed or refused
// by it.
func TestParseAttrPath(t *testing.T) {
	t.Parallel()
	ap, err := ParseAttrPath("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
	require.NoError(t, err)
	require.Equal(t, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", ap.URI())
	require.Equal(t, "manager", ap.AttributeName)
	require.Equal(t, "value", ap.SubAttributeName())
	ap, err = ParseAttrPath("members.$ref")
	require.NoError(t, err)
	require.Equal(t, "$ref", ap.SubAttributeName())
	for _, bad := range []string{"a.b.c", "1a", "", "a b", "a."} {
		_, err := ParseAttrPath(bad)
		require.Error(t, err, bad)
	}
}

// FuzzDecodeCanonicalObject: canonical text decodes to what the slow path's decoder gives.
func FuzzDecodeCanonicalObject(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !IsCanonicalObject(s) {
			return
		}
		want, err := schema.Decode([]byte(s))
		require.NoError(t, err)
		require.Equal(t, map[string]any(want), DecodeCanonicalObject(s), "%q", s)
	})
}
