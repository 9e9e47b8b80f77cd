package auth_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/auth/grpcerr"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	auditpb "github.com/gatehouse/gatehouse/proto/gatehouse/audit/v1"
	lockpb "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	pluginpb "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	rolepb "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	samlpb "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
	userpb "github.com/gatehouse/gatehouse/proto/gatehouse/user/v1"
)

var allServices = []grpc.ServiceDesc{
	pluginpb.PluginService_ServiceDesc,
	userpb.UserService_ServiceDesc,
	rolepb.RoleService_ServiceDesc,
	lockpb.LockService_ServiceDesc,
	samlpb.SAMLConnectorService_ServiceDesc,
	auditpb.AuditService_ServiceDesc,
}

// callEvery calls every RPC of every service with an empty request and
// returns the error of each by full method name.
func callEvery(ctx context.Context, c *client.Client) map[string]error {
	out := map[string]error{}
	for _, d := range allServices {
		for _, m := range d.Methods {
			method := "/" + d.ServiceName + "/" + m.MethodName
			out[method] = grpcerr.FromGRPC(c.Conn().Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{}))
		}
	}
	return out
}

func TestCAsAgreeAndSurviveRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := clockwork.NewFakeClock()
	bk, err := memory.New(ctx, memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })

	const n = 4
	servers := make([]*auth.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			servers[i], errs[i] = auth.New(ctx, auth.Config{Backend: bk, ClusterName: "c1"})
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, servers[0].UserCACertPEM(), servers[i].UserCACertPEM())
		require.Equal(t, servers[0].HostCACertPEM(), servers[i].HostCACertPEM())
		require.Equal(t, servers[0].UserCASSHPublicKey(), servers[i].UserCASSHPublicKey())
	}
	require.NotEqual(t, servers[0].UserCACertPEM(), servers[0].HostCACertPEM())
	block, _ := pem.Decode(servers[0].UserCACertPEM())
	caCert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	require.True(t, caCert.IsCA)
	require.Equal(t, x509.ECDSA, caCert.PublicKeyAlgorithm)
	pub, _, _, _, err := ssh.ParseAuthorizedKey(servers[0].UserCASSHPublicKey())
	require.NoError(t, err)
	require.Equal(t, ssh.KeyAlgoED25519, pub.Type())

	for _, name := range []string{auth.PresetEditorRole, auth.PresetAccessRole, auth.PresetAuditorRole} {
		_, err := servers[0].Services().Roles.GetRole(ctx, name)
		require.NoError(t, err, name)
	}
	// An operator's edit to a preset survives a restart.
	_, err = servers[0].Services().Roles.UpdateAndSwapRole(ctx, auth.PresetAccessRole, func(r *typesv1.Role) error {
		r.Metadata.Description = "edited"
		return nil
	})
	require.NoError(t, err)
	again, err := auth.New(ctx, auth.Config{Backend: bk, ClusterName: "c1"})
	require.NoError(t, err)
	require.Equal(t, servers[0].UserCACertPEM(), again.UserCACertPEM())
	r, err := again.Services().Roles.GetRole(ctx, auth.PresetAccessRole)
	require.NoError(t, err)
	require.Equal(t, "edited", r.GetMetadata().GetDescription())

	_, err = auth.New(ctx, auth.Config{Backend: bk, ClusterName: "other"})
	require.True(t, trace.IsBadParameter(err), "a different cluster name must be refused: %v", err)
}

