package credentialsv1_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/auth/credentialsv1"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	credentialspb "github.com/gatehouse/gatehouse/proto/gatehouse/credentials/v1"
	rolepb "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const loginsRole = "node-logins"

// target creates a local user name holding a role that allows the login
// "root" and lasts at most 2h.
func target(t *testing.T, s *authtest.Server, name string) {
	t.Helper()
	ctx := context.Background()
	_, err := s.Auth.Services().Roles.UpsertRole(ctx, &typesv1.Role{
		Metadata: &typesv1.Metadata{Name: loginsRole},
		Spec: &typesv1.RoleSpec{
			Allow:   &typesv1.RoleConditions{Logins: []string{"root"}},
			Options: &typesv1.RoleOptions{MaxSessionTtl: "2h"},
		},
	})
	require.NoError(t, err)
	s.CreateUser(t, name, loginsRole)
}

// roleless creates a local user name holding no role, whose password a
// caller with only user update may set (authz.Checker.CheckManage).
func roleless(t *testing.T, s *authtest.Server, name string) {
	t.Helper()
	s.CreateUser(t, name)
}

// passwordAdmin returns a client for a user whose role allows only user
// update and who also holds access, so that it may set the password of the
// accounts holding access (and no more) that the tests use.
func passwordAdmin(t *testing.T, s *authtest.Server) *client.Client {
	t.Helper()
	s.CreateRole(t, "pwadmin-role", []string{services.KindUser}, []string{services.VerbUpdate})
	s.CreateUser(t, "pwadmin", "pwadmin-role", "access")
	return s.Client(t, "pwadmin")
}

func pubKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	sp, err := ssh.NewPublicKey(pub)
	require.NoError(t, err)
	return string(ssh.MarshalAuthorizedKey(sp))
}

type call = func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error

func TestEveryRPC(t *testing.T) {
	t.Parallel()
	authtest.RunRPCCases(t, credentialspb.CredentialsService_ServiceDesc, authz.KindCert, map[string]authtest.RPCCase{
		"SignSSHCert": {
			Verbs: []string{services.VerbCreate},
			Setup: target,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Credentials.SignSSHCert(ctx, &credentialspb.SignSSHCertRequest{User: name, PublicKey: pubKey(t)})
				return err
			}),
		},
		"CreateUserIdentity": {
			Verbs: []string{services.VerbCreate},
			Setup: target,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Credentials.CreateUserIdentity(ctx, &credentialspb.CreateUserIdentityRequest{User: name})
				return err
			}),
		},
		"CreatePasswordToken": {
			Kind:  services.KindUser,
			Verbs: []string{services.VerbUpdate},
			Setup: roleless,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Credentials.CreatePasswordToken(ctx, &credentialspb.CreatePasswordTokenRequest{User: name})
				return err
			}),
		},
		"SetPassword": {
			Kind:  services.KindUser,
			Verbs: []string{services.VerbUpdate},
			Setup: roleless,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Credentials.SetPassword(ctx, &credentialspb.SetPasswordRequest{User: name, Password: "correct horse battery"})
				return err
			}),
		},
	})
}

