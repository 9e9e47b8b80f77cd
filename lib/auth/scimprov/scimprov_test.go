package scimprov

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/pluginv1"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/lite"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const (
	testPlugin    = "okta"
	testConnector = "okta-saml"
)

// countingBackend counts the writes that reach the backend, to show that a
// deactivation is one AtomicWrite and nothing else.
type countingBackend struct {
	backend.Backend
	atomicWrites atomic.Int64
	otherWrites  atomic.Int64
	// reads counts Get and GetRange, to show what the settings view spares.
	reads atomic.Int64
	// got records the keys Get read, to show what a create does not read.
	mu  sync.Mutex
	got []string
}

func (c *countingBackend) Get(ctx context.Context, k backend.Key) (*backend.Item, error) {
	c.reads.Add(1)
	c.mu.Lock()
	c.got = append(c.got, string(k))
	c.mu.Unlock()
	return c.Backend.Get(ctx, k)
}

// keysRead returns the keys Get read since the last call.
func (c *countingBackend) keysRead() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.got
	c.got = nil
	return got
}

func (c *countingBackend) GetRange(ctx context.Context, start, end backend.Key, limit int) (*backend.GetResult, error) {
	c.reads.Add(1)
	return c.Backend.GetRange(ctx, start, end, limit)
}

func (c *countingBackend) AtomicWrite(ctx context.Context, a []backend.ConditionalAction) (string, error) {
	c.atomicWrites.Add(1)
	return c.Backend.AtomicWrite(ctx, a)
}

func (c *countingBackend) Put(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	c.otherWrites.Add(1)
	return c.Backend.Put(ctx, i)
}

func (c *countingBackend) Create(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	c.otherWrites.Add(1)
	return c.Backend.Create(ctx, i)
}

func (c *countingBackend) Update(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	c.otherWrites.Add(1)
	return c.Backend.Update(ctx, i)
}

func (c *countingBackend) ConditionalUpdate(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	c.otherWrites.Add(1)
	return c.Backend.ConditionalUpdate(ctx, i)
}

func (c *countingBackend) Delete(ctx context.Context, k backend.Key) error {
	c.otherWrites.Add(1)
	return c.Backend.Delete(ctx, k)
}

func (c *countingBackend) ConditionalDelete(ctx context.Context, k backend.Key, rev string) error {
	c.otherWrites.Add(1)
	return c.Backend.ConditionalDelete(ctx, k, rev)
}

func (c *countingBackend) writes() (int64, int64) { return c.atomicWrites.Load(), c.otherWrites.Load() }

type env struct {
	ctx   context.Context
	clock *clockwork.FakeClock
	b     *countingBackend
	svc   *services.Services
	audit *services.AuditLog
	p     *Provisioner
	token string
}

var backends = []string{"memory", "lite"}

// onEachBackend runs fn as a parallel subtest per backend, each with its
// own env.
func onEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, kind))
		})
	}
}

// create provisions userName (externalId externalID) and fails the test
// if it cannot.
func (e *env) create(t *testing.T, userName, externalID string) *scimrecord.UserRecord {
	t.Helper()
	rec, err := e.p.CreateUser(e.ctx, testPlugin, newRecord(userName, externalID))
	require.NoError(t, err)
	return rec
}

// requireNotRead fails the test if a key read since the last keysRead
// contains part.
func (e *env) requireNotRead(t *testing.T, part, why string) {
	t.Helper()
	for _, k := range e.b.keysRead() {
		require.NotContains(t, strings.ToLower(k), strings.ToLower(part), why)
	}
}

// adminRole is a role of the fixture that can write users: administrative,
// so SCIM may not grant it by default.
const adminRole = "user-admin"

// newEnv starts a provisioner over a fresh backend of kind; opts adjust its
// Config (the default, SettingsCacheAuto, reads the backend on every
// request here: the counting wrapper hides lite's AckAfterWatchFanOut).
// lookupUser is LookupUsers for a unique attribute (or a test that expects one match): the record,
// or NotFound when there is none.
func (e *env) lookupUser(attr, value string) (*scimrecord.UserRecord, error) {
	recs, err := e.p.LookupUsers(e.ctx, testPlugin, attr, value)
	if err != nil {
		return nil, err
	}
	switch len(recs) {
	case 0:
		return nil, trace.NotFound("no user with %s %q", attr, value)
	case 1:
		return recs[0], nil
	}
	return nil, trace.BadParameter("%d users with %s %q", len(recs), attr, value)
}

// lookupGroup is LookupGroups for a unique attribute: the group, or NotFound when there is none.
func (e *env) lookupGroup(attr, value string) (*scimrecord.GroupRecord, error) {
	recs, err := e.p.LookupGroups(e.ctx, testPlugin, attr, value)
	if err != nil {
		return nil, err
	}
	switch len(recs) {
	case 0:
		return nil, trace.NotFound("no group with %s %q", attr, value)
	case 1:
		return recs[0], nil
	}
	return nil, trace.BadParameter("%d groups with %s %q", len(recs), attr, value)
}

func newEnv(t testing.TB, kind string, opts ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	var raw backend.Backend
	var err error
	switch kind {
	case "memory":
		raw, err = memory.New(ctx, memory.Config{Clock: clock})
	case "lite":
		raw, err = lite.New(ctx, lite.Config{Path: filepath.Join(t.TempDir(), "gatehouse.db"), Clock: clock})
	}
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	b := &countingBackend{Backend: raw}
	e := newEnvOn(t, clock, b, opts...)
	e.b = b
	return e
}

// newEnvOn is newEnv over backend b, which it does not close.
func newEnvOn(t testing.TB, clock *clockwork.FakeClock, b backend.Backend, opts ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	svc, err := services.New(services.Config{Backend: b})
	require.NoError(t, err)
	al, err := services.NewAuditLog(services.AuditLogConfig{Backend: b, Clock: clock})
	require.NoError(t, err)

	// Roles the plugin may grant, and one it may not (it can write users).
	for _, name := range []string{"access", "eng", "member"} {
		_, err = svc.CreateRole(ctx, &typesv1.Role{
			Metadata: &typesv1.Metadata{Name: name},
			Spec:     &typesv1.RoleSpec{Allow: &typesv1.RoleConditions{Logins: []string{name}}},
		})
		require.NoError(t, err)
	}
	_, err = svc.CreateRole(ctx, &typesv1.Role{
		Metadata: &typesv1.Metadata{Name: adminRole},
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
				{Name: "groups", Value: "*", Roles: []string{"member"}},
				{Name: "groups", Value: "Admins", Roles: []string{adminRole}},
			},
		},
	})
	require.NoError(t, err)
	_, err = svc.CreatePlugin(ctx, &typesv1.Plugin{
		Metadata: &typesv1.Metadata{Name: testPlugin},
		Spec: &typesv1.PluginSpec{
			Settings: &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{
				SamlConnector: testConnector,
				ScimEnabled:   true,
				DefaultRoles:  []string{"access"},
				LockTtl:       "720h",
			}},
			StaticCredentialsRef: &typesv1.PluginStaticCredentialsRef{Labels: pluginv1.CredentialsLabels(testPlugin)},
		},
	})
	require.NoError(t, err)
	token := rotateToken(t, ctx, svc)

	cfg := Config{
		Backend:        b,
		Plugins:        svc.PluginService,
		Credentials:    svc.PluginStaticCredentialsService,
		SAMLConnectors: svc.SAMLConnectorService,
		Roles:          svc.RoleService,
		Audit:          al,
		Clock:          clock,
	}
	for _, o := range opts {
		o(&cfg)
	}
	p, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	waitFirstReconcile(t, ctx, p, svc)
	return &env{ctx: ctx, clock: clock, svc: svc, audit: al, p: p, token: token}
}

