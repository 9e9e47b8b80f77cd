package usersync

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/credseal"
	"github.com/gatehouse/gatehouse/lib/auth/pluginv1"
	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/okta/oktaapi"
	"github.com/gatehouse/gatehouse/lib/okta/oktaapi/oktatest"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const (
	testPlugin    = "okta"
	testConnector = "okta-app"
)

type env struct {
	ctx    context.Context
	clock  *clockwork.FakeClock
	b      backend.Backend
	svc    *services.Services
	audit  *services.AuditLog
	org    *oktatest.Org
	prov   *scimprov.Provisioner
	syncer *Syncer
}

// newEnv is a backend with roles, a SAML connector mapping Okta groups to
// roles, a plugin with user sync on and its sealed API token, and a
// stand-in Okta org (its clock follows the test's). pageLimit is the Okta
// page size asked for.
func newEnv(t testing.TB, pageLimit int) *env {
	t.Helper()
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(time.Now().UTC().Truncate(time.Second))
	b, err := memory.New(ctx, memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	svc, err := services.New(services.Config{Backend: b})
	require.NoError(t, err)
	al, err := services.NewAuditLog(services.AuditLogConfig{Backend: b, Clock: clock})
	require.NoError(t, err)
	for _, name := range []string{"access", "eng"} {
		_, err = svc.CreateRole(ctx, &typesv1.Role{
			Metadata: &typesv1.Metadata{Name: name},
			Spec:     &typesv1.RoleSpec{Allow: &typesv1.RoleConditions{Logins: []string{name}}},
		})
		require.NoError(t, err)
	}
	// A role that can write users: beyond what the plugin may grant.
	_, err = svc.CreateRole(ctx, &typesv1.Role{
		Metadata: &typesv1.Metadata{Name: "user-admin"},
		Spec: &typesv1.RoleSpec{Allow: &typesv1.RoleConditions{Rules: []*typesv1.Rule{
			{Resources: []string{services.KindUser}, Verbs: []string{services.VerbCreate}},
		}}},
	})
	require.NoError(t, err)
	_, err = svc.CreateSAMLConnector(ctx, &typesv1.SAMLConnector{
		Metadata: &typesv1.Metadata{Name: testConnector},
		Spec: &typesv1.SAMLConnectorSpec{
			EntityDescriptor: "<EntityDescriptor/>",
			Acs:              "https://gatehouse.example.com/v1/webapi/saml/acs/" + testConnector,
			AttributesToRoles: []*typesv1.AttributeMapping{
				{Name: "groups", Value: "Eng", Roles: []string{"eng"}},
				{Name: "groups", Value: "Admins", Roles: []string{"user-admin"}},
			},
		},
	})
	require.NoError(t, err)

	org := oktatest.New()
	t.Cleanup(org.Close)
	org.SetClock(clock.Now)
	_, err = svc.CreatePlugin(ctx, &typesv1.Plugin{
		Metadata: &typesv1.Metadata{Name: testPlugin},
		Spec: &typesv1.PluginSpec{
			Settings: &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{
				SamlConnector: testConnector,
				DefaultRoles:  []string{"access"},
				UserSync: &typesv1.OktaUserSyncSettings{
					Enabled: true, OrgUrl: org.URL(), AppId: org.AppID,
					CredentialKind: services.UserSyncCredentialAPIToken,
					Interval:       "1m", FullPassInterval: "1h",
				},
			}},
		},
	})
	require.NoError(t, err)
	key := make([]byte, 32)
	_, err = rand.Read(key)
	require.NoError(t, err)
	sealer, err := credseal.New(key)
	require.NoError(t, err)
	sealed, err := sealer.Seal([]byte(org.Token), pluginv1.SealContext(testPlugin))
	require.NoError(t, err)
	_, err = svc.UpsertPluginStaticCredentials(ctx, &typesv1.PluginStaticCredentials{
		Metadata: &typesv1.Metadata{Name: services.UserSyncCredentialsName(testPlugin), Labels: services.UserSyncCredentialsLabels(testPlugin)},
		Spec: &typesv1.PluginStaticCredentialsSpec{OktaApi: &typesv1.OktaAPICredentials{
			Kind: services.UserSyncCredentialAPIToken, SealedSecret: sealed, SealingKeyId: sealer.KeyID(),
		}},
	})
	require.NoError(t, err)

	prov, err := scimprov.New(scimprov.Config{
		Backend: b, Plugins: svc.PluginService, Credentials: svc.PluginStaticCredentialsService,
		SAMLConnectors: svc.SAMLConnectorService, Roles: svc.RoleService, Audit: al, Clock: clock,
	})
	require.NoError(t, err)
	t.Cleanup(func() { prov.Close() })
	syncer, err := New(Config{
		Backend: b, Provisioner: prov, Plugins: svc.PluginService, Credentials: svc.PluginStaticCredentialsService,
		SAMLConnectors: svc.SAMLConnectorService, Opener: sealer,
		// The client's retries wait in real time, briefly.
		ClientConfig: oktaapi.Config{PageLimit: pageLimit, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Clock: clockwork.NewRealClock()},
		Clock:        clock,
	})
	require.NoError(t, err)
	return &env{ctx: ctx, clock: clock, b: b, svc: svc, audit: al, org: org, prov: prov, syncer: syncer}
}

