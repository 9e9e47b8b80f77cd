package services

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func newServices(t *testing.T) (*Services, backend.Backend, *clockwork.FakeClock) {
	t.Helper()
	clock := clockwork.NewFakeClockAt(time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC))
	b, err := memory.New(context.Background(), memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	s, err := New(Config{Backend: b})
	require.NoError(t, err)
	return s, b, clock
}

func TestNewRequiresBackend(t *testing.T) {
	t.Parallel()
	_, err := New(Config{})
	require.True(t, trace.IsBadParameter(err))
	_, err = NewAuditLog(AuditLogConfig{})
	require.True(t, trace.IsBadParameter(err))
}

func TestKeys(t *testing.T) {
	t.Parallel()
	for got, want := range map[string]string{
		UserKey("alice").String():                     "users/alice",
		RoleKey("editor").String():                    "roles/editor",
		LockKey("l").String():                         "locks/l",
		PluginKey("okta").String():                    "plugins/okta",
		PluginStaticCredentialsKey("c").String():      "plugin_static_credentials/c",
		SAMLConnectorKey("okta").String():             "saml/okta",
		CertAuthorityKey("user").String():             "cert_authorities/user",
		EventKey(time.Unix(0, 5).UTC(), "x").String(): "events/1970-01-01T00:00:00.000000005Z/x",
	} {
		require.Equal(t, want, got)
	}
}

func TestUserSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newServices(t)

	u := validUser()
	u.Spec.LocalAuth = &typesv1.LocalAuthSecrets{PasswordHash: []byte("$2a$hash")}
	created, err := s.CreateUser(ctx, u)
	require.NoError(t, err)
	require.Nil(t, created.GetSpec().GetLocalAuth(), "writes return no secrets")
	require.NotEmpty(t, created.GetMetadata().GetRevision())

	got, err := s.GetUser(ctx, u.Metadata.Name, false)
	require.NoError(t, err)
	require.Nil(t, got.GetSpec().GetLocalAuth())
	withSecrets, err := s.GetUser(ctx, u.Metadata.Name, true)
	require.NoError(t, err)
	require.Equal(t, []byte("$2a$hash"), withSecrets.GetSpec().GetLocalAuth().GetPasswordHash())

	list, _, err := s.ListUsers(ctx, 0, "", false)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Nil(t, list[0].GetSpec().GetLocalAuth())
	list, _, err = s.ListUsers(ctx, 0, "", true)
	require.NoError(t, err)
	require.NotNil(t, list[0].GetSpec().GetLocalAuth())

	// Updating a user read without secrets keeps the password hash.
	got.Spec.Roles = []string{"editor"}
	updated, err := s.UpdateUser(ctx, got)
	require.NoError(t, err)
	require.Equal(t, []string{"editor"}, updated.GetSpec().GetRoles())
	withSecrets, err = s.GetUser(ctx, u.Metadata.Name, true)
	require.NoError(t, err)
	require.Equal(t, []byte("$2a$hash"), withSecrets.GetSpec().GetLocalAuth().GetPasswordHash())

	// ... but a stale one still fails, and lends nothing.
	got.Spec.Roles = []string{"auditor"}
	_, err = s.UpdateUser(ctx, got)
	require.True(t, trace.IsCompareFailed(err), "%v", err)

	// Upsert without secrets keeps them too; with secrets replaces them.
	up := validUser()
	up.Spec.Roles = []string{"auditor"}
	_, err = s.UpsertUser(ctx, up)
	require.NoError(t, err)
	withSecrets, err = s.GetUser(ctx, u.Metadata.Name, true)
	require.NoError(t, err)
	require.Equal(t, []string{"auditor"}, withSecrets.GetSpec().GetRoles())
	require.Equal(t, []byte("$2a$hash"), withSecrets.GetSpec().GetLocalAuth().GetPasswordHash())
	up.Spec.LocalAuth = &typesv1.LocalAuthSecrets{PasswordHash: []byte("new")}
	_, err = s.UpsertUser(ctx, up)
	require.NoError(t, err)
	withSecrets, err = s.GetUser(ctx, u.Metadata.Name, true)
	require.NoError(t, err)
	require.Equal(t, []byte("new"), withSecrets.GetSpec().GetLocalAuth().GetPasswordHash())

	// Upsert of a new user creates it.
	fresh := validUser()
	fresh.Metadata.Name = "bob"
	_, err = s.UpsertUser(ctx, fresh)
	require.NoError(t, err)

	// Update-and-swap sees secrets and can remove them.
	out, err := s.UpdateAndSwapUser(ctx, u.Metadata.Name, func(u *typesv1.User) error {
		require.NotNil(t, u.GetSpec().GetLocalAuth())
		u.Spec.LocalAuth = nil
		return nil
	})
	require.NoError(t, err)
	require.Nil(t, out.GetSpec().GetLocalAuth())
	withSecrets, err = s.GetUser(ctx, u.Metadata.Name, true)
	require.NoError(t, err)
	require.Nil(t, withSecrets.GetSpec().GetLocalAuth())

	require.NoError(t, s.DeleteUser(ctx, "bob"))
	require.EqualError(t, s.DeleteUser(ctx, "bob"), `user "bob" not found`)
	_, err = s.GetUser(ctx, "bob", false)
	require.EqualError(t, err, `user "bob" not found`)
	_, err = s.CreateUser(ctx, validUser())
	require.EqualError(t, err, `user "alice@example.com" already exists`)

	cur, err := s.GetUser(ctx, u.Metadata.Name, false)
	require.NoError(t, err)
	require.True(t, trace.IsCompareFailed(s.ConditionalDeleteUser(ctx, u.Metadata.Name, "stale")))
	require.NoError(t, s.ConditionalDeleteUser(ctx, u.Metadata.Name, cur.GetMetadata().GetRevision()))
}

func TestTemporaryUserExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, clock := newServices(t)
	u := validUser()
	u.Metadata.Expires = timestamppb.New(clock.Now().Add(time.Hour))
	_, err := s.CreateUser(ctx, u)
	require.NoError(t, err)
	got, err := s.GetUser(ctx, u.Metadata.Name, false)
	require.NoError(t, err)
	require.False(t, IsUserExpired(got, clock.Now()))
	require.True(t, IsUserExpired(got, clock.Now().Add(time.Hour)))
	clock.Advance(time.Hour)
	_, err = s.GetUser(ctx, u.Metadata.Name, false)
	require.True(t, trace.IsNotFound(err))
}

func TestPluginStaticCredentials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newServices(t)

	c := validCreds()
	created, err := s.CreatePluginStaticCredentials(ctx, c)
	require.NoError(t, err)
	require.Empty(t, created.GetSpec().GetScimTokenHash())
	other := validCreds()
	other.Metadata.Name = "other"
	other.Metadata.Labels = map[string]string{"gatehouse.dev/plugin": "slack"}
	_, err = s.CreatePluginStaticCredentials(ctx, other)
	require.NoError(t, err)

	got, err := s.GetPluginStaticCredentials(ctx, "okta-scim", false)
	require.NoError(t, err)
	require.Empty(t, got.GetSpec().GetScimTokenHash())
	got, err = s.GetPluginStaticCredentials(ctx, "okta-scim", true)
	require.NoError(t, err)
	require.Equal(t, c.Spec.ScimTokenHash, got.GetSpec().GetScimTokenHash())

	list, _, err := s.ListPluginStaticCredentials(ctx, 0, "", false)
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, l := range list {
		require.Empty(t, l.GetSpec().GetScimTokenHash())
	}

	byLabel, err := s.ListPluginStaticCredentialsByLabels(ctx, map[string]string{"gatehouse.dev/plugin": "okta"}, true)
	require.NoError(t, err)
	require.Len(t, byLabel, 1)
	require.Equal(t, "okta-scim", byLabel[0].GetMetadata().GetName())
	require.Equal(t, c.Spec.ScimTokenHash, byLabel[0].GetSpec().GetScimTokenHash())
	byLabel, err = s.ListPluginStaticCredentialsByLabels(ctx, map[string]string{"gatehouse.dev/plugin": "okta"}, false)
	require.NoError(t, err)
	require.Empty(t, byLabel[0].GetSpec().GetScimTokenHash())
	byLabel, err = s.ListPluginStaticCredentialsByLabels(ctx, map[string]string{"gatehouse.dev/plugin": "okta", "x": "y"}, false)
	require.NoError(t, err)
	require.Empty(t, byLabel)
	_, err = s.ListPluginStaticCredentialsByLabels(ctx, nil, false)
	require.True(t, trace.IsBadParameter(err))

	// Updates need the hash: it is the whole resource.
	got.Spec.ScimTokenHash = []byte("rotated")
	_, err = s.UpdatePluginStaticCredentials(ctx, got)
	require.NoError(t, err)
	noHash := validCreds()
	noHash.Spec.ScimTokenHash = nil
	_, err = s.UpsertPluginStaticCredentials(ctx, noHash)
	require.True(t, trace.IsBadParameter(err))
}

func TestSAMLConnectorSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newServices(t)
	created, err := s.CreateSAMLConnector(ctx, validSAML())
	require.NoError(t, err)
	require.Empty(t, created.GetSpec().GetSigningKeyPair().GetPrivateKey())
	require.Equal(t, "CERT", created.GetSpec().GetSigningKeyPair().GetCert())

	got, err := s.GetSAMLConnector(ctx, "okta", false)
	require.NoError(t, err)
	require.Empty(t, got.GetSpec().GetSigningKeyPair().GetPrivateKey())
	list, _, err := s.ListSAMLConnectors(ctx, 0, "", false)
	require.NoError(t, err)
	require.Empty(t, list[0].GetSpec().GetSigningKeyPair().GetPrivateKey())

	// Updating what was read without secrets keeps the key pair.
	got.Spec.Display = "Okta"
	_, err = s.UpdateSAMLConnector(ctx, got)
	require.NoError(t, err)
	full, err := s.GetSAMLConnector(ctx, "okta", true)
	require.NoError(t, err)
	require.Equal(t, "Okta", full.GetSpec().GetDisplay())
	require.Equal(t, "KEY", full.GetSpec().GetSigningKeyPair().GetPrivateKey())

	// Upsert without a key pair keeps it as well.
	c := validSAML()
	c.Spec.SigningKeyPair = nil
	c.Spec.Display = "Okta SSO"
	_, err = s.UpsertSAMLConnector(ctx, c)
	require.NoError(t, err)
	full, err = s.GetSAMLConnector(ctx, "okta", true)
	require.NoError(t, err)
	require.Equal(t, "Okta SSO", full.GetSpec().GetDisplay())
	require.Equal(t, "KEY", full.GetSpec().GetSigningKeyPair().GetPrivateKey())
	require.Equal(t, "CERT", full.GetSpec().GetSigningKeyPair().GetCert())

	require.NoError(t, s.DeleteSAMLConnector(ctx, "okta"))
	require.EqualError(t, s.DeleteSAMLConnector(ctx, "okta"), `saml "okta" not found`)
}

func TestCertAuthoritySecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newServices(t)
	created, err := s.CreateCertAuthority(ctx, validCA())
	require.NoError(t, err)
	require.Empty(t, created.GetSpec().GetSshPrivateKey())
	require.Empty(t, created.GetSpec().GetTlsPrivateKey())
	got, err := s.GetCertAuthority(ctx, UserCA, false)
	require.NoError(t, err)
	require.Empty(t, got.GetSpec().GetSshPrivateKey())
	require.NotEmpty(t, got.GetSpec().GetSshPublicKey())
	got, err = s.GetCertAuthority(ctx, UserCA, true)
	require.NoError(t, err)
	require.Equal(t, []byte("SSHKEY"), got.GetSpec().GetSshPrivateKey())
	require.Equal(t, []byte("TLSKEY"), got.GetSpec().GetTlsPrivateKey())
	list, _, err := s.ListCertAuthorities(ctx, 0, "", false)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Empty(t, list[0].GetSpec().GetTlsPrivateKey())
	list, _, err = s.ListCertAuthorities(ctx, 0, "", true)
	require.NoError(t, err)
	require.NotEmpty(t, list[0].GetSpec().GetTlsPrivateKey())
}