// waitFirstReconcile waits until the reconcile pass the provisioner starts
// with has recorded its fingerprint, so that its one write never lands in a
// test's count of the writes an operation makes.
func waitFirstReconcile(t testing.TB, ctx context.Context, p *Provisioner, svc *services.Services) {
	t.Helper()
	pc, err := p.loadPlugin(ctx, testPlugin)
	require.NoError(t, err)
	roles, err := svc.ListAllRoles(ctx)
	require.NoError(t, err)
	fp := grantFingerprint(pc, roles)
	require.Eventually(t, func() bool {
		done, err := p.store.GrantsReconciled(ctx, testPlugin, fp)
		return err == nil && done
	}, 10*time.Second, 5*time.Millisecond, "the first reconcile pass")
}

// rotateToken writes a fresh token hash, as pluginv1 does, and returns the
// token.
func rotateToken(t testing.TB, ctx context.Context, svc *services.Services) string {
	token, hash, err := pluginv1.NewToken()
	require.NoError(t, err)
	_, err = svc.UpsertPluginStaticCredentials(ctx, &typesv1.PluginStaticCredentials{
		Metadata: &typesv1.Metadata{Name: pluginv1.CredentialsName(testPlugin), Labels: pluginv1.CredentialsLabels(testPlugin)},
		Spec:     &typesv1.PluginStaticCredentialsSpec{ScimTokenHash: hash},
	})
	require.NoError(t, err)
	return token
}

func newRecord(userName, externalID string) *scimrecord.UserRecord {
	attrs := fmt.Sprintf(`{"userName":%q,"externalId":%q,"name":{"givenName":"Jane"},"password":"placeholder","emails":[{"primary":true,"value":%q}]}`,
		userName, externalID, userName)
	return &scimrecord.UserRecord{UserName: userName, ExternalID: externalID, Active: true, Attributes: json.RawMessage(attrs)}
}

func (e *env) user(t *testing.T, name string) *typesv1.User {
	t.Helper()
	u, err := e.svc.GetUser(e.ctx, name, false)
	require.NoError(t, err)
	return u
}

func (e *env) events(t *testing.T, types ...string) []*typesv1.AuditEvent {
	t.Helper()
	now := e.clock.Now()
	evs, err := e.audit.Search(e.ctx, now.Add(-time.Hour), now.Add(time.Hour), types, services.MaxSearchLimit)
	require.NoError(t, err)
	return evs
}

func TestCreateLookupListCount(t *testing.T) {
	t.Parallel()
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind)
			rec, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("jane@example.com", "00u1"))
			require.NoError(t, err)
			require.NotEmpty(t, rec.ID)
			require.NotEmpty(t, rec.Revision)
			require.True(t, rec.Active)
			require.NotContains(t, string(rec.Attributes), "password")
			require.NotContains(t, string(rec.Attributes), "placeholder")

			for _, q := range []struct{ attr, value string }{
				{scimstore.AttrUserName, "JANE@EXAMPLE.COM"},
				{scimstore.AttrUserName, "jane@example.com"},
				{scimstore.AttrExternalID, "00u1"},
				{scimstore.AttrID, rec.ID},
			} {
				got, err := e.lookupUser(q.attr, q.value)
				require.NoError(t, err, q)
				require.Equal(t, rec.ID, got.ID)
				require.Equal(t, rec.Revision, got.Revision)
			}
			_, err = e.lookupUser(scimstore.AttrExternalID, "00U1")
			require.True(t, trace.IsNotFound(err), "externalId is caseExact: %v", err)
			_, err = e.lookupUser(scimstore.AttrUserName, "nobody")
			require.True(t, trace.IsNotFound(err))

			u := e.user(t, "jane@example.com")
			require.Nil(t, u.GetMetadata().GetExpires())
			require.Equal(t, testPlugin, u.GetMetadata().GetLabels()[services.LabelOrigin])
			require.Equal(t, rec.ID, u.GetMetadata().GetLabels()[services.LabelSCIMID])
			require.NotContains(t, u.GetMetadata().GetLabels(), services.LabelSCIMAttributes, "the attributes live in the record only")
			require.Equal(t, []string{"access"}, u.GetSpec().GetRoles())
			cb := u.GetSpec().GetCreatedBy()
			require.Equal(t, "saml", cb.GetConnector().GetType())
			require.Equal(t, testConnector, cb.GetConnector().GetId())
			require.Equal(t, "00u1", cb.GetConnector().GetIdentity())
			require.NotNil(t, cb.GetTime())

			ids := []string{rec.ID}
			for i := range 6 {
				r, err := e.p.CreateUser(e.ctx, testPlugin, newRecord(fmt.Sprintf("user%d", i), fmt.Sprintf("00x%d", i)))
				require.NoError(t, err)
				ids = append(ids, r.ID)
			}
			slices.Sort(ids)
			var listed []string
			after := ""
			for {
				page, err := e.p.ListUsers(e.ctx, testPlugin, after, 2)
				require.NoError(t, err)
				for _, r := range page {
					listed = append(listed, r.ID)
				}
				if len(page) < 2 {
					break
				}
				after = page[len(page)-1].ID
			}
			require.Equal(t, ids, listed)
			n, err := e.p.CountUsers(e.ctx, testPlugin)
			require.NoError(t, err)
			require.Equal(t, 7, n)
			require.Len(t, e.events(t, EventUserCreate), 7)

			_, err = e.p.CreateUser(e.ctx, testPlugin, newRecord("JANE@example.com", "00u9"))
			require.True(t, trace.IsAlreadyExists(err), "%v", err)
			// externalId is not unique (RFC 7643 §3.1): a second user may carry it, and a
			// lookup by it returns both, in id order.
			other, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("other", "00u1"))
			require.NoError(t, err, "externalId is not unique")
			both, err := e.p.LookupUsers(e.ctx, testPlugin, scimstore.AttrExternalID, "00u1")
			require.NoError(t, err)
			want := []string{rec.ID, other.ID}
			slices.Sort(want)
			require.Equal(t, want, []string{both[0].ID, both[1].ID})
			require.NoError(t, e.p.DeleteUser(e.ctx, testPlugin, other.ID))
			got, err := e.lookupUser(scimstore.AttrExternalID, "00u1")
			require.NoError(t, err, "deleting one holder leaves the other findable")
			require.Equal(t, rec.ID, got.ID)

			big := newRecord("big", "00big")
			big.Attributes = json.RawMessage(fmt.Sprintf(`{"x":%q}`, make([]byte, services.MaxSCIMAttributesBytes)))
			_, err = e.p.CreateUser(e.ctx, testPlugin, big)
			require.True(t, trace.IsBadParameter(err), "%v", err)
			_, err = e.p.CreateUser(e.ctx, testPlugin, newRecord("has space", "00sp"))
			require.True(t, trace.IsBadParameter(err), "%v", err)
		})
	}
}