func TestSignSSHCert(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	admin := s.UserWith(t, "certadmin", authz.KindCert, services.VerbCreate)
	target(t, s, "bob")

	resp, err := admin.Credentials.SignSSHCert(ctx, &credentialspb.SignSSHCertRequest{User: "bob", PublicKey: pubKey(t), Ttl: durationpb.New(time.Hour)})
	require.NoError(t, err)
	parsed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(resp.GetCertificate()))
	require.NoError(t, err)
	cert := parsed.(*ssh.Certificate)
	require.Equal(t, "bob", cert.KeyId)
	require.Equal(t, []string{"root"}, cert.ValidPrincipals)
	require.Equal(t, []string{"root"}, resp.GetPrincipals())
	require.Equal(t, s.Clock.Now().Add(time.Hour).Unix(), int64(cert.ValidBefore))
	require.Equal(t, int64(cert.ValidBefore), resp.GetValidBefore().AsTime().Unix())
	// Signed by the user CA the nodes trust.
	caKey, _, _, _, err := ssh.ParseAuthorizedKey(s.Auth.UserCASSHPublicKey())
	require.NoError(t, err)
	require.Equal(t, caKey.Marshal(), cert.SignatureKey.Marshal())
	ev := authtest.RequireEvent(t, s, credentialsv1.EventCertRequest, "certadmin")
	require.Equal(t, "user/bob", ev.GetResource())

	// A longer TTL is cut to the role's max_session_ttl.
	resp, err = admin.Credentials.SignSSHCert(ctx, &credentialspb.SignSSHCertRequest{User: "bob", PublicKey: pubKey(t), Ttl: durationpb.New(48 * time.Hour)})
	require.NoError(t, err)
	require.Equal(t, s.Clock.Now().Add(2*time.Hour).Unix(), resp.GetValidBefore().AsTime().Unix())

	for _, tc := range []struct {
		name  string
		req   *credentialspb.SignSSHCertRequest
		check func(error) bool
	}{
		{"no user", &credentialspb.SignSSHCertRequest{PublicKey: pubKey(t)}, trace.IsBadParameter},
		{"bad key", &credentialspb.SignSSHCertRequest{User: "bob", PublicKey: "ssh-ed25519 AAAA"}, trace.IsBadParameter},
		{"negative ttl", &credentialspb.SignSSHCertRequest{User: "bob", PublicKey: pubKey(t), Ttl: durationpb.New(-time.Minute)}, trace.IsBadParameter},
		{"missing user", &credentialspb.SignSSHCertRequest{User: "nobody", PublicKey: pubKey(t)}, trace.IsAccessDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := admin.Credentials.SignSSHCert(ctx, tc.req)
			require.True(t, tc.check(err), "got %v", err)
		})
	}

	// A user without logins gets none: a certificate without principals
	// would be valid for every login.
	s.CreateUser(t, "nologins")
	_, err = admin.Credentials.SignSSHCert(ctx, &credentialspb.SignSSHCertRequest{User: "nologins", PublicKey: pubKey(t)})
	require.True(t, trace.IsAccessDenied(err), "got %v", err)

	// A locked user gets none, with the lock's message.
	_, err = s.Auth.Services().Locks.CreateLock(ctx, &typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "bob-off"},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "bob"}, Message: "offboarded"},
	})
	require.NoError(t, err)
	_, err = admin.Credentials.SignSSHCert(ctx, &credentialspb.SignSSHCertRequest{User: "bob", PublicKey: pubKey(t)})
	require.True(t, trace.IsAccessDenied(err), "got %v", err)
	require.Contains(t, err.Error(), "offboarded")
}

func TestCreateUserIdentity(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	admin := s.UserWith(t, "idadmin", authz.KindCert, services.VerbCreate)
	// A less privileged user: may list roles, nothing else.
	s.CreateRole(t, "role-reader", []string{services.KindRole}, []string{services.VerbList, services.VerbReadNoSecrets})
	s.CreateUser(t, "reader", "role-reader")

	resp, err := admin.Credentials.CreateUserIdentity(ctx, &credentialspb.CreateUserIdentityRequest{User: "reader", Ttl: durationpb.New(30 * time.Minute)})
	require.NoError(t, err)
	id, err := identityfile.Decode(resp.GetIdentity())
	require.NoError(t, err)
	require.Equal(t, "reader", id.Username)
	require.Equal(t, s.Clock.Now().Add(30*time.Minute).Unix(), resp.GetValidBefore().AsTime().Unix())

	// The identity works, with exactly the reader's rights.
	c, err := client.New(ctx, client.Config{Addr: s.Addr, Identity: id})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
	require.NoError(t, err)
	_, err = c.Credentials.CreateUserIdentity(ctx, &credentialspb.CreateUserIdentityRequest{User: "idadmin"})
	require.True(t, trace.IsAccessDenied(err), "a reader must not mint identities: %v", err)

	_, err = admin.Credentials.CreateUserIdentity(ctx, &credentialspb.CreateUserIdentityRequest{User: "ghost"})
	require.True(t, trace.IsNotFound(err), "got %v", err)
	authtest.RequireEvent(t, s, credentialsv1.EventCertRequest, "idadmin")
}