func (e *env) run(t *testing.T, full bool) (*typesv1.OktaUserSyncState, error) {
	t.Helper()
	// Each run happens a little later, so that Okta's changes are after
	// the previous run's cursor.
	e.clock.Advance(2 * time.Minute)
	return e.syncer.Run(e.ctx, testPlugin, RunRequest{Full: full, Holder: "test"})
}

func (e *env) user(t *testing.T, name string) *typesv1.User {
	t.Helper()
	u, err := e.svc.GetUser(e.ctx, name, false)
	if trace.IsNotFound(err) {
		return nil
	}
	require.NoError(t, err)
	return u
}

func (e *env) lock(t *testing.T, name string) *typesv1.Lock {
	t.Helper()
	l, err := e.svc.GetLock(e.ctx, scimprov.LockName(testPlugin, name))
	if trace.IsNotFound(err) {
		return nil
	}
	require.NoError(t, err)
	return l
}

func TestFirstSyncCreatesUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	ids := []string{e.org.AddUser("Alice@Example.com", true), e.org.AddUser("bob@example.com", true), e.org.AddUser("carol@example.com", true)}
	e.org.AddUser("not-assigned@example.com", false)
	eng := e.org.AddGroup("Eng")
	e.org.AddGroup("Sales")
	e.org.AddMember(eng, ids[0])

	st, err := e.run(t, false)
	require.NoError(t, err)
	require.True(t, st.GetLastRunFull(), "the first run is a full pass")
	require.True(t, st.GetLastRunOk())
	require.EqualValues(t, 3, st.GetUsersSeen())
	require.EqualValues(t, 3, st.GetUsersCreated())
	require.NotNil(t, st.GetCursor())
	require.NotNil(t, st.GetNextRun())
	require.Empty(t, st.GetLastError())

	alice := e.user(t, "alice@example.com")
	require.NotNil(t, alice, "the account is named by the canonical login")
	require.Equal(t, []string{"access", "eng"}, alice.GetSpec().GetRoles())
	require.Equal(t, testPlugin, alice.GetMetadata().GetLabels()[services.LabelOrigin])
	require.NotEmpty(t, alice.GetSpec().GetIncarnation())
	require.Equal(t, ids[0], alice.GetSpec().GetCreatedBy().GetConnector().GetIdentity())
	require.Equal(t, []string{"access"}, e.user(t, "bob@example.com").GetSpec().GetRoles())
	require.Nil(t, e.user(t, "not-assigned@example.com"))

	events, err := e.audit.Search(e.ctx, e.clock.Now().Add(-time.Hour), e.clock.Now().Add(time.Hour), nil, services.MaxSearchLimit)
	require.NoError(t, err)
	var creates int
	for _, ev := range events {
		if ev.GetType() == scimprov.EventUserCreate {
			creates++
			require.Equal(t, scimprov.ViaUserSync, ev.GetFields()["via"])
		}
	}
	require.Equal(t, 3, creates)

	// A second run with nothing changed changes nothing, and reads only
	// what changed.
	st, err = e.run(t, false)
	require.NoError(t, err)
	require.False(t, st.GetLastRunFull())
	require.Zero(t, st.GetUsersSeen()+st.GetUsersCreated()+st.GetUsersUpdated()+st.GetUsersLocked())

	// Nor does a full pass: every user is seen, none is written.
	rev := e.user(t, "alice@example.com").GetMetadata().GetRevision()
	st, err = e.run(t, true)
	require.NoError(t, err)
	require.EqualValues(t, 3, st.GetUsersSeen())
	require.Zero(t, st.GetUsersCreated()+st.GetUsersUpdated()+st.GetUsersLocked())
	require.Equal(t, rev, e.user(t, "alice@example.com").GetMetadata().GetRevision())
}