func TestAdoption(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "lite")
	now := e.clock.Now()
	temp := &typesv1.User{
		Metadata: &typesv1.Metadata{Name: "temp@example.com", Expires: timestamppb.New(now.Add(time.Hour))},
		Spec: &typesv1.UserSpec{
			Roles:     []string{"sso-role"},
			Traits:    services.NewTraits(map[string][]string{"logins": {"jane"}, "groups": {"Eng"}}),
			CreatedBy: &typesv1.CreatedBy{Time: timestamppb.New(now), Connector: &typesv1.ConnectorRef{Type: "saml", Id: testConnector, Identity: "jane"}},
		},
	}
	_, err := e.svc.CreateUser(e.ctx, temp)
	require.NoError(t, err)
	rec, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("temp@example.com", "00t"))
	require.NoError(t, err)
	u := e.user(t, "temp@example.com")
	require.Nil(t, u.GetMetadata().GetExpires(), "adopted user has no expiry")
	require.Equal(t, testPlugin, u.GetMetadata().GetLabels()[services.LabelOrigin])
	require.Equal(t, rec.ID, u.GetMetadata().GetLabels()[services.LabelSCIMID])
	require.Equal(t, []string{"access"}, u.GetSpec().GetRoles(), "roles recomputed from SCIM groups (none yet)")
	require.Equal(t, []string{"jane"}, services.TraitValues(u, "logins"), "other traits kept")
	require.Empty(t, services.TraitValues(u, "groups"), "groups come from SCIM now")
	require.Len(t, e.events(t, EventUserAdopt), 1)
	// After the temporary expiry, the adopted user is still there.
	e.clock.Advance(2 * time.Hour)
	e.user(t, "temp@example.com")

	refused := []struct {
		name string
		user *typesv1.User
	}{
		{"local user", &typesv1.User{Metadata: &typesv1.Metadata{Name: "local"}, Spec: &typesv1.UserSpec{Roles: []string{"editor"}}}},
		{"other connector", &typesv1.User{
			Metadata: &typesv1.Metadata{Name: "other-conn", Expires: timestamppb.New(e.clock.Now().Add(time.Hour))},
			Spec:     &typesv1.UserSpec{CreatedBy: &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: "another"}}},
		}},
		{"same connector, not temporary", &typesv1.User{
			Metadata: &typesv1.Metadata{Name: "permanent"},
			Spec:     &typesv1.UserSpec{CreatedBy: &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: testConnector}}},
		}},
		{"other plugin", &typesv1.User{
			Metadata: &typesv1.Metadata{Name: "other-plugin", Expires: timestamppb.New(e.clock.Now().Add(time.Hour)), Labels: map[string]string{services.LabelOrigin: "other"}},
			Spec:     &typesv1.UserSpec{CreatedBy: &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: testConnector}}},
		}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before, err := e.svc.CreateUser(e.ctx, tc.user)
			require.NoError(t, err)
			_, err = e.p.CreateUser(e.ctx, testPlugin, newRecord(tc.user.GetMetadata().GetName(), "00-"+tc.user.GetMetadata().GetName()))
			require.True(t, trace.IsAlreadyExists(err), "%v", err)
			after := e.user(t, tc.user.GetMetadata().GetName())
			require.Equal(t, before.GetMetadata().GetRevision(), after.GetMetadata().GetRevision(), "user untouched")
			_, err = e.lookupUser(scimstore.AttrUserName, tc.user.GetMetadata().GetName())
			require.True(t, trace.IsNotFound(err), "no record left behind: %v", err)
		})
	}
}

func deactivate(t *testing.T, e *env, rec *scimrecord.UserRecord, active bool) *scimrecord.UserRecord {
	t.Helper()
	cur, err := e.p.GetUser(e.ctx, testPlugin, rec.ID)
	require.NoError(t, err)
	cur.Active = active
	out, err := e.p.UpdateUser(e.ctx, testPlugin, nil, cur)
	require.NoError(t, err)
	return out
}

func TestDeactivateReactivate(t *testing.T) {
	t.Parallel()
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind)
			rec, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("jane", "00u1"))
			require.NoError(t, err)
			adminLock, err := e.svc.CreateLock(e.ctx, &typesv1.Lock{
				Metadata: &typesv1.Metadata{Name: "admin-lock"},
				Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "jane"}, Message: "security review", CreatedBy: "admin"},
			})
			require.NoError(t, err)

			atomicBefore, otherBefore := e.b.writes()
			out := deactivate(t, e, rec, false)
			atomicAfter, otherAfter := e.b.writes()
			require.Equal(t, int64(1), atomicAfter-atomicBefore, "deactivation is one AtomicWrite")
			require.Equal(t, int64(0), otherAfter-otherBefore, "and nothing else")
			require.False(t, out.Active)

			_, err = e.svc.GetUser(e.ctx, "jane", false)
			require.True(t, trace.IsNotFound(err), "user deleted: %v", err)
			lock, err := e.svc.GetLock(e.ctx, LockName(testPlugin, "jane"))
			require.NoError(t, err)
			require.Equal(t, "jane", lock.GetSpec().GetTarget().GetUser())
			require.Contains(t, lock.GetSpec().GetMessage(), "deactivated in Okta")
			require.Equal(t, map[string]string{
				services.LabelOrigin: testPlugin, LabelPlugin: testPlugin, scimrecord.LabelReason: scimrecord.ReasonDeactivation, services.LabelSCIMID: rec.ID,
			}, lock.GetMetadata().GetLabels())
			require.Equal(t, e.clock.Now().Add(720*time.Hour), lock.GetMetadata().GetExpires().AsTime())

			got, err := e.p.GetUser(e.ctx, testPlugin, rec.ID)
			require.NoError(t, err)
			require.False(t, got.Active)
			got, err = e.lookupUser(scimstore.AttrUserName, "JANE")
			require.NoError(t, err)
			require.Equal(t, rec.ID, got.ID)
			require.False(t, got.Active)
			require.Len(t, e.events(t, EventUserDeactivate), 1)
			require.Len(t, e.events(t, EventLockCreate), 1)

			// Reactivate by PUT/PATCH: user back, our lock gone, the admin's kept.
			out = deactivate(t, e, rec, true)
			require.True(t, out.Active)
			u := e.user(t, "jane")
			require.Equal(t, rec.ID, u.GetMetadata().GetLabels()[services.LabelSCIMID])
			_, err = e.svc.GetLock(e.ctx, LockName(testPlugin, "jane"))
			require.True(t, trace.IsNotFound(err), "plugin lock removed: %v", err)
			kept, err := e.svc.GetLock(e.ctx, "admin-lock")
			require.NoError(t, err)
			require.Equal(t, adminLock.GetMetadata().GetRevision(), kept.GetMetadata().GetRevision())
			require.Len(t, e.events(t, EventUserReactivate), 1)
			require.Len(t, e.events(t, EventLockDelete), 1)

			// Reactivate by POST of the same userName: same id.
			deactivate(t, e, rec, false)
			again, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("jane", "00u1"))
			require.NoError(t, err)
			require.Equal(t, rec.ID, again.ID)
			require.True(t, again.Active)
			e.user(t, "jane")
			_, err = e.svc.GetLock(e.ctx, LockName(testPlugin, "jane"))
			require.True(t, trace.IsNotFound(err))

			// An admin lock under the plugin's lock name (not labelled as the
			// plugin's) survives a reactivation.
			deactivate(t, e, rec, false)
			_, err = e.svc.UpsertLock(e.ctx, &typesv1.Lock{
				Metadata: &typesv1.Metadata{Name: LockName(testPlugin, "jane")},
				Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "jane"}, Message: "admin took over", CreatedBy: "admin"},
			})
			require.NoError(t, err)
			deactivate(t, e, rec, true)
			_, err = e.svc.GetLock(e.ctx, LockName(testPlugin, "jane"))
			require.NoError(t, err, "a lock not labelled as the plugin's is never removed")

			e.p.FlushStatus(e.ctx)
			pl, err := e.svc.GetPlugin(e.ctx, testPlugin)
			require.NoError(t, err)
			st := pl.GetStatus().GetOkta()
			require.Equal(t, int64(1), st.GetUsersProvisioned())
			require.Equal(t, int64(3), st.GetUsersDeactivated())
			require.Equal(t, int64(3), st.GetLocksWritten())
		})
	}
}