func TestLockedUserRefusedOnEveryCall(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	s.CreateUser(t, "alice", auth.PresetEditorRole)
	c := s.Client(t, "alice")

	// Unlocked, the editor reaches every handler (which then may refuse the
	// empty request, but never with access denied).
	for method, err := range callEvery(ctx, c) {
		require.False(t, trace.IsAccessDenied(err), "%s: %v", method, err)
	}

	for _, target := range []*typesv1.LockTarget{{User: "alice"}, {Role: auth.PresetEditorRole}} {
		_, err := s.Auth.Services().Locks.CreateLock(ctx, &typesv1.Lock{
			Metadata: &typesv1.Metadata{Name: "l1", Expires: timestamppb.New(s.Clock.Now().Add(time.Hour))},
			Spec:     &typesv1.LockSpec{Target: target, Message: "offboarded"},
		})
		require.NoError(t, err)
		for method, err := range callEvery(ctx, c) {
			require.True(t, trace.IsAccessDenied(err), "%s with lock %v: %v", method, target, err)
			require.Contains(t, err.Error(), "offboarded")
		}
		_, err = s.Auth.GenerateUserIdentity(ctx, "alice", time.Hour)
		require.True(t, trace.IsAccessDenied(err), "no new certificates for a locked user: %v", err)
		authtest.RequireEvent(t, s, "access.denied", "alice")
		require.NoError(t, s.Auth.Services().Locks.DeleteLock(ctx, "l1"))
	}

	// A lock that names a login only concerns SSH sessions, not the API.
	_, err := s.Auth.Services().Locks.CreateLock(ctx, &typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "login-lock"},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "alice", Login: "root"}},
	})
	require.NoError(t, err)
	_, err = c.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
	require.NoError(t, err)
	require.NoError(t, s.Auth.Services().Locks.DeleteLock(ctx, "login-lock"))

	// An expiring lock lifts by itself.
	_, err = s.Auth.Services().Locks.CreateLock(ctx, &typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "short", Expires: timestamppb.New(s.Clock.Now().Add(time.Minute))},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "alice"}},
	})
	require.NoError(t, err)
	_, err = c.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
	require.True(t, trace.IsAccessDenied(err), "got %v", err)
	s.Clock.Advance(2 * time.Minute)
	_, err = c.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
	require.NoError(t, err)
}

// TestRolesComeFromTheUserRecord checks that a role change and a user
// deletion take effect on the next call, whatever the certificate says.
func TestRolesComeFromTheUserRecord(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	s.CreateUser(t, "bob", auth.PresetEditorRole)
	c := s.Client(t, "bob")
	_, err := c.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
	require.NoError(t, err)

	s.CreateUser(t, "bob", auth.PresetAuditorRole)
	_, err = c.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
	require.True(t, trace.IsAccessDenied(err), "got %v", err)
	_, err = c.Audit.SearchEvents(ctx, &auditpb.SearchEventsRequest{})
	require.NoError(t, err)

	require.NoError(t, s.Auth.Services().Users.DeleteUser(ctx, "bob"))
	_, err = c.Audit.SearchEvents(ctx, &auditpb.SearchEventsRequest{})
	require.True(t, trace.IsAccessDenied(err), "got %v", err)
	require.Contains(t, err.Error(), "no longer exists")
}

// TestForeignCertificateRefused checks that the listener accepts only
// certificates of its own user CA.
func TestForeignCertificateRefused(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	other := authtest.NewServer(t, authtest.Options{})
	other.CreateUser(t, "mallory", auth.PresetEditorRole)
	s.CreateUser(t, "mallory", auth.PresetEditorRole)
	id, err := other.Auth.GenerateUserIdentity(context.Background(), "mallory", time.Hour)
	require.NoError(t, err)
	// Trust s's host CA so that only the client side is foreign.
	id.CACertsPEM = [][]byte{s.Auth.HostCACertPEM()}
	c, err := client.New(context.Background(), client.Config{Addr: s.Addr, Identity: id})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
	require.Error(t, err)
}