func TestDeactivateAndReactivate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	a := e.org.AddUser("a@example.com", true)
	b := e.org.AddUser("b@example.com", true)
	e.org.AddUser("c@example.com", true)
	_, err := e.run(t, false)
	require.NoError(t, err)
	incA := e.user(t, "a@example.com").GetSpec().GetIncarnation()

	// Suspended: seen by an incremental run, deleted and locked.
	e.clock.Advance(time.Second)
	e.org.SetStatus(b, "SUSPENDED")
	st, err := e.run(t, false)
	require.NoError(t, err)
	require.False(t, st.GetLastRunFull())
	require.EqualValues(t, 1, st.GetUsersLocked())
	require.Nil(t, e.user(t, "b@example.com"))
	require.NotNil(t, e.lock(t, "b@example.com"))

	// Unassigned: the next incremental run reads it in the System Log
	// and confirms it (logs_test.go covers the details).
	e.org.Unassign(a)
	st, err = e.run(t, false)
	require.NoError(t, err)
	require.False(t, st.GetLastRunFull())
	require.EqualValues(t, 1, st.GetUsersLocked())
	require.Nil(t, e.user(t, "a@example.com"))
	require.NotNil(t, e.lock(t, "a@example.com"))

	// An administrator's own lock on b is left in place by reactivation.
	_, err = e.svc.CreateLock(e.ctx, &typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "admin-lock-b"},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "b@example.com"}, Message: "under investigation"},
	})
	require.NoError(t, err)

	// Reassigned and unsuspended: reactivated with a new incarnation,
	// and only the plugin's own locks lifted.
	e.clock.Advance(time.Second)
	e.org.Assign(a)
	e.org.SetStatus(b, "ACTIVE")
	st, err = e.run(t, false)
	require.NoError(t, err)
	require.EqualValues(t, 2, st.GetUsersUpdated())
	require.NotNil(t, e.user(t, "a@example.com"))
	require.NotEqual(t, incA, e.user(t, "a@example.com").GetSpec().GetIncarnation())
	require.Nil(t, e.lock(t, "a@example.com"))
	require.Nil(t, e.lock(t, "b@example.com"))
	l, err := e.svc.GetLock(e.ctx, "admin-lock-b")
	require.NoError(t, err)
	require.Equal(t, "under investigation", l.GetSpec().GetMessage())
}

func TestFailedRunDeletesNobody(t *testing.T) {
	t.Parallel()
	for name, inject := range map[string]func(o *oktatest.Org){
		// With pages of 2 users, call 1 lists groups, call 2 the members
		// of Eng, calls 3+ the app users: failing the fourth call and all
		// its retries fails the listing after its first page.
		"5xx mid-pagination": func(o *oktatest.Org) {
			for i := 4; i <= 4+oktaapi.DefaultMaxRetries; i++ {
				o.FailCall(i, 503)
			}
		},
		"truncated page": func(o *oktatest.Org) { o.TruncateCall(4) },
		"401":            func(o *oktatest.Org) { o.FailCall(4, 401) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 2)
			var ids []string
			for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
				ids = append(ids, e.org.AddUser(n+"@example.com", true))
			}
			e.org.AddGroup("Eng")
			first, err := e.run(t, false)
			require.NoError(t, err)

			e.org.Unassign(ids[0])
			e.org.Unassign(ids[5])
			inject(e.org)
			st, err := e.run(t, true)
			require.Error(t, err)
			require.False(t, st.GetLastRunOk())
			require.NotEmpty(t, st.GetLastError())
			require.Equal(t, first.GetCursor().AsTime(), st.GetCursor().AsTime(), "a failed run does not move the cursor")
			require.Zero(t, st.GetUsersLocked())
			for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
				require.NotNil(t, e.user(t, n+"@example.com"), "%s was deleted by a failed run", n)
			}
			// The next clean full pass does the work.
			st, err = e.run(t, true)
			require.NoError(t, err)
			require.EqualValues(t, 2, st.GetUsersLocked())
			require.Nil(t, e.user(t, "a@example.com"))
			require.Nil(t, e.user(t, "f@example.com"))
		})
	}
}