func TestDeleteUser(t *testing.T) {
	t.Parallel()
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind)
			rec, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("bob", "00b"))
			require.NoError(t, err)
			n, err := e.p.CountUsers(e.ctx, testPlugin)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			atomicBefore, _ := e.b.writes()
			require.NoError(t, e.p.DeleteUser(e.ctx, testPlugin, rec.ID))
			n, err = e.p.CountUsers(e.ctx, testPlugin)
			require.NoError(t, err)
			require.Equal(t, 0, n, "the cached total follows local deletes")
			atomicAfter, _ := e.b.writes()
			require.Equal(t, int64(1), atomicAfter-atomicBefore)
			_, err = e.p.GetUser(e.ctx, testPlugin, rec.ID)
			require.True(t, trace.IsNotFound(err), "%v", err)
			for _, q := range [][2]string{{scimstore.AttrUserName, "bob"}, {scimstore.AttrExternalID, "00b"}} {
				_, err = e.lookupUser(q[0], q[1])
				require.True(t, trace.IsNotFound(err), "%v", err)
			}
			_, err = e.svc.GetUser(e.ctx, "bob", false)
			require.True(t, trace.IsNotFound(err))
			lock, err := e.svc.GetLock(e.ctx, LockName(testPlugin, "bob"))
			require.NoError(t, err)
			require.Equal(t, scimrecord.ReasonDeletion, lock.GetMetadata().GetLabels()[scimrecord.LabelReason])
			require.True(t, trace.IsNotFound(e.p.DeleteUser(e.ctx, testPlugin, rec.ID)))

			// Provisioning the same userName again gets a new id and lifts
			// the plugin's lock.
			again, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("bob", "00b"))
			require.NoError(t, err)
			require.NotEqual(t, rec.ID, again.ID)
			_, err = e.svc.GetLock(e.ctx, LockName(testPlugin, "bob"))
			require.True(t, trace.IsNotFound(err))
			e.user(t, "bob")
		})
	}
}

func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind)
			const n = 50
			var ok, exists atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("race@example.com", fmt.Sprintf("00r%d", i)))
					switch {
					case err == nil:
						ok.Add(1)
					case trace.IsAlreadyExists(err):
						exists.Add(1)
					default:
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			require.Equal(t, int64(1), ok.Load())
			require.Equal(t, int64(n-1), exists.Load())
			count, err := e.p.CountUsers(e.ctx, testPlugin)
			require.NoError(t, err)
			require.Equal(t, 1, count)
		})
	}
}

func TestConcurrentUpdatesNoLostUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "lite")
	rec, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("carol", "00c"))
	require.NoError(t, err)
	const writers = 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cur, err := e.p.GetUser(e.ctx, testPlugin, rec.ID)
				if err != nil {
					errs <- err
					return
				}
				var attrs map[string]any
				if err := json.Unmarshal(cur.Attributes, &attrs); err != nil {
					errs <- err
					return
				}
				attrs[fmt.Sprintf("k%d", i)] = i
				cur.Attributes, _ = json.Marshal(attrs)
				_, err = e.p.UpdateUser(e.ctx, testPlugin, nil, cur)
				if trace.IsCompareFailed(err) {
					continue
				}
				if err != nil {
					errs <- err
				}
				return
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	final, err := e.p.GetUser(e.ctx, testPlugin, rec.ID)
	require.NoError(t, err)
	var attrs map[string]any
	require.NoError(t, json.Unmarshal(final.Attributes, &attrs))
	for i := range writers {
		require.Contains(t, attrs, fmt.Sprintf("k%d", i))
	}
	u := e.user(t, "carol")
	require.NotContains(t, u.GetMetadata().GetLabels(), services.LabelSCIMAttributes)

	// A stale revision is refused.
	_, err = e.p.UpdateUser(e.ctx, testPlugin, nil, rec)
	require.True(t, trace.IsCompareFailed(err), "%v", err)
}