// TestGetPluginItem: the stored item decodes to what GetPlugin returns, and
// a missing plugin is NotFound with the service's message.
func TestGetPluginItem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newServices(t)
	_, err := s.GetPluginItem(ctx, "okta")
	require.True(t, trace.IsNotFound(err))
	require.Contains(t, err.Error(), `plugin "okta" not found`)
	_, err = s.GetPluginItem(ctx, "a/b")
	require.True(t, trace.IsBadParameter(err), "%v", err)

	_, err = s.CreatePlugin(ctx, validPlugin())
	require.NoError(t, err)
	item, err := s.GetPluginItem(ctx, "okta")
	require.NoError(t, err)
	fromItem, err := UnmarshalPlugin(*item)
	require.NoError(t, err)
	got, err := s.GetPlugin(ctx, "okta")
	require.NoError(t, err)
	require.True(t, proto.Equal(got, fromItem))
}

func TestSetPluginStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, clock := newServices(t)
	_, err := s.SetPluginStatus(ctx, "okta", &typesv1.PluginStatus{})
	require.True(t, trace.IsNotFound(err))

	created, err := s.CreatePlugin(ctx, validPlugin())
	require.NoError(t, err)

	// A settings change made meanwhile is not lost by a status write.
	stale := proto.Clone(created).(*typesv1.Plugin)
	okta(created).DefaultRoles = []string{"editor"}
	_, err = s.UpdatePlugin(ctx, created)
	require.NoError(t, err)

	status := &typesv1.PluginStatus{
		Code:         typesv1.PluginStatusCode_PLUGIN_STATUS_CODE_RUNNING,
		LastSyncTime: timestamppb.New(clock.Now()),
		Okta:         &typesv1.OktaPluginStatus{UsersProvisioned: 3},
	}
	out, err := s.SetPluginStatus(ctx, "okta", status)
	require.NoError(t, err)
	require.True(t, proto.Equal(status, out.GetStatus()))
	require.Equal(t, []string{"editor"}, okta(out).GetDefaultRoles())

	got, err := s.GetPlugin(ctx, "okta")
	require.NoError(t, err)
	require.True(t, proto.Equal(status, got.GetStatus()))
	require.Equal(t, []string{"editor"}, okta(got).GetDefaultRoles())

	// The stale copy cannot overwrite either change.
	_, err = s.UpdatePlugin(ctx, stale)
	require.True(t, trace.IsCompareFailed(err))
}

func TestLocksInForce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, clock := newServices(t)

	forever := validLock()
	forever.Metadata.Name = "forever"
	_, err := s.CreateLock(ctx, forever)
	require.NoError(t, err)

	brief := validLock()
	brief.Metadata.Name = "brief"
	brief.Spec.Target = &typesv1.LockTarget{Role: "access"}
	brief.Metadata.Expires = timestamppb.New(clock.Now().Add(time.Minute))
	_, err = s.CreateLock(ctx, brief)
	require.NoError(t, err)

	locks, err := s.GetLocksInForce(ctx)
	require.NoError(t, err)
	require.Len(t, locks, 2)
	require.Equal(t, "brief", locks[0].GetMetadata().GetName())

	bob := LockSubject{User: "bob", Roles: []string{"access"}}
	require.Equal(t, "brief", FindLock(locks, bob, clock.Now()).GetMetadata().GetName())
	require.Nil(t, FindLock(locks, bob, clock.Now().Add(time.Minute)), "an expired lock held in memory is not in force")
	require.Equal(t, "forever", FindLock(locks, LockSubject{User: "alice"}, clock.Now()).GetMetadata().GetName())
	require.Nil(t, FindLock(locks, LockSubject{User: "carol"}, clock.Now()))

	clock.Advance(time.Minute)
	locks, err = s.GetLocksInForce(ctx)
	require.NoError(t, err)
	require.Len(t, locks, 1)
	require.Equal(t, "forever", locks[0].GetMetadata().GetName())
}