func TestPasswords(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{PublicAddr: "gatehouse.example.com:3080"})
	ctx := context.Background()
	admin := passwordAdmin(t, s)
	s.CreateUser(t, "carol", "access")

	resp, err := admin.Credentials.CreatePasswordToken(ctx, &credentialspb.CreatePasswordTokenRequest{User: "carol"})
	require.NoError(t, err)
	u, err := url.Parse(resp.GetUrl())
	require.NoError(t, err)
	require.Equal(t, "https", u.Scheme)
	require.Equal(t, "gatehouse.example.com:3080", u.Host)
	require.Equal(t, credentialsv1.PasswordPath, u.Path)
	require.Equal(t, resp.GetToken(), u.Query().Get("token"))
	require.Equal(t, s.Clock.Now().Add(24*time.Hour).Unix(), resp.GetExpires().AsTime().Unix())
	authtest.RequireEvent(t, s, credentialsv1.EventPasswordToken, "pwadmin")

	_, err = admin.Credentials.CreatePasswordToken(ctx, &credentialspb.CreatePasswordTokenRequest{User: "carol", Ttl: durationpb.New(30 * 24 * time.Hour)})
	require.True(t, trace.IsBadParameter(err), "got %v", err)
	_, err = admin.Credentials.CreatePasswordToken(ctx, &credentialspb.CreatePasswordTokenRequest{User: "nobody"})
	require.True(t, trace.IsNotFound(err), "got %v", err)

	_, err = admin.Credentials.SetPassword(ctx, &credentialspb.SetPasswordRequest{User: "carol", Password: "short"})
	require.True(t, trace.IsBadParameter(err), "got %v", err)
	_, err = admin.Credentials.SetPassword(ctx, &credentialspb.SetPasswordRequest{User: "carol", Password: strings.Repeat("x", 73)})
	require.True(t, trace.IsBadParameter(err), "got %v", err)
	_, err = admin.Credentials.SetPassword(ctx, &credentialspb.SetPasswordRequest{User: "carol", Password: "correct horse battery"})
	require.NoError(t, err)
	stored, err := s.Auth.Services().Users.GetUser(ctx, "carol", true)
	require.NoError(t, err)
	require.NoError(t, bcrypt.CompareHashAndPassword(stored.GetSpec().GetLocalAuth().GetPasswordHash(), []byte("correct horse battery")))
	ev := authtest.RequireEvent(t, s, credentialsv1.EventPasswordSet, "pwadmin")
	require.NotContains(t, ev.String(), "correct horse")

	// Users an identity provider manages have no local password.
	_, err = s.Auth.Services().Users.UpsertUser(ctx, &typesv1.User{
		Metadata: &typesv1.Metadata{Name: "scimmed", Labels: map[string]string{services.LabelOrigin: "okta"}},
		Spec:     &typesv1.UserSpec{Roles: []string{"access"}},
	})
	require.NoError(t, err)
	_, err = admin.Credentials.SetPassword(ctx, &credentialspb.SetPasswordRequest{User: "scimmed", Password: "correct horse battery"})
	require.True(t, trace.IsBadParameter(err), "got %v", err)
	_, err = admin.Credentials.CreatePasswordToken(ctx, &credentialspb.CreatePasswordTokenRequest{User: "scimmed"})
	require.True(t, trace.IsBadParameter(err), "got %v", err)
}