func TestGroups(t *testing.T) {
	t.Parallel()
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind)
			a, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("alice", "00a"))
			require.NoError(t, err)
			b, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("bob", "00b"))
			require.NoError(t, err)
			roles := func(name string) []string { return e.user(t, name).GetSpec().GetRoles() }
			groups := func(name string) []string { return services.TraitValues(e.user(t, name), "groups") }

			g, err := e.p.CreateGroup(e.ctx, testPlugin, &scimrecord.GroupRecord{DisplayName: "Eng", Members: []scimrecord.MemberRef{{Value: a.ID}}})
			require.NoError(t, err)
			require.Equal(t, []string{"access", "eng", "member"}, roles("alice"))
			require.Equal(t, []string{"Eng"}, groups("alice"))
			require.Equal(t, []string{"access"}, roles("bob"))
			ar, err := e.p.GetUser(e.ctx, testPlugin, a.ID)
			require.NoError(t, err)
			require.Equal(t, []scimrecord.GroupRef{{ID: g.ID, DisplayName: "Eng"}}, ar.Groups)

			got, err := e.lookupGroup(scimstore.AttrDisplayName, "eng")
			require.NoError(t, err)
			require.Equal(t, g.ID, got.ID)
			_, err = e.p.CreateGroup(e.ctx, testPlugin, &scimrecord.GroupRecord{DisplayName: "ENG"})
			require.True(t, trace.IsAlreadyExists(err), "%v", err)
			_, err = e.p.CreateGroup(e.ctx, testPlugin, &scimrecord.GroupRecord{DisplayName: "Ghosts", Members: []scimrecord.MemberRef{{Value: "nope"}}})
			require.True(t, trace.IsBadParameter(err), "%v", err)

			// Swap members.
			g.Members = []scimrecord.MemberRef{{Value: b.ID}}
			g, err = e.p.UpdateGroup(e.ctx, testPlugin, g)
			require.NoError(t, err)
			require.Equal(t, []string{"access"}, roles("alice"))
			require.Empty(t, groups("alice"))
			require.Equal(t, []string{"access", "eng", "member"}, roles("bob"))

			// Rename: the name-specific mapping no longer applies.
			g.DisplayName = "Platform"
			g, err = e.p.UpdateGroup(e.ctx, testPlugin, g)
			require.NoError(t, err)
			require.Equal(t, []string{"access", "member"}, roles("bob"))
			require.Equal(t, []string{"Platform"}, groups("bob"))
			_, err = e.lookupGroup(scimstore.AttrDisplayName, "Eng")
			require.True(t, trace.IsNotFound(err))

			// A deactivated member: record only; reactivation brings the roles.
			deactivate(t, e, a, false)
			g.Members = append(g.Members, scimrecord.MemberRef{Value: a.ID})
			_, err = e.p.UpdateGroup(e.ctx, testPlugin, g)
			require.NoError(t, err)
			ar, err = e.p.GetUser(e.ctx, testPlugin, a.ID)
			require.NoError(t, err)
			require.Len(t, ar.Groups, 1)
			deactivate(t, e, a, true)
			require.Equal(t, []string{"access", "member"}, roles("alice"))

			// Many members: batched writes.
			var members []scimrecord.MemberRef
			for i := range 45 {
				r, err := e.p.CreateUser(e.ctx, testPlugin, newRecord(fmt.Sprintf("m%02d", i), fmt.Sprintf("00m%d", i)))
				require.NoError(t, err)
				members = append(members, scimrecord.MemberRef{Value: r.ID})
			}
			big, err := e.p.CreateGroup(e.ctx, testPlugin, &scimrecord.GroupRecord{DisplayName: "Eng", Members: members})
			require.NoError(t, err)
			require.Len(t, big.Members, 45)
			for i := range 45 {
				require.Equal(t, []string{"access", "eng", "member"}, roles(fmt.Sprintf("m%02d", i)))
			}
			require.NoError(t, e.p.DeleteGroup(e.ctx, testPlugin, big.ID))
			for i := range 45 {
				require.Equal(t, []string{"access"}, roles(fmt.Sprintf("m%02d", i)))
			}
			_, err = e.p.GetGroup(e.ctx, testPlugin, big.ID)
			require.True(t, trace.IsNotFound(err))
			n, err := e.p.CountGroups(e.ctx, testPlugin)
			require.NoError(t, err)
			require.Equal(t, 1, n)
		})
	}
}

func TestVerifySCIMToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory")
	require.NoError(t, e.p.VerifySCIMToken(e.ctx, testPlugin, e.token))
	require.NoError(t, e.p.VerifySCIMToken(e.ctx, testPlugin, e.token), "cached")
	for _, bad := range []string{"", "wrong", e.token + "x"} {
		err := e.p.VerifySCIMToken(e.ctx, testPlugin, bad)
		require.True(t, trace.IsAccessDenied(err), "%q: %v", bad, err)
	}
	err := e.p.VerifySCIMToken(e.ctx, "nosuch", e.token)
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	// Refusals from one source within a minute are one event, plus one
	// with their count once the minute is over (tokens_test.go).
	denied := e.events(t, EventTokenDenied)
	require.Len(t, denied, 1)
	for _, ev := range denied {
		require.NotContains(t, fmt.Sprint(ev), e.token)
	}

	// Rotation: the old token is refused on the very next call.
	newToken := rotateToken(t, e.ctx, e.svc)
	err = e.p.VerifySCIMToken(e.ctx, testPlugin, e.token)
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.NoError(t, e.p.VerifySCIMToken(e.ctx, testPlugin, newToken))

	// Deleting the plugin refuses its token at once.
	require.NoError(t, e.svc.DeletePlugin(e.ctx, testPlugin))
	err = e.p.VerifySCIMToken(e.ctx, testPlugin, newToken)
	require.True(t, trace.IsAccessDenied(err), "%v", err)
}

func TestSettingsAndStatusFlush(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory")
	st, err := e.p.SCIMSettings(e.ctx, testPlugin)
	require.NoError(t, err)
	require.True(t, st.Enabled)
	_, err = e.p.SCIMSettings(e.ctx, "nosuch")
	require.True(t, trace.IsNotFound(err))

	e.p.RecordSCIMRequest(e.ctx, testPlugin, trace.NotFound("client asked for nothing"))
	e.p.RecordSCIMRequest(e.ctx, testPlugin, trace.ConnectionProblem(nil, "backend down"))
	e.p.RecordSCIMRequest(e.ctx, testPlugin, nil)
	pl, err := e.svc.GetPlugin(e.ctx, testPlugin)
	require.NoError(t, err)
	require.Nil(t, pl.GetStatus(), "nothing written on the request path")

	// The flush loop writes within one interval.
	require.NoError(t, e.clock.BlockUntilContext(e.ctx, 1))
	e.clock.Advance(DefaultStatusFlushInterval)
	require.Eventually(t, func() bool {
		pl, err := e.svc.GetPlugin(e.ctx, testPlugin)
		return err == nil && pl.GetStatus().GetOkta().GetLastScimRequest() != nil
	}, 10*time.Second, 10*time.Millisecond)
	pl, err = e.svc.GetPlugin(e.ctx, testPlugin)
	require.NoError(t, err)
	require.Contains(t, pl.GetStatus().GetOkta().GetLastError(), "backend down")
	require.Equal(t, e.clock.Now().Add(-DefaultStatusFlushInterval), pl.GetStatus().GetOkta().GetLastScimRequest().AsTime())
}

// TestReachAttacks makes, with nothing but the SCIM token's powers, the
// writes that used to lock the local admin out or take accounts over, and
// checks each is refused with the victim untouched.
func TestReachAttacks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "lite")
	admin, err := e.svc.CreateUser(e.ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "admin"}, Spec: &typesv1.UserSpec{Roles: []string{adminRole}}})
	require.NoError(t, err)
	throwaway, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("throwaway@example.com", "00x"))
	require.NoError(t, err)

	untouched := func(t *testing.T) {
		t.Helper()
		now := e.user(t, "admin")
		require.Equal(t, admin.GetMetadata().GetRevision(), now.GetMetadata().GetRevision(), "admin untouched")
		locks, err := e.svc.GetLocksInForce(e.ctx)
		require.NoError(t, err)
		for _, l := range locks {
			require.NotEqual(t, "admin", l.GetSpec().GetTarget().GetUser(), "no lock on admin: %v", l)
		}
	}
	for _, tc := range []struct {
		name     string
		userName string
		active   bool
	}{
		{"rename and deactivate (PUT, PATCH)", "admin", false},
		{"rename active", "admin", true},
		{"rename onto a case variant", "Admin", false},
		{"rename onto the fullwidth form", "ａｄｍｉｎ", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur, err := e.p.GetUser(e.ctx, testPlugin, throwaway.ID)
			require.NoError(t, err)
			next := *cur
			next.UserName, next.Active = tc.userName, tc.active
			_, err = e.p.UpdateUser(e.ctx, testPlugin, nil, &next)
			require.True(t, trace.IsAlreadyExists(err), "%v", err)
			require.Equal(t, fmt.Sprintf("userName %q is already taken", tc.userName), trace.UserMessage(err))
			untouched(t)
			after, err := e.p.GetUser(e.ctx, testPlugin, throwaway.ID)
			require.NoError(t, err)
			require.Equal(t, cur.Revision, after.Revision, "the attacker's own record is unchanged too")
		})
	}
	for _, name := range []string{"Admin", "ADMIN", "ａｄｍｉｎ"} {
		t.Run("create "+name, func(t *testing.T) {
			_, err := e.p.CreateUser(e.ctx, testPlugin, newRecord(name, "00-"+name))
			require.True(t, trace.IsAlreadyExists(err), "%v", err)
			untouched(t)
		})
	}
	for _, name := range []string{"@admin", "＠admin"} {
		_, err := e.p.CreateUser(e.ctx, testPlugin, newRecord(name, "00-"+name))
		require.True(t, trace.IsBadParameter(err), "built-in identities are out of reach: %v", err)
		require.Contains(t, err.Error(), "reserved for built-in identities")
	}
	refusals := e.events(t, EventUserRefused)
	require.NotEmpty(t, refusals)
	for _, ev := range refusals {
		require.Equal(t, "admin", ev.GetFields()["holder"], "the audit log names the holder")
		require.Contains(t, ev.GetMessage(), "a local user")
	}
}