func TestEmptyListingDeletesNobody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	a := e.org.AddUser("a@example.com", true)
	b := e.org.AddUser("b@example.com", true)
	_, err := e.run(t, false)
	require.NoError(t, err)
	e.org.Unassign(a)
	e.org.Unassign(b)
	st, err := e.run(t, true)
	require.ErrorContains(t, err, "refusing to deactivate")
	require.False(t, st.GetLastRunOk())
	require.NotNil(t, e.user(t, "a@example.com"))
	require.NotNil(t, e.user(t, "b@example.com"))
}

func TestReachAndGroups(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100)
	// A local account holds one login: out of the plugin's reach.
	_, err := e.svc.CreateUser(e.ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "root@example.com"}, Spec: &typesv1.UserSpec{Roles: []string{"eng"}}})
	require.NoError(t, err)
	rootID := e.org.AddUser("ROOT@example.com", true)
	dev := e.org.AddUser("dev@example.com", true)
	eng := e.org.AddGroup("Eng")
	st, err := e.run(t, false)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.GetUsersRefused())
	require.Contains(t, st.GetLastError(), rootID)
	require.Empty(t, e.user(t, "root@example.com").GetMetadata().GetLabels()[services.LabelOrigin], "the local account is untouched")

	// Suspending the Okta user never locks or deletes the local account.
	e.clock.Advance(time.Second)
	e.org.SetStatus(rootID, "SUSPENDED")
	_, err = e.run(t, true)
	require.NoError(t, err)
	require.NotNil(t, e.user(t, "root@example.com"))
	require.Nil(t, e.lock(t, "root@example.com"))

	// The grant ceiling: a group mapped to a role that can write users
	// gives nothing; reserved names are refused.
	admins := e.org.AddGroup("Admins")
	e.org.AddMember(admins, dev)
	e.org.AddUser("@admin", true)
	st, err = e.run(t, true)
	require.NoError(t, err)
	require.Equal(t, []string{"access"}, e.user(t, "dev@example.com").GetSpec().GetRoles())
	require.EqualValues(t, 1, st.GetUsersRefused(), "@admin (root is suspended by now, so not applied at all)")
	require.Contains(t, st.GetLastError(), "reserved")
	e.org.RemoveMember(admins, dev)

	// A group change (which does not touch the user in Okta) reaches the
	// account on the next run, incremental or not.
	e.org.AddMember(eng, dev)
	st, err = e.run(t, false)
	require.NoError(t, err)
	require.False(t, st.GetLastRunFull())
	require.Equal(t, []string{"access", "eng"}, e.user(t, "dev@example.com").GetSpec().GetRoles())
	e.org.RemoveMember(eng, dev)
	_, err = e.run(t, false)
	require.NoError(t, err)
	require.Equal(t, []string{"access"}, e.user(t, "dev@example.com").GetSpec().GetRoles())
}

func TestSCIMOnRefusesToRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	_, err := e.svc.UpdateAndSwapPlugin(e.ctx, testPlugin, func(p *typesv1.Plugin) error {
		p.GetSpec().GetOkta().UserSync.Enabled = false
		p.GetSpec().GetOkta().ScimEnabled = true
		return nil
	})
	require.NoError(t, err)
	_, err = e.run(t, false)
	require.ErrorContains(t, err, "does not have user sync enabled")
}

func TestIncrementalFilterRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	a := e.org.AddUser("a@example.com", true)
	e.org.AddUser("b@example.com", true)
	_, err := e.run(t, false)
	require.NoError(t, err)
	e.org.RejectFilter = true
	e.org.Unassign(a)
	st, err := e.run(t, false)
	require.NoError(t, err)
	require.True(t, st.GetLastRunFull(), "a refused filter turns the run into a full pass")
	require.EqualValues(t, 1, st.GetUsersSeen())
	require.EqualValues(t, 1, st.GetUsersLocked())
	require.Nil(t, e.user(t, "a@example.com"))
}