// TestPasswordLinkIsBoundToTheAccount: a link names the account it was made
// for by its stored name and its incarnation, so that the link of an
// account deleted since (its name now someone else's) sets no password.
func TestPasswordLinkIsBoundToTheAccount(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	admin := passwordAdmin(t, s)
	s.CreateUser(t, "dave", "access")
	users := s.Auth.Services().Users
	tokens, err := websession.New(websession.Config{Backend: s.Backend, Clock: s.Clock})
	require.NoError(t, err)

	// Asked in another spelling, the link is for the account as stored.
	resp, err := admin.Credentials.CreatePasswordToken(ctx, &credentialspb.CreatePasswordTokenRequest{User: "Dave"})
	require.NoError(t, err)
	dave, err := users.GetUser(ctx, "dave", false)
	require.NoError(t, err)
	link, err := tokens.ConsumePasswordToken(ctx, resp.GetToken())
	require.NoError(t, err)
	require.Equal(t, "dave", link.User)
	require.Equal(t, dave.GetSpec().GetIncarnation(), link.Incarnation)
	require.NoError(t, link.CheckUser(dave))

	// The account is deleted and its name given to a new one: the link of
	// the old account does not fit the new one.
	require.NoError(t, users.DeleteUser(ctx, "dave"))
	s.CreateUser(t, "dave", "access")
	newDave, err := users.GetUser(ctx, "dave", false)
	require.NoError(t, err)
	require.NotEqual(t, dave.GetSpec().GetIncarnation(), newDave.GetSpec().GetIncarnation())
	require.True(t, trace.IsAccessDenied(link.CheckUser(newDave)))

	// A built-in identity gets no link.
	_, err = admin.Credentials.CreatePasswordToken(ctx, &credentialspb.CreatePasswordTokenRequest{User: services.BuiltinAdmin})
	require.True(t, trace.IsAccessDenied(err), "got %v", err)
}

// TestSetPasswordEndsWebSessions: a password set by an administrator ends
// every web session of that user (one opened with the leaked password
// included), and no one else's.
func TestSetPasswordEndsWebSessions(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	admin := passwordAdmin(t, s)
	s.CreateUser(t, "erin", "access")
	s.CreateUser(t, "frank", "access")
	sessions, err := websession.New(websession.Config{Backend: s.Backend, Clock: s.Clock})
	require.NoError(t, err)
	open := func(name string) *websession.Session {
		u, err := s.Auth.Services().Users.GetUser(ctx, name, false)
		require.NoError(t, err)
		sess, err := sessions.CreateSession(ctx, u, websession.MethodPassword, "", time.Hour)
		require.NoError(t, err)
		return sess
	}
	erin1, erin2, frank := open("erin"), open("erin"), open("frank")

	_, err = admin.Credentials.SetPassword(ctx, &credentialspb.SetPasswordRequest{User: "erin", Password: "correct horse battery"})
	require.NoError(t, err)
	for _, sess := range []*websession.Session{erin1, erin2} {
		_, err := sessions.GetSession(ctx, sess.ID)
		require.True(t, trace.IsNotFound(err), "got %v", err)
	}
	_, err = sessions.GetSession(ctx, frank.ID)
	require.NoError(t, err)
	ev := authtest.RequireEvent(t, s, credentialsv1.EventPasswordSet, "pwadmin")
	require.Equal(t, "2", ev.GetFields()["sessions_ended"])
}

// TestPasswordOfAStrongerAccount: user update lets a caller set passwords, but not the password
// of an account holding a role the caller does not hold (that is signing in as an editor); the
// refusal is AccessDenied, sets nothing and is audited. An editor may.
func TestPasswordOfAStrongerAccount(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{PublicAddr: "gatehouse.example.com:3080"})
	ctx := context.Background()
	admin := passwordAdmin(t, s)
	s.CreateUser(t, "boss", "editor")

	_, err := admin.Credentials.SetPassword(ctx, &credentialspb.SetPasswordRequest{User: "boss", Password: "correct horse battery"})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Contains(t, err.Error(), `user "boss" holds role "editor"`)
	u, err := s.Auth.Services().Users.GetUser(ctx, "boss", true)
	require.NoError(t, err)
	require.Empty(t, u.GetSpec().GetLocalAuth().GetPasswordHash(), "no password set")
	ev := authtest.RequireEvent(t, s, credentialsv1.EventPasswordSet, "pwadmin")
	require.NotEqual(t, "success", ev.GetOutcome())
	_, err = admin.Credentials.CreatePasswordToken(ctx, &credentialspb.CreatePasswordTokenRequest{User: "BOSS"})
	require.True(t, trace.IsAccessDenied(err), "%v", err)

	s.CreateUser(t, "ed", "editor")
	_, err = s.Client(t, "ed").Credentials.SetPassword(ctx, &credentialspb.SetPasswordRequest{User: "boss", Password: "correct horse battery"})
	require.NoError(t, err)
}
