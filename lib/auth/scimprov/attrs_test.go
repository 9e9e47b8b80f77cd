package scimprov

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// userDrop is what normalizeUser drops from a user's attributes.
var userDrop = []string{"password", "id", "meta", "groups", "userName", "externalId", "active", "schemas"}

// attrsCorpus is attributes as the SCIM server sends them (json.Marshal of a map) and text that
// must take the general path: whitespace, unsorted or repeated keys, escapes in keys, HTML
// characters, invalid UTF-8, not an object.
var attrsCorpus = []string{
	`{}`,
	`{"displayName":"Jane Doe","emails":[{"primary":true,"type":"work","value":"jane@example.com"}],"externalId":"00u1","locale":"en-US","name":{"familyName":"Doe","givenName":"Jane"},"userName":"jane@example.com"}`,
	`{"USERNAME":"x","active":false,"id":"1","meta":{"created":"x"},"nickName":"j","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"costCenter":"CC 1","employeeNumber":42}}`,
	`{"a":1,"b":-2.5e10,"c":true,"d":null,"e":[],"f":{},"g":[1,[2,{"h":"]}"}]],"i":"\"\\\u00e9"}`,
	`{"userName":"only"}`,
	`{ "a":1}`, `{"a": 1}`, `{"a":[1, 2]}`, "{\"a\":1}\n", ` {"a":1}`,
	`{"b":1,"a":2}`, `{"a":1,"a":2}`, `{"A":1,"a":2}`, `{"a\u0062":1}`, `{"a\"":1}`,
	`{"a":"<b>"}`, `{"a":"\u003cb\u003e"}`, `{"a":"x & y"}`, "{\"a\":\"\u2028\"}", "{\"a\u2029\":1}",
	"{\"a\":\"\xff\"}", "{\"\xff\":1}",
	`[]`, `"x"`, `{`, `{"a":1,}`, `{"a":1}{}`, `{"a":01}`, `null`, ` null`, `{"a":1}x`,
}

func TestCleanCanonicalMatchesDecoded(t *testing.T) {
	t.Parallel()
	var fast []string
	for _, raw := range attrsCorpus {
		if checkCleanCanonical(t, []byte(raw)) {
			fast = append(fast, raw)
		}
	}
	// The canonical ones: the first five, and three that json.Marshal writes back as they are
	// (its escapes for HTML, keys sorted by bytes, a value's invalid UTF-8 copied verbatim).
	require.Equal(t, append(attrsCorpus[:5:5], `{"A":1,"a":2}`, `{"a":"\u003cb\u003e"}`, "{\"a\":\"\xff\"}"), fast)
	// What the SCIM server sends is canonical.
	b, err := json.Marshal(map[string]any{"userName": "a", "name": map[string]any{"givenName": "<J>"}, "x": json.Number("1.50")})
	require.NoError(t, err)
	require.True(t, checkCleanCanonical(t, b))
}

// checkCleanCanonical compares cleanCanonical with the general path on raw, and says whether the
// fast path took it.
func checkCleanCanonical(t *testing.T, raw []byte) bool {
	t.Helper()
	for _, drop := range [][]string{userDrop, {"password", "id", "meta", "members"}, nil} {
		want, wantErr := cleanAttributesDecoded(raw, drop)
		got, ok := cleanCanonical(raw, drop)
		if !ok {
			return false
		}
		require.NoError(t, wantErr, "the fast path took %q, which the general path refuses", raw)
		require.Equal(t, string(want), string(got), "on %q", raw)
	}
	return true
}

func FuzzCleanCanonical(f *testing.F) {
	for _, raw := range attrsCorpus {
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkCleanCanonical(t, raw)
	})
}
