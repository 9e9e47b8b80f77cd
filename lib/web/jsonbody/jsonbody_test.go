package jsonbody

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

type login struct {
	User    string   `json:"user"`
	Admin   bool     `json:"admin"`
	TTL     int      `json:"ttl"`
	Roles   []string `json:"roles"`
	Profile struct {
		Name string `json:"name"`
	} `json:"profile"`
}

// TestProblem: every kind of decode error is described without a Go type or package name.
func TestProblem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body, want string
	}{
		{`[1,2]`, "request body must be a JSON object"},
		{`"x"`, "request body must be a JSON object"},
		{`{"user":123}`, `request body: "user" must be a string, not number`},
		{`{"admin":"yes"}`, `request body: "admin" must be true or false, not string`},
		{`{"ttl":"1h"}`, `request body: "ttl" must be a number, not string`},
		{`{"roles":"a"}`, `request body: "roles" must be an array, not string`},
		{`{"profile":[]}`, `request body: "profile" must be an object, not array`},
		{`{"profile":{"name":1}}`, `request body: "profile.name" must be a string, not number`},
		{`{"user":"a",}`, "request body is not valid JSON (at byte 13)"},
		{`{`, "request body is not valid JSON (it ends early)"},
		{``, "request body is empty"},
		{`{"nosuch":1}`, `request body: unknown field "nosuch"`},
	} {
		dec := json.NewDecoder(bytes.NewReader([]byte(tc.body)))
		dec.DisallowUnknownFields()
		var v login
		err := dec.Decode(&v)
		require.Error(t, err, tc.body)
		got := Problem(err)
		require.Equal(t, tc.want, got, "%s (encoding/json: %v)", tc.body, err)
		require.NotContains(t, got, "Go ")
		require.NotContains(t, got, "jsonbody.")
	}
	// json.Unmarshal says the same of a body that ends early or is empty.
	require.Equal(t, "request body is not valid JSON (it ends early)", Problem(json.Unmarshal([]byte(`{"user":`), &login{})))
	require.Equal(t, "request body is empty", Problem(json.Unmarshal([]byte(``), &login{})))
	require.Equal(t, `request body: "user" must be a string, not number`, Problem(json.Unmarshal([]byte(`{"user":1}`), &login{})))
}