// TestAtomicWriteWithMarshalHelpers is what lib/auth does on SCIM
// deactivation: create a lock and delete the user in one backend write.
func TestAtomicWriteWithMarshalHelpers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, b, _ := newServices(t)
	user, err := s.CreateUser(ctx, validUser())
	require.NoError(t, err)

	l := validLock()
	lockItem, err := MarshalLock(l)
	require.NoError(t, err)
	require.Equal(t, LockKey(l.Metadata.Name), lockItem.Key)
	_, err = MarshalLock(&typesv1.Lock{Metadata: &typesv1.Metadata{Name: "x"}})
	require.True(t, trace.IsBadParameter(err), "marshal helpers validate")

	rev, err := b.AtomicWrite(ctx, []backend.ConditionalAction{
		{Key: lockItem.Key, Condition: backend.NotExists(), Action: backend.Put(lockItem)},
		{Key: UserKey(user.Metadata.Name), Condition: backend.Revision(user.Metadata.Revision), Action: backend.Delete()},
	})
	require.NoError(t, err)

	got, err := s.GetLock(ctx, l.Metadata.Name)
	require.NoError(t, err)
	require.Equal(t, rev, got.GetMetadata().GetRevision())
	require.Equal(t, KindLock, got.GetKind(), "marshal helpers set defaults")
	_, err = s.GetUser(ctx, user.Metadata.Name, false)
	require.True(t, trace.IsNotFound(err))

	item, err := b.Get(ctx, lockItem.Key)
	require.NoError(t, err)
	back, err := UnmarshalLock(*item)
	require.NoError(t, err)
	require.True(t, proto.Equal(got, back))

	// Every kind's helpers round-trip.
	for _, tc := range []struct {
		marshal   func() (backend.Item, error)
		unmarshal func(backend.Item) (proto.Message, error)
		key       backend.Key
	}{
		{func() (backend.Item, error) { return MarshalUser(validUser()) }, func(i backend.Item) (proto.Message, error) { return UnmarshalUser(i) }, UserKey("alice@example.com")},
		{func() (backend.Item, error) { return MarshalRole(validRole()) }, func(i backend.Item) (proto.Message, error) { return UnmarshalRole(i) }, RoleKey("editor")},
		{func() (backend.Item, error) { return MarshalPlugin(validPlugin()) }, func(i backend.Item) (proto.Message, error) { return UnmarshalPlugin(i) }, PluginKey("okta")},
		{func() (backend.Item, error) { return MarshalPluginStaticCredentials(validCreds()) }, func(i backend.Item) (proto.Message, error) { return UnmarshalPluginStaticCredentials(i) }, PluginStaticCredentialsKey("okta-scim")},
		{func() (backend.Item, error) { return MarshalSAMLConnector(validSAML()) }, func(i backend.Item) (proto.Message, error) { return UnmarshalSAMLConnector(i) }, SAMLConnectorKey("okta")},
		{func() (backend.Item, error) { return MarshalCertAuthority(validCA()) }, func(i backend.Item) (proto.Message, error) { return UnmarshalCertAuthority(i) }, CertAuthorityKey("user")},
	} {
		t.Run(tc.key.String(), func(t *testing.T) {
			item, err := tc.marshal()
			require.NoError(t, err)
			require.Equal(t, tc.key, item.Key)
			item.Revision = "r1"
			m, err := tc.unmarshal(item)
			require.NoError(t, err)
			require.Equal(t, "r1", m.(interface{ GetMetadata() *typesv1.Metadata }).GetMetadata().GetRevision())
		})
	}
}

func TestRolesCRUD(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newServices(t)
	for i := range 5 {
		r := validRole()
		r.Metadata.Name = fmt.Sprintf("role-%d", i)
		_, err := s.CreateRole(ctx, r)
		require.NoError(t, err)
	}
	page, next, err := s.ListRoles(ctx, 3, "")
	require.NoError(t, err)
	require.Len(t, page, 3)
	page, next, err = s.ListRoles(ctx, 3, next)
	require.NoError(t, err)
	require.Len(t, page, 2)
	require.Empty(t, next)

	bad := validRole()
	bad.Spec.Allow.Rules[0].Verbs = []string{"destroy"}
	_, err = s.UpsertRole(ctx, bad)
	require.True(t, trace.IsBadParameter(err))

	out, err := s.UpdateAndSwapRole(ctx, "role-0", func(r *typesv1.Role) error {
		r.Spec.Options.MaxSessionTtl = "1h"
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, "1h", out.GetSpec().GetOptions().GetMaxSessionTtl())
}