// TestTakesOverSCIMRecords checks the switch from SCIM: a record Okta
// pushed over SCIM (externalId = the Okta id) is taken over, not
// duplicated; one without an Okta id is left alone.
func TestTakesOverSCIMRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100)
	id := e.org.AddUser("pushed@example.com", true)
	pushed, err := e.prov.CreateUser(e.ctx, testPlugin, &scimrecord.UserRecord{
		UserName: "pushed@example.com", ExternalID: id, Active: true, Attributes: json.RawMessage(`{"userName":"pushed@example.com"}`),
	})
	require.NoError(t, err)
	_, err = e.prov.CreateUser(e.ctx, testPlugin, &scimrecord.UserRecord{
		UserName: "other-client@example.com", Active: true, Attributes: json.RawMessage(`{}`),
	})
	require.NoError(t, err)
	inc := e.user(t, "pushed@example.com").GetSpec().GetIncarnation()

	st, err := e.run(t, true)
	require.NoError(t, err)
	require.Zero(t, st.GetUsersCreated())
	require.Zero(t, st.GetUsersLocked())
	recs, err := e.prov.LookupUsers(e.ctx, testPlugin, scimstore.AttrExternalID, id)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, pushed.ID, recs[0].ID, "the SCIM record is the one kept")
	require.Equal(t, inc, e.user(t, "pushed@example.com").GetSpec().GetIncarnation(), "an update in place keeps credentials")
	require.NotNil(t, e.user(t, "other-client@example.com"))
}

// TestRename checks that a login changed in Okta moves the account: the
// old name's account is deleted (its credentials die with it) and the new
// one is created with a fresh incarnation.
func TestRename(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100)
	id := e.org.AddUser("old@example.com", true)
	_, err := e.run(t, false)
	require.NoError(t, err)
	inc := e.user(t, "old@example.com").GetSpec().GetIncarnation()
	e.clock.Advance(time.Second)
	e.org.SetLogin(id, "New@Example.com")
	st, err := e.run(t, false)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.GetUsersUpdated())
	require.Nil(t, e.user(t, "old@example.com"))
	renamed := e.user(t, "new@example.com")
	require.NotNil(t, renamed)
	require.NotEqual(t, inc, renamed.GetSpec().GetIncarnation())
}

// TestUnsafeTextRefused: an active Okta user whose login or profile holds a
// control character or a bidirectional override is not applied (counted and
// reported, escaped); the rest of the run goes on. Deprovisioning such a user
// is never refused.
func TestUnsafeTextRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100)
	osc := e.org.AddUser("eve@example.com", true)
	e.org.SetName(osc, "Eve\x1b]52;c;Y3VybCBldmlsfHNo\x07", "Test")
	rlo := e.org.AddUser("rlo@example.com", true)
	e.org.SetName(rlo, "R", "gnp\u202eexe")
	e.org.AddUser("dev@example.com", true)
	st, err := e.run(t, true)
	require.NoError(t, err)
	require.EqualValues(t, 2, st.GetUsersRefused())
	require.EqualValues(t, 1, st.GetUsersCreated())
	require.Contains(t, st.GetLastError(), osc)
	require.Contains(t, st.GetLastError(), "profile.name.givenName holds the control character U+001B")
	require.NotContains(t, st.GetLastError(), "\x1b")
	require.Nil(t, e.user(t, "eve@example.com"))
	require.Nil(t, e.user(t, "rlo@example.com"))
	require.NotNil(t, e.user(t, "dev@example.com"))

	// An account made before the profile went bad is still deprovisioned.
	e.org.SetName(rlo, "R", "Test")
	_, err = e.run(t, true)
	require.NoError(t, err)
	require.NotNil(t, e.user(t, "rlo@example.com"))
	e.org.SetName(rlo, "R", "gnp\u202eexe")
	e.org.SetStatus(rlo, "SUSPENDED")
	_, err = e.run(t, true)
	require.NoError(t, err)
	require.Nil(t, e.user(t, "rlo@example.com"))
	require.NotNil(t, e.lock(t, "rlo@example.com"))
}
