// Package authtest runs a real auth server for tests: memory backend, fake
// clock, gRPC over mTLS on a loopback listener, and helpers to make users
// with exactly the rights a test needs. It also holds the RPC coverage
// harness every service package's test uses.
package authtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/auth/credseal"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Server is a running auth server.
type Server struct {
	Auth    *auth.Server
	Backend backend.Backend
	Clock   *clockwork.FakeClock
	Addr    string
	// Sealer seals plugin credentials (a random key per server).
	Sealer *credseal.Sealer
}

// Options tune NewServer.
type Options struct {
	// PublicAddr is passed to the auth server.
	PublicAddr string
}

// NewServer starts an auth server on a loopback port; it stops with t.
func NewServer(t testing.TB, opts Options) *Server {
	t.Helper()
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(time.Now().UTC().Truncate(time.Second))
	bk, err := memory.New(ctx, memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	key := make([]byte, 32)
	_, err = rand.Read(key)
	require.NoError(t, err)
	sealer, err := credseal.New(key)
	require.NoError(t, err)
	a, err := auth.New(ctx, auth.Config{Backend: bk, ClusterName: "test.example", Clock: clock, PublicAddr: opts.PublicAddr, CredentialSealer: sealer})
	require.NoError(t, err)
	tlsCfg, err := a.ServerTLSConfig(ctx, []string{"127.0.0.1"})
	require.NoError(t, err)
	srv, err := a.NewGRPCServer(tlsCfg)
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }() // ends with the Stop below
	t.Cleanup(srv.Stop)
	return &Server{Auth: a, Backend: bk, Clock: clock, Addr: lis.Addr().String(), Sealer: sealer}
}

// CreateRole writes a role allowing verbs on kinds (and denying nothing).
func (s *Server) CreateRole(t testing.TB, name string, kinds, verbs []string) {
	t.Helper()
	_, err := s.Auth.Services().Roles.UpsertRole(context.Background(), &typesv1.Role{
		Metadata: &typesv1.Metadata{Name: name},
		Spec: &typesv1.RoleSpec{Allow: &typesv1.RoleConditions{
			Rules: []*typesv1.Rule{{Resources: kinds, Verbs: verbs}},
		}},
	})
	require.NoError(t, err)
}

// CreateUser writes a user holding roles.
func (s *Server) CreateUser(t testing.TB, name string, roles ...string) {
	t.Helper()
	_, err := s.Auth.Services().Users.UpsertUser(context.Background(), &typesv1.User{
		Metadata: &typesv1.Metadata{Name: name},
		Spec:     &typesv1.UserSpec{Roles: roles},
	})
	require.NoError(t, err)
}

// Client issues an identity for user and dials the server with it.
func (s *Server) Client(t testing.TB, user string) *client.Client {
	t.Helper()
	id, err := s.Auth.GenerateUserIdentity(context.Background(), user, time.Hour)
	require.NoError(t, err)
	c, err := client.New(context.Background(), client.Config{Addr: s.Addr, Identity: id})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// UserWith creates a role with exactly verbs on kind, a user holding it, and
// a client for that user.
func (s *Server) UserWith(t testing.TB, name, kind string, verbs ...string) *client.Client {
	t.Helper()
	s.CreateRole(t, name+"-role", []string{kind}, verbs)
	s.CreateUser(t, name, name+"-role")
	return s.Client(t, name)
}

// RPCCase is how a coverage test calls one RPC.
type RPCCase struct {
	// Kind, if set, is the kind the RPC checks, instead of the service's
	// (for services whose RPCs guard different kinds).
	Kind string
	// Verbs are the verbs on the service's kind the RPC needs.
	Verbs []string
	// Setup prepares what the call needs (for example the resource it
	// reads), named after name. Optional.
	Setup func(t *testing.T, s *Server, name string)
	// Call makes the RPC as c on resource name; s gives access to the
	// server's services (to read the current revision of name, say).
	Call func(ctx context.Context, s *Server, c *client.Client, name string) error
}

// RunRPCCases checks that cases cover exactly the RPCs of desc, then calls
// each RPC as a user whose role grants exactly the RPC's verbs on kind (it
// must succeed) and, for each of those verbs, as a user whose role grants
// every verb but that one (it must be refused with access denied, and the
// refusal must be audited).
func RunRPCCases(t *testing.T, desc grpc.ServiceDesc, kind string, cases map[string]RPCCase) {
	var methods []string
	for _, m := range desc.Methods {
		methods = append(methods, m.MethodName)
	}
	for _, m := range desc.Streams {
		methods = append(methods, m.StreamName)
	}
	sort.Strings(methods)
	for _, m := range methods {
		if _, ok := cases[m]; !ok {
			t.Errorf("%s.%s has no test case", desc.ServiceName, m)
		}
	}
	for name := range cases {
		if !slices.Contains(methods, name) {
			t.Errorf("test case %q is not an RPC of %s", name, desc.ServiceName)
		}
	}
	if t.Failed() {
		return
	}
	s := NewServer(t, Options{PublicAddr: "gatehouse.example.com:3080"})
	allVerbs := slices.Clone(services.Verbs)
	for _, m := range methods {
		tc := cases[m]
		require.NotEmpty(t, tc.Verbs, "%s: no verbs", m)
		kind := kind
		if tc.Kind != "" {
			kind = tc.Kind
		}
		t.Run(m, func(t *testing.T) {
			ctx := context.Background()
			okName := lower(m) + "-ok"
			if tc.Setup != nil {
				tc.Setup(t, s, okName)
			}
			c := s.UserWith(t, okName+"-caller", kind, tc.Verbs...)
			require.NoError(t, tc.Call(ctx, s, c, okName), "allowed call with verbs %v", tc.Verbs)
			for _, missing := range tc.Verbs {
				name := fmt.Sprintf("%s-no-%s", lower(m), missing)
				if tc.Setup != nil {
					tc.Setup(t, s, name)
				}
				verbs := slices.DeleteFunc(slices.Clone(allVerbs), func(v string) bool {
					// read implies readnosecrets, so it goes too.
					return v == missing || (missing == services.VerbReadNoSecrets && v == services.VerbRead)
				})
				c := s.UserWith(t, name+"-caller", kind, verbs...)
				err := tc.Call(ctx, s, c, name)
				require.True(t, trace.IsAccessDenied(err), "call without %q: want access denied, got %v", missing, err)
				RequireEvent(t, s, "access.denied", name+"-caller")
			}
		})
	}
}

// RequireEvent fails unless the audit log holds an event of type typ by user.
func RequireEvent(t testing.TB, s *Server, typ, user string) *typesv1.AuditEvent {
	t.Helper()
	events, err := s.Auth.Services().Events.Search(context.Background(), time.Unix(0, 0), s.Clock.Now().Add(time.Hour), []string{typ}, 1000)
	require.NoError(t, err)
	for _, e := range events {
		if e.GetUser() == user {
			return e
		}
	}
	t.Fatalf("no %q event by %q among %d", typ, user, len(events))
	return nil
}

func lower(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}
