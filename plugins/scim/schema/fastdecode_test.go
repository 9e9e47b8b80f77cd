package schema

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// decodeCorpus is request bodies decodeSimple takes (Okta's shapes, whitespace, repeated keys)
// and ones it must leave to encoding/json, valid or not.
var decodeCorpus = []string{
	`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"jane@example.com","name":{"givenName":"Jane","familyName":"Doe"},"emails":[{"primary":true,"value":"jane@example.com","type":"work"}],"displayName":"Jane Doe","locale":"en-US","externalId":"00u1","groups":[],"password":"Pl@ce-1","active":true}`,
	"{\n  \"userName\" : \"é 😀\",\t\"n\": [1, -0, 0.5, -12.5e+3, 1E9, 12345678901234567890],\r\n \"x\": null, \"y\": false, \"z\": {} }\n",
	`{"a":1,"a":{"b":2}}`, `{}`, ` {} `, `{"a":[[],[{}]]}`,
	// To encoding/json:
	`{"a":"\u00e9"}`, `{"a":"x\"y"}`, `{"a\n":1}`, "{\"a\":\"\xff\"}", "{\"a\":\"\t\"}",
	`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":+1}`, `{"a":tru}`, `{"a":truex}`, `{"a":nul}`,
	`{"a":1,}`, `{"a" 1}`, `{,}`, `{"a":[1,]}`, `{"a":1}x`, `{"a":1}{}`, `{"a":1} []`, `[]`, `null`, `"x"`, ``, ` `,
	"\ufeff{}", `{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
}

// decodeWithEncodingJSON is Decode's encoding/json path.
func decodeWithEncodingJSON(data []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return m, true
}

// checkDecodeSimple compares decodeSimple with encoding/json on data, and says whether the fast
// path took it.
func checkDecodeSimple(t *testing.T, data []byte) bool {
	t.Helper()
	got, ok := decodeSimple(data)
	if !ok {
		return false
	}
	want, wantOK := decodeWithEncodingJSON(data)
	require.True(t, wantOK, "decodeSimple took %q, which encoding/json refuses", data)
	require.Equal(t, want, got, "on %q", data)
	return true
}

func TestDecodeSimpleMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	var fast []string
	for _, s := range decodeCorpus {
		if checkDecodeSimple(t, []byte(s)) {
			fast = append(fast, s)
		}
	}
	require.Equal(t, decodeCorpus[:6], fast)
	// Decode answers as before on what the fast path leaves.
	for _, s := range decodeCorpus[6:] {
		want, wantOK := decodeWithEncodingJSON([]byte(s))
		got, err := Decode([]byte(s))
		require.Equal(t, wantOK, err == nil, "on %q: %v", s, err)
		if wantOK {
			require.Equal(t, want, map[string]any(got))
		}
	}
}

func FuzzDecodeSimple(f *testing.F) {
	for _, s := range decodeCorpus {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeSimple(t, data)
	})
}