// TestRoleCeiling: neither default_roles nor a group mapping makes a SCIM
// user hold a role that can administer the cluster, unless the plugin's
// grantable_roles lists it.
func TestRoleCeiling(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "lite")
	_, err := e.svc.UpdateAndSwapPlugin(e.ctx, testPlugin, func(p *typesv1.Plugin) error {
		p.Spec.GetOkta().DefaultRoles = []string{"access", adminRole, "no-such-role"}
		return nil
	})
	require.NoError(t, err)
	rec, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("jane@example.com", "00j"))
	require.NoError(t, err)
	require.Equal(t, []string{"access"}, e.user(t, "jane@example.com").GetSpec().GetRoles())

	g, err := e.p.CreateGroup(e.ctx, testPlugin, &scimrecord.GroupRecord{DisplayName: "Admins", Members: []scimrecord.MemberRef{{Value: rec.ID}}})
	require.NoError(t, err)
	require.NotEmpty(t, g.ID)
	require.Equal(t, []string{"access", "member"}, e.user(t, "jane@example.com").GetSpec().GetRoles(),
		"the Admins group maps to an administrative role, which is cut")
	require.NotEmpty(t, e.events(t, EventRolesDropped))

	e.p.FlushStatus(e.ctx)
	pl, err := e.svc.GetPlugin(e.ctx, testPlugin)
	require.NoError(t, err)
	require.Contains(t, pl.GetStatus().GetOkta().GetRolesDropped(), adminRole)
	require.NotNil(t, pl.GetStatus().GetOkta().GetRolesDroppedTime())

	// The owner lists the role explicitly: now it is granted.
	_, err = e.svc.UpdateAndSwapPlugin(e.ctx, testPlugin, func(p *typesv1.Plugin) error {
		p.Spec.GetOkta().GrantableRoles = []string{"access", "member", adminRole}
		return nil
	})
	require.NoError(t, err)
	cur, err := e.p.GetUser(e.ctx, testPlugin, rec.ID)
	require.NoError(t, err)
	cur.Attributes = []byte(`{"displayName":"Jane"}`)
	_, err = e.p.UpdateUser(e.ctx, testPlugin, nil, cur)
	require.NoError(t, err)
	require.Equal(t, []string{"access", "member", adminRole}, e.user(t, "jane@example.com").GetSpec().GetRoles())
	incarnation := e.user(t, "jane@example.com").GetSpec().GetIncarnation()

	// The owner narrows the ceiling again: the reconcile loop takes the
	// role away from the user already written, without waiting for the
	// next SCIM write, and keeps the account's incarnation.
	_, err = e.svc.UpdateAndSwapPlugin(e.ctx, testPlugin, func(p *typesv1.Plugin) error {
		p.Spec.GetOkta().GrantableRoles = []string{"access", "member"}
		return nil
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		e.clock.Advance(DefaultReconcileInterval)
		return slices.Equal([]string{"access", "member"}, e.user(t, "jane@example.com").GetSpec().GetRoles())
	}, 10*time.Second, 20*time.Millisecond, "the loop applies the narrower ceiling")
	require.Equal(t, incarnation, e.user(t, "jane@example.com").GetSpec().GetIncarnation())
	evs := e.events(t, EventRolesReconciled)
	require.Len(t, evs, 1)
	require.Contains(t, evs[0].GetFields()["dropped_roles"], adminRole)

	// Nothing changed since: a pass rewrites nobody.
	n, err := e.p.ReconcileGrants(e.ctx, testPlugin)
	require.NoError(t, err)
	require.Zero(t, n)
}

// TestUpdateThatChangesNothing: an update whose record equals the stored one (attributes
// compared as JSON values, members as a set) is not written: same revision and lastModified,
// no write, no event (RFC 7644 §3.5.2.1). Once the account would change (the plugin's default
// roles changed), the same update is written.
func TestUpdateThatChangesNothing(t *testing.T) {
	t.Parallel()
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			// The clock moves a minute below: with the default interval that
			// ticks the grants reconcile, which, if it ran late, would bring
			// the account in step with the settings change before the update
			// this test makes do it.
			e := newEnv(t, kind, func(c *Config) { c.ReconcileInterval = 24 * time.Hour })
			rec, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("jane@example.com", "00j"))
			require.NoError(t, err)
			bob, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("bob@example.com", "00b"))
			require.NoError(t, err)
			g, err := e.p.CreateGroup(e.ctx, testPlugin, &scimrecord.GroupRecord{DisplayName: "Eng",
				Members: []scimrecord.MemberRef{{Value: rec.ID}, {Value: bob.ID}}})
			require.NoError(t, err)
			rec, err = e.p.GetUser(e.ctx, testPlugin, rec.ID)
			require.NoError(t, err)
			e.clock.Advance(time.Minute)
			// User and group writes are AtomicWrites; the status flush the clock may trigger
			// meanwhile is not.
			atomicBefore, _ := e.b.writes()
			updatesBefore := len(e.events(t, EventUserUpdate, EventGroupUpdate))

			same := *rec
			same.Attributes = json.RawMessage(`{ "emails":[{"value":"jane@example.com","primary":true}],
				"name":{"givenName":"Jane"}, "externalId":"00j", "userName":"jane@example.com" }`)
			got, err := e.p.UpdateUser(e.ctx, testPlugin, nil, &same)
			require.NoError(t, err)
			require.Equal(t, rec.Revision, got.Revision)
			require.Equal(t, rec.LastModified, got.LastModified)
			sameGroup := *g
			sameGroup.Members = []scimrecord.MemberRef{{Value: bob.ID, Display: "Bob"}, {Value: rec.ID}}
			gotGroup, err := e.p.UpdateGroup(e.ctx, testPlugin, &sameGroup)
			require.NoError(t, err)
			require.Equal(t, g.Revision, gotGroup.Revision)
			atomicAfter, _ := e.b.writes()
			require.Equal(t, atomicBefore, atomicAfter, "nothing written")
			require.Len(t, e.events(t, EventUserUpdate, EventGroupUpdate), updatesBefore)

			// A settings change makes the same update a real one for the account.
			_, err = e.svc.UpdateAndSwapPlugin(e.ctx, testPlugin, func(p *typesv1.Plugin) error {
				p.Spec.GetOkta().DefaultRoles = nil
				return nil
			})
			require.NoError(t, err)
			require.Contains(t, e.user(t, "jane@example.com").GetSpec().GetRoles(), "access")
			got, err = e.p.UpdateUser(e.ctx, testPlugin, nil, &same)
			require.NoError(t, err)
			require.NotEqual(t, rec.Revision, got.Revision)
			require.Equal(t, []string{"eng", "member"}, e.user(t, "jane@example.com").GetSpec().GetRoles())
		})
	}
}

