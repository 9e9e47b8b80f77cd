package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/auth/certext"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	rolepb "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func storedIncarnation(t *testing.T, s *authtest.Server, name string) string {
	t.Helper()
	u, err := s.Auth.Services().Users.GetUser(context.Background(), name, false)
	require.NoError(t, err)
	require.NotEmpty(t, u.GetSpec().GetIncarnation())
	return u.GetSpec().GetIncarnation()
}

func TestCertificatesCarryTheIncarnation(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	_, err := s.Auth.Services().Users.CreateUser(ctx, &typesv1.User{
		Metadata: &typesv1.Metadata{Name: "carol"},
		Spec: &typesv1.UserSpec{
			Roles:  []string{auth.PresetAccessRole, auth.PresetAuditorRole},
			Traits: services.NewTraits(map[string][]string{"logins": {"carol"}}),
		},
	})
	require.NoError(t, err)
	inc := storedIncarnation(t, s, "carol")

	id, err := s.Auth.GenerateUserIdentity(ctx, "carol", time.Hour)
	require.NoError(t, err)
	cert, err := id.TLSCertificate()
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	require.NoError(t, err)
	got, err := certext.IncarnationFromX509(leaf)
	require.NoError(t, err)
	require.Equal(t, inc, got)

	requireSSHExtensions := func(t *testing.T, authorizedKey []byte) {
		t.Helper()
		pub, _, _, _, err := ssh.ParseAuthorizedKey(authorizedKey)
		require.NoError(t, err)
		sshCert := pub.(*ssh.Certificate)
		require.Equal(t, inc, sshCert.Extensions[certext.SSHExtIncarnation])
		roles, err := certext.DecodeRoles(sshCert.Extensions[certext.SSHExtRoles])
		require.NoError(t, err)
		require.Equal(t, []string{auth.PresetAccessRole, auth.PresetAuditorRole}, roles)
		require.Contains(t, sshCert.Extensions, "permit-pty")
	}
	requireSSHExtensions(t, id.SSHCert)

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	signed, err := s.Auth.SignSSHUserCert(ctx, auth.SSHCertRequest{Username: "carol", PublicKey: signer.PublicKey(), TTL: time.Hour})
	require.NoError(t, err)
	requireSSHExtensions(t, signed)
}

// TestEarlierIncarnationRefusedOverGRPC checks that a certificate works
// across updates of its user but never after the user is deleted and
// created again, even when whoever re-creates it sends the old incarnation.
func TestEarlierIncarnationRefusedOverGRPC(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		// change does something to user bob, an editor holding a
		// certificate, and says whether the certificate must still work.
		change func(t *testing.T, s *authtest.Server, oldInc string)
		works  bool
	}{
		{"update keeps the incarnation", func(t *testing.T, s *authtest.Server, _ string) {
			s.CreateUser(t, "bob", auth.PresetEditorRole, auth.PresetAuditorRole)
		}, true},
		{"delete and create", func(t *testing.T, s *authtest.Server, _ string) {
			require.NoError(t, s.Auth.Services().Users.DeleteUser(ctx, "bob"))
			s.CreateUser(t, "bob", auth.PresetEditorRole)
		}, false},
		{"delete and create with the old incarnation", func(t *testing.T, s *authtest.Server, oldInc string) {
			require.NoError(t, s.Auth.Services().Users.DeleteUser(ctx, "bob"))
			_, err := s.Auth.Services().Users.CreateUser(ctx, &typesv1.User{
				Metadata: &typesv1.Metadata{Name: "bob"},
				Spec:     &typesv1.UserSpec{Roles: []string{auth.PresetEditorRole}, Incarnation: oldInc},
			})
			require.NoError(t, err)
		}, false},
		{"an update that sends another incarnation", func(t *testing.T, s *authtest.Server, _ string) {
			_, err := s.Auth.Services().Users.UpsertUser(ctx, &typesv1.User{
				Metadata: &typesv1.Metadata{Name: "bob"},
				Spec:     &typesv1.UserSpec{Roles: []string{auth.PresetEditorRole}, Incarnation: "ffffffffffffffffffffffffffffffff"},
			})
			require.NoError(t, err)
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := authtest.NewServer(t, authtest.Options{})
			s.CreateUser(t, "bob", auth.PresetEditorRole)
			c := s.Client(t, "bob")
			_, err := c.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
			require.NoError(t, err)
			oldInc := storedIncarnation(t, s, "bob")

			tc.change(t, s, oldInc)
			_, err = c.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
			if tc.works {
				require.NoError(t, err)
				require.Equal(t, oldInc, storedIncarnation(t, s, "bob"))
				return
			}
			require.True(t, trace.IsAccessDenied(err), "got %v", err)
			require.ErrorContains(t, err, `earlier incarnation of user "bob"`)
			require.NotEqual(t, oldInc, storedIncarnation(t, s, "bob"))
			authtest.RequireEvent(t, s, "access.denied", "bob")
			// A new certificate for the new incarnation works.
			_, err = s.Client(t, "bob").Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
			require.NoError(t, err)
		})
	}
}

func TestLegacyUsersGetAnIncarnationAtStartup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bk, err := memory.New(ctx, memory.Config{Clock: clockwork.NewFakeClock()})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	item, err := services.MarshalUser(&typesv1.User{Metadata: &typesv1.Metadata{Name: "old"}, Spec: &typesv1.UserSpec{Roles: []string{auth.PresetEditorRole}}})
	require.NoError(t, err)
	_, err = bk.Put(ctx, item)
	require.NoError(t, err)

	a, err := auth.New(ctx, auth.Config{Backend: bk, ClusterName: "c1"})
	require.NoError(t, err)
	u, err := a.Services().Users.GetUser(ctx, "old", false)
	require.NoError(t, err)
	first := u.GetSpec().GetIncarnation()
	require.Len(t, first, 32)

	// A restart keeps it.
	a, err = auth.New(ctx, auth.Config{Backend: bk, ClusterName: "c1"})
	require.NoError(t, err)
	u, err = a.Services().Users.GetUser(ctx, "old", false)
	require.NoError(t, err)
	require.Equal(t, first, u.GetSpec().GetIncarnation())
}