func TestGenerateUserIdentity(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()

	_, err := s.Auth.GenerateUserIdentity(ctx, "nobody", time.Hour)
	require.True(t, trace.IsNotFound(err), "got %v", err)

	_, err = s.Auth.Services().Users.CreateUser(ctx, &typesv1.User{
		Metadata: &typesv1.Metadata{Name: "carol"},
		Spec: &typesv1.UserSpec{
			Roles:  []string{auth.PresetAccessRole, auth.PresetAuditorRole},
			Traits: map[string]*structpb.ListValue{"logins": {Values: []*structpb.Value{structpb.NewStringValue("carol"), structpb.NewStringValue("ubuntu")}}},
		},
	})
	require.NoError(t, err)
	id, err := s.Auth.GenerateUserIdentity(ctx, "carol", 0)
	require.NoError(t, err)
	cert, err := id.TLSCertificate()
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	require.NoError(t, err)
	require.Equal(t, "carol", leaf.Subject.CommonName)
	require.Equal(t, []string{auth.PresetAccessRole, auth.PresetAuditorRole}, leaf.Subject.Organization)
	require.Equal(t, 12*time.Hour, leaf.NotAfter.Sub(s.Clock.Now()), "default TTL is the roles' max session TTL")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.Auth.UserCACertPEM())
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: s.Clock.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err)

	// The SSH certificate carries the logins of the user's trait.
	pub, _, _, _, err := ssh.ParseAuthorizedKey(id.SSHCert)
	require.NoError(t, err)
	sshCert, ok := pub.(*ssh.Certificate)
	require.True(t, ok)
	require.Equal(t, []string{"carol", "ubuntu"}, sshCert.ValidPrincipals)
	caPub, _, _, _, err := ssh.ParseAuthorizedKey(s.Auth.UserCASSHPublicKey())
	require.NoError(t, err)
	require.Equal(t, caPub.Marshal(), sshCert.SignatureKey.Marshal())

	// A longer TTL than the roles allow is cut.
	id, err = s.Auth.GenerateUserIdentity(ctx, "carol", 100*time.Hour)
	require.NoError(t, err)
	cert, err = id.TLSCertificate()
	require.NoError(t, err)
	leaf, err = x509.ParseCertificate(cert.Certificate[0])
	require.NoError(t, err)
	require.Equal(t, 12*time.Hour, leaf.NotAfter.Sub(s.Clock.Now()))

	// The identity round-trips through an identity file.
	path := filepath.Join(t.TempDir(), "carol.identity")
	require.NoError(t, identityfile.Write(path, id))
	back, err := identityfile.Read(path)
	require.NoError(t, err)
	require.Equal(t, id.CertPEM, back.CertPEM)
	require.Equal(t, "carol", back.Username)

	// The built-in operator identity has no logins, so it gets no SSH
	// certificate (one without principals would be valid for every login),
	// and it needs no user record.
	id, err = s.Auth.GenerateUserIdentity(ctx, services.BuiltinAdmin, time.Hour)
	require.NoError(t, err)
	require.Empty(t, id.SSHCert)
	c, err := client.New(ctx, client.Config{Addr: s.Addr, Identity: id})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Plugins.ListPlugins(ctx, &pluginpb.ListPluginsRequest{})
	require.NoError(t, err)
}

// TestOddLoginsNeverBecomePrincipals: a "logins" trait (from an identity
// provider) that is not an OS login never becomes a certificate principal,
// nor a login CheckSSHLogin allows: a comma (OpenSSH's principals="..."
// option splits a principal on it, so "alice,root" would pass for root), a
// wildcard, a space, a leading dash or dot, a control character, an
// over-long name.
func TestOddLoginsNeverBecomePrincipals(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	odd := []string{"alice,root", "*", "a b", "-oProxyCommand=x", ".hidden", "..", "x\x1b[8m", "ro\u202eot",
		"root\n", "$", "a$b", "@corp", strings.Repeat("a", 65)}
	vals := []*structpb.Value{structpb.NewStringValue("carol"), structpb.NewStringValue("svc-01.ops@corp.example.com"), structpb.NewStringValue("HOST01$")}
	for _, l := range odd {
		vals = append(vals, structpb.NewStringValue(l))
	}
	_, err := s.Auth.Services().Users.CreateUser(ctx, &typesv1.User{
		Metadata: &typesv1.Metadata{Name: "carol"},
		Spec: &typesv1.UserSpec{
			Roles:  []string{auth.PresetAccessRole},
			Traits: map[string]*structpb.ListValue{"logins": {Values: vals}},
		},
	})
	require.NoError(t, err)
	id, err := s.Auth.GenerateUserIdentity(ctx, "carol", 0)
	require.NoError(t, err)
	pub, _, _, _, err := ssh.ParseAuthorizedKey(id.SSHCert)
	require.NoError(t, err)
	require.Equal(t, []string{"HOST01$", "carol", "svc-01.ops@corp.example.com"}, pub.(*ssh.Certificate).ValidPrincipals)
	for _, l := range odd {
		_, err := s.Auth.CheckSSHLogin(ctx, "carol", l)
		require.True(t, trace.IsAccessDenied(err), "login %q: %v", l, err)
	}
	_, err = s.Auth.CheckSSHLogin(ctx, "carol", "carol")
	require.NoError(t, err)
}