// TestLegacyAttributesLabelDropped: builds before this one copied the SCIM
// attributes into a label of the user. A user stored that way keeps
// working, and the next SCIM write of its record removes the copy.
func TestLegacyAttributesLabelDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory")
	rec, err := e.p.CreateUser(e.ctx, testPlugin, newRecord("legacy", "00legacy"))
	require.NoError(t, err)

	u := e.user(t, "legacy")
	u.Metadata.Labels[services.LabelSCIMAttributes] = string(rec.Attributes)
	_, err = e.svc.UpsertUser(e.ctx, u)
	require.NoError(t, err)
	require.Contains(t, e.user(t, "legacy").GetMetadata().GetLabels(), services.LabelSCIMAttributes)

	cur, err := e.p.GetUser(e.ctx, testPlugin, rec.ID)
	require.NoError(t, err)
	cur.Attributes = []byte(`{"title":"Engineer"}`)
	_, err = e.p.UpdateUser(e.ctx, testPlugin, nil, cur)
	require.NoError(t, err)
	got := e.user(t, "legacy")
	require.NotContains(t, got.GetMetadata().GetLabels(), services.LabelSCIMAttributes)
	require.Equal(t, rec.ID, got.GetMetadata().GetLabels()[services.LabelSCIMID], "the other labels stay")
	after, err := e.p.GetUser(e.ctx, testPlugin, rec.ID)
	require.NoError(t, err)
	require.JSONEq(t, `{"title":"Engineer"}`, string(after.Attributes), "the record holds the attributes")
}

// TestCreateOfNewNameReadsNothingUnderIt: the common create (a userName
// never seen) plans on "no record, user or lock under the name" without
// reading them, in one AtomicWrite whose conditions check it; when one of
// them exists, the write fails with nothing written and the create reads
// and plans as before (TestDeleteUser, TestAdoption and TestReachAttacks
// hold those cases).
func TestCreateOfNewNameReadsNothingUnderIt(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, e *env) {
		e.create(t, "warmup", "00w")
		e.b.keysRead()
		atomicBefore, otherBefore := e.b.writes()

		rec := e.create(t, "Fresh@Example.com", "00f")
		atomicAfter, otherAfter := e.b.writes()
		require.Equal(t, int64(1), atomicAfter-atomicBefore, "one AtomicWrite")
		require.Equal(t, otherBefore, otherAfter)
		e.requireNotRead(t, "fresh@example.com", "a new name's keys are checked by the write, not read")
		u := e.user(t, "fresh@example.com")
		require.Equal(t, rec.ID, u.GetMetadata().GetLabels()[services.LabelSCIMID])
		require.NotEmpty(t, u.GetSpec().GetIncarnation())
		got, err := e.lookupUser(scimstore.AttrUserName, "fresh@example.com")
		require.NoError(t, err)
		require.Equal(t, rec.ID, got.ID)
		require.Len(t, e.events(t, EventUserCreate), 2)

		// The same name again is refused as before: the failed write
		// left nothing, and the careful path finds the record.
		_, err = e.p.CreateUser(e.ctx, testPlugin, newRecord("fresh@example.com", "00g"))
		require.True(t, trace.IsAlreadyExists(err), "%v", err)
		_, err = e.lookupUser(scimstore.AttrExternalID, "00g")
		require.True(t, trace.IsNotFound(err), "%v", err)
	})
}

// TestDeactivationChecksTheLockByWriting: a deactivation or deletion under
// the record's own name does not read the plugin's lock name; the lock it
// writes under NotExists checks it. Where a lock already holds that name
// the write fails with nothing written, and the next attempt reads the lock
// and plans as before: an administrator's lock under the plugin's lock name
// that targets the user is kept, one that targets someone else makes the
// deactivation fail, and in both cases nothing else changed.
// TestUpdatePlansOnTheRecordRead: an update given the record its caller read (the SCIM
// handler's PATCH and PUT) does not read it again, and a record changed since that read still
// fails the write, with nothing written, as when the update read it itself.
func TestUpdatePlansOnTheRecordRead(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, e *env) {
		rec := e.create(t, "readonce", "00read1")
		read, err := e.p.GetUser(e.ctx, testPlugin, rec.ID)
		require.NoError(t, err)
		next := *read
		next.Active = false
		e.b.keysRead()
		out, err := e.p.UpdateUser(e.ctx, testPlugin, read, &next)
		require.NoError(t, err)
		e.requireNotRead(t, rec.ID, "the record the caller read is planned on")
		require.False(t, out.Active)
		_, err = e.svc.GetUser(e.ctx, "readonce", false)
		require.True(t, trace.IsNotFound(err), "deactivated: %v", err)

		// Read, then changed by another write before the update: the update's write fails on
		// the record's revision, and its next attempt, reading, says it changed.
		stale := e.create(t, "stale", "00read2")
		read, err = e.p.GetUser(e.ctx, testPlugin, stale.ID)
		require.NoError(t, err)
		moved := deactivate(t, e, stale, false)
		reactivate := *read
		reactivate.Attributes = json.RawMessage(`{"displayName":"Stale"}`)
		_, err = e.p.UpdateUser(e.ctx, testPlugin, read, &reactivate)
		require.True(t, trace.IsCompareFailed(err), "%v", err)
		still, err := e.p.GetUser(e.ctx, testPlugin, stale.ID)
		require.NoError(t, err)
		require.Equal(t, moved.Revision, still.Revision, "nothing written")
		require.False(t, still.Active)

		// A read record of another id is the caller's mistake.
		_, err = e.p.UpdateUser(e.ctx, testPlugin, rec, &reactivate)
		require.True(t, trace.IsBadParameter(err), "%v", err)
	})
}

