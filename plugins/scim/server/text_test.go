package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUnsafeTextRefused: a control character, or a bidirectional override in any
// string a SCIM client writes (POST, PUT, PATCH; users and groups; values and attribute
// names) is refused with 400 invalidValue naming the attribute, and nothing is stored. Free text
// may hold a line feed or a tab; identifiers may not.
func TestUnsafeTextRefused(t *testing.T) {
	t.Parallel()
	user := func(attr string, v any) string {
		m := map[string]any{"userName": "mallory@example.com", "externalId": "00umal"}
		m[attr] = v
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return string(b)
	}
	for _, tc := range []struct {
		name, body, field string
	}{
		{"ESC in userName", user("userName", "mal\x1b[2Jory@example.com"), "userName"},
		{"OSC 52 in displayName", user("displayName", "Mal \x1b]52;c;Y3VybCBldmlsfHNo\x07"), "displayName"},
		{"NUL in externalId", user("externalId", "00u\x00x"), "externalId"},
		{"line feed in externalId", user("externalId", "00u\nlevel=ERROR"), "externalId"},
		{"line feed in userName", user("userName", "a@example.com\nforged=1"), "userName"},
		{"C1 CSI in a name part", user("name", map[string]any{"givenName": "M\u009b31m"}), "name.givenName"},
		{"RLO in an email", user("emails", []any{map[string]any{"value": "gnp.\u202eexe@example.com"}}), "emails.value"},
		{"CR in a custom attribute", user("nickName", "ok\roverwritten"), "nickName"},
		{"DEL in an extension", user("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", map[string]any{"department": "Eng\x7f"}), "department"},
		{"ESC in an attribute name", user("x\x1b[1m", "v"), "an attribute name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			w := h.req(http.MethodPost, base+"/Users", tc.body)
			m := requireSCIMError(t, w, http.StatusBadRequest, "invalidValue")
			require.Contains(t, m["detail"], tc.field)
			require.Contains(t, m["detail"], "control character")
			require.NotContains(t, w.Body.String(), "\\u001b", "the refusal does not echo the value")
			require.Empty(t, h.fake.users)
		})
	}

	t.Run("free text may span lines", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		w := h.req(http.MethodPost, base+"/Users", user("addresses", []any{map[string]any{"formatted": "100 Universal City Plaza\nHollywood, CA\t91608"}}))
		require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	})

	t.Run("PUT and PATCH", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		w := h.req(http.MethodPost, base+"/Users", janeJSON)
		require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
		id := decode(t, w)["id"].(string)
		before := *h.fake.users[id]

		w = h.req(http.MethodPut, base+"/Users/"+id, user("displayName", "x\u2066y"))
		requireSCIMError(t, w, http.StatusBadRequest, "invalidValue")
		w = h.req(http.MethodPatch, base+"/Users/"+id, fmt.Sprintf(patchOp, `[{"op":"replace","path":"displayName","value":"\u001b[8m"}]`))
		requireSCIMError(t, w, http.StatusBadRequest, "invalidValue")
		w = h.req(http.MethodPatch, base+"/Users/"+id, fmt.Sprintf(patchOp, `[{"op":"replace","value":{"externalId":"a\u0000b","active":false}}]`))
		requireSCIMError(t, w, http.StatusBadRequest, "invalidValue")
		require.Equal(t, before.Revision, h.fake.users[id].Revision, "nothing was written")
		require.True(t, h.fake.users[id].Active)
	})

	t.Run("groups", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		w := h.req(http.MethodPost, base+"/Groups", `{"displayName":"eng\u202e"}`)
		m := requireSCIMError(t, w, http.StatusBadRequest, "invalidValue")
		require.Contains(t, m["detail"], "displayName")
		w = h.req(http.MethodPost, base+"/Groups", `{"displayName":"eng\nops"}`)
		requireSCIMError(t, w, http.StatusBadRequest, "invalidValue")
		w = h.req(http.MethodPost, base+"/Groups", `{"displayName":"eng","members":[{"value":"u1\u001b"}]}`)
		m = requireSCIMError(t, w, http.StatusBadRequest, "invalidValue")
		require.Contains(t, m["detail"], "members.value")
		require.Empty(t, h.fake.groups)
	})
}

// TestUnsafeTextAlreadyStored: a record that holds unsafe text from before the check can still be
// deactivated by a PUT or PATCH that repeats it; new unsafe text is refused.
func TestUnsafeTextAlreadyStored(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.req(http.MethodPost, base+"/Users", janeJSON)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	id := decode(t, w)["id"].(string)
	// Written straight into the store, as a server without the check would have.
	h.fake.users[id].ExternalID = "00u\x1b[31m"
	h.fake.users[id].Attributes = json.RawMessage(`{"displayName":"Jane\u001b]0;pwned\u0007","userName":"jane@example.com"}`)

	got := decode(t, h.req(http.MethodGet, base+"/Users/"+id, ""))
	got["active"] = false
	body, err := json.Marshal(got)
	require.NoError(t, err)
	w = h.req(http.MethodPut, base+"/Users/"+id, string(body))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.False(t, h.fake.users[id].Active)

	w = h.req(http.MethodPatch, base+"/Users/"+id, fmt.Sprintf(patchOp, `[{"op":"replace","path":"nickName","value":"x"},{"op":"replace","path":"active","value":true}]`))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	w = h.req(http.MethodPatch, base+"/Users/"+id, fmt.Sprintf(patchOp, `[{"op":"replace","path":"nickName","value":"\u001b[5m"}]`))
	requireSCIMError(t, w, http.StatusBadRequest, "invalidValue")
}