func TestDeactivationChecksTheLockByWriting(t *testing.T) {
	t.Parallel()
	onEachBackend(t, func(t *testing.T, e *env) {
		plain := e.create(t, "plain", "00p")
		e.b.keysRead()
		atomicBefore, _ := e.b.writes()
		deactivate(t, e, plain, false)
		atomicAfter, _ := e.b.writes()
		require.Equal(t, int64(1), atomicAfter-atomicBefore)
		e.requireNotRead(t, LockName(testPlugin, "plain"), "the lock is checked by the write")
		e.b.keysRead()
		plain2 := e.create(t, "plain2", "00p2")
		e.b.keysRead()
		deactivate(t, e, plain2, false)
		e.requireNotRead(t, "users/plain2", "the account is checked by the write")
		_, err := e.svc.GetUser(e.ctx, "plain2", false)
		require.True(t, trace.IsNotFound(err), "%v", err)
		l, err := e.svc.GetLock(e.ctx, LockName(testPlugin, "plain"))
		require.NoError(t, err)
		require.Equal(t, scimrecord.ReasonDeactivation, l.GetMetadata().GetLabels()[scimrecord.LabelReason])

		// An administrator's lock under the plugin's lock name, on the user.
		same := e.create(t, "same", "00s")
		mine, err := e.svc.CreateLock(e.ctx, &typesv1.Lock{
			Metadata: &typesv1.Metadata{Name: LockName(testPlugin, "same")},
			Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "same"}, Message: "held by an admin", CreatedBy: "admin"},
		})
		require.NoError(t, err)
		deactivate(t, e, same, false)
		_, err = e.svc.GetUser(e.ctx, "same", false)
		require.True(t, trace.IsNotFound(err), "the account is deleted: %v", err)
		kept, err := e.svc.GetLock(e.ctx, mine.GetMetadata().GetName())
		require.NoError(t, err)
		require.Equal(t, mine.GetMetadata().GetRevision(), kept.GetMetadata().GetRevision(), "the admin's lock is left as it was")

		// One that locks someone else: the deactivation is refused, and
		// the first, failed attempt wrote nothing.
		other := e.create(t, "other", "00o")
		_, err = e.svc.CreateLock(e.ctx, &typesv1.Lock{
			Metadata: &typesv1.Metadata{Name: LockName(testPlugin, "other")},
			Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "somebody-else"}, Message: "unrelated", CreatedBy: "admin"},
		})
		require.NoError(t, err)
		cur, err := e.p.GetUser(e.ctx, testPlugin, other.ID)
		require.NoError(t, err)
		cur.Active = false
		_, err = e.p.UpdateUser(e.ctx, testPlugin, nil, cur)
		require.True(t, trace.IsAlreadyExists(err), "%v", err)
		e.user(t, "other")
		still, err := e.p.GetUser(e.ctx, testPlugin, other.ID)
		require.NoError(t, err)
		require.True(t, still.Active)
		require.Equal(t, cur.Revision, still.Revision)

		// The account is taken to be the one written with the record, at its
		// revision, and not read either; where it is not, the next attempt
		// reads it. Changed since (an administrator's edit): still the
		// plugin's, deleted, locked.
		edited := e.create(t, "edited", "00e")
		u := e.user(t, "edited")
		u.Metadata.Description = "edited by an admin"
		_, err = e.svc.UpsertUser(e.ctx, u)
		require.NoError(t, err)
		e.b.keysRead()
		deactivate(t, e, edited, false)
		_, err = e.svc.GetUser(e.ctx, "edited", false)
		require.True(t, trace.IsNotFound(err), "%v", err)
		_, err = e.svc.GetLock(e.ctx, LockName(testPlugin, "edited"))
		require.NoError(t, err)
		// Deleted since: the deactivation locks the name all the same.
		removed := e.create(t, "removed", "00r")
		require.NoError(t, e.svc.DeleteUser(e.ctx, "removed"))
		deactivate(t, e, removed, false)
		_, err = e.svc.GetLock(e.ctx, LockName(testPlugin, "removed"))
		require.NoError(t, err)
		// Replaced by someone else's account under the same name: left alone.
		taken := e.create(t, "taken", "00t")
		require.NoError(t, e.svc.DeleteUser(e.ctx, "taken"))
		_, err = e.svc.CreateUser(e.ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "taken"}, Spec: &typesv1.UserSpec{Roles: []string{"access"}}})
		require.NoError(t, err)
		deactivate(t, e, taken, false)
		local := e.user(t, "taken")
		require.Empty(t, local.GetMetadata().GetLabels()[services.LabelSCIMID], "a local account is never the plugin's to delete")

		// A deletion takes the same path.
		gone := e.create(t, "gone", "00g")
		e.b.keysRead()
		require.NoError(t, e.p.DeleteUser(e.ctx, testPlugin, gone.ID))
		e.requireNotRead(t, LockName(testPlugin, "gone"), "the lock is checked by the write")
		_, err = e.svc.GetUser(e.ctx, "gone", false)
		require.True(t, trace.IsNotFound(err), "%v", err)
		l, err = e.svc.GetLock(e.ctx, LockName(testPlugin, "gone"))
		require.NoError(t, err)
		require.Equal(t, scimrecord.ReasonDeletion, l.GetMetadata().GetLabels()[scimrecord.LabelReason])
	})
}

// withPlugins lists extra plugins besides the stored ones: plugins the
// plugin service would refuse to store, such as one without settings.
type withPlugins struct {
	Plugins
	extra []*typesv1.Plugin
}

func (w withPlugins) ListAllPlugins(ctx context.Context) ([]*typesv1.Plugin, error) {
	stored, err := w.Plugins.ListAllPlugins(ctx)
	return append(stored, w.extra...), err
}

// TestSCIMPlugins: the plugins SCIM serves are those with Okta settings.
func TestSCIMPlugins(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory", func(c *Config) {
		bare := &typesv1.Plugin{Metadata: &typesv1.Metadata{Name: "bare"}, Spec: &typesv1.PluginSpec{}}
		c.Plugins = withPlugins{Plugins: c.Plugins, extra: []*typesv1.Plugin{bare}}
	})
	_, err := e.svc.CreatePlugin(e.ctx, &typesv1.Plugin{
		Metadata: &typesv1.Metadata{Name: "another-okta"},
		Spec: &typesv1.PluginSpec{Settings: &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{
			SamlConnector: testConnector,
		}}},
	})
	require.NoError(t, err)

	names, err := e.p.SCIMPlugins(e.ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{testPlugin, "another-okta"}, names)
}

// TestNewIDsSortInCreationOrder: the ids of users and groups created one
// after another sort in the order they were created, so that their storage
// keys append to the key index instead of landing on random pages (see
// newResourceID). A random (version 4) id fails this for nearly every run.
func TestNewIDsSortInCreationOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory")
	var ids []string
	for i := range 40 {
		rec := e.create(t, fmt.Sprintf("user%02d", i), fmt.Sprintf("00u%02d", i))
		ids = append(ids, rec.ID)
		g, err := e.p.CreateGroup(e.ctx, testPlugin, &scimrecord.GroupRecord{DisplayName: fmt.Sprintf("group%02d", i)})
		require.NoError(t, err)
		ids = append(ids, g.ID)
	}
	require.True(t, slices.IsSorted(ids), "ids in creation order: %v", ids)
	require.Len(t, slices.Compact(slices.Clone(ids)), len(ids), "ids are unique")
	for _, id := range ids {
		u, err := uuid.Parse(id)
		require.NoError(t, err)
		require.Equal(t, uuid.Version(7), u.Version(), id)
	}
}
