package webapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	"github.com/gatehouse/gatehouse/lib/web/webapi"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// decode turns a JSON answer read as a map into T.
func decode[T any](t testing.TB, m map[string]any) T {
	t.Helper()
	raw, err := json.Marshal(m)
	require.NoError(t, err)
	var out T
	require.NoError(t, json.Unmarshal(raw, &out))
	return out
}

// createUser stores u as is (labels, created_by, expiry), the way SAML
// and SCIM write users.
func (e *env) createUser(u *typesv1.User) {
	e.t.Helper()
	u.Kind, u.Version = services.KindUser, services.V1
	_, err := e.auth.Services().Users.CreateUser(context.Background(), u)
	require.NoError(e.t, err)
}

// scimRecord stores the SCIM record of a provisioned user.
func (e *env) scimRecord(rec *scimrecord.UserRecord) {
	e.t.Helper()
	actions, err := scimstore.PutUserActions("okta", nil, rec)
	require.NoError(e.t, err)
	_, err = e.bk.AtomicWrite(context.Background(), actions)
	require.NoError(e.t, err)
}

func (e *env) lock(name string, target *typesv1.LockTarget, labels map[string]string) {
	e.t.Helper()
	_, err := e.auth.Services().Locks.CreateLock(context.Background(), &typesv1.Lock{
		Kind: services.KindLock, Version: services.V1,
		Metadata: &typesv1.Metadata{Name: name, Labels: labels},
		Spec: &typesv1.LockSpec{Target: target, Message: "locked: " + name, CreatedBy: "scim:okta",
			CreatedAt: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))},
	})
	require.NoError(e.t, err)
}

func userNames(rows []webapi.UserRow) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.Name)
	}
	return out
}

// TestUsersPage: each origin and state as the Users page shows it, the
// last SCIM event from the SCIM record, search by canonical prefix, paging
// by cursor, and refusals: 400 for bad input, 403 without the verbs.
func TestUsersPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.user("admin", auth.PresetEditorRole)
	auditor := e.user("auditor", auth.PresetAuditorRole)
	nobody := e.user("nobody", auth.PresetAccessRole)
	e.role("user-reader", []string{"user"}, []string{"list", "readnosecrets"})
	reader := e.user("reader", "user-reader")

	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	e.createUser(&typesv1.User{
		Metadata: &typesv1.Metadata{Name: "sally", Expires: timestamppb.New(expires)},
		Spec: &typesv1.UserSpec{Roles: []string{"access"}, CreatedBy: &typesv1.CreatedBy{
			Connector: &typesv1.ConnectorRef{Type: "saml", Id: "okta", Identity: "sally@example.com"}}},
	})
	modified := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	e.scimRecord(&scimrecord.UserRecord{ID: "rec-sam", UserName: "sam", ExternalID: "00usam", Active: true,
		Attributes: json.RawMessage(`{}`), Created: modified, LastModified: modified})
	e.createUser(&typesv1.User{
		Metadata: &typesv1.Metadata{Name: "sam", Labels: map[string]string{
			services.LabelOrigin: "okta", scimprov.LabelPlugin: "okta", services.LabelSCIMID: "rec-sam"}},
		Spec: &typesv1.UserSpec{Roles: []string{"access"}},
	})
	e.createUser(&typesv1.User{
		Metadata: &typesv1.Metadata{Name: "sid", Labels: map[string]string{services.LabelOrigin: "okta", services.LabelSCIMID: "gone"}},
	})
	e.createUser(&typesv1.User{Metadata: &typesv1.Metadata{Name: "lou"}, Spec: &typesv1.UserSpec{Roles: []string{"access"}}})
	e.lock("lock-lou", &typesv1.LockTarget{User: "lou"}, nil)
	// A lock on a login only is no lock on an account.
	e.lock("lock-login", &typesv1.LockTarget{Login: "root"}, nil)

	code, body := e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/admin/users", nil)
	require.Equal(t, http.StatusOK, code, "%v", body)
	page := decode[webapi.UsersResponse](t, body)
	require.True(t, page.LocksVisible)
	require.Empty(t, page.NextCursor)
	rows := map[string]webapi.UserRow{}
	for _, r := range page.Users {
		rows[r.Name] = r
	}
	require.Equal(t, []string{"admin", "auditor", "lou", "nobody", "reader", "sally", "sam", "sid"}, userNames(page.Users))
	require.Equal(t, webapi.UserRow{Name: "sally", Origin: webapi.OriginSAML, Connector: "okta", State: webapi.UserExpiring,
		Roles: []string{"access"}, Expires: expires.Format(time.RFC3339)}, rows["sally"])
	require.Equal(t, webapi.OriginSCIM, rows["sam"].Origin)
	require.Equal(t, "okta", rows["sam"].Plugin)
	require.Equal(t, webapi.UserActive, rows["sam"].State)
	require.Equal(t, &webapi.SCIMEvent{ID: "rec-sam", ExternalID: "00usam", Active: true, LastModified: "2026-11-30T08:00:00Z"}, rows["sam"].SCIM)
	require.Equal(t, &webapi.SCIMEvent{ID: "gone", Missing: true}, rows["sid"].SCIM)
	require.Equal(t, webapi.UserLocked, rows["lou"].State)
	require.Equal(t, &webapi.LockRef{Name: "lock-lou", Message: "locked: lock-lou"}, rows["lou"].Lock)
	require.Equal(t, webapi.OriginLocal, rows["admin"].Origin)
	require.Equal(t, webapi.UserActive, rows["admin"].State)
	require.Equal(t, []string{auth.PresetEditorRole}, rows["admin"].Roles)

	// Search is a prefix of the canonical name: any case, fullwidth too.
	for q, want := range map[string][]string{
		"s":      {"sally", "sam", "sid"},
		"SA":     {"sally", "sam"},
		"ｓａｍ":    {"sam"},
		"samuel": {},
		"":       userNames(page.Users),
	} {
		code, body := e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/admin/users?q="+url.QueryEscape(q), nil)
		require.Equal(t, http.StatusOK, code, "%v", body)
		require.Equal(t, want, userNames(decode[webapi.UsersResponse](t, body).Users), "q=%q", q)
	}

	// Paging: a cursor per page, none after the last, and each page
	// within the search.
	var got []string
	cursor, pages := "", 0
	for {
		code, body := e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/admin/users?q=s&limit=2&cursor="+url.QueryEscape(cursor), nil)
		require.Equal(t, http.StatusOK, code, "%v", body)
		p := decode[webapi.UsersResponse](t, body)
		require.LessOrEqual(t, len(p.Users), 2)
		got = append(got, userNames(p.Users)...)
		pages++
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	require.Equal(t, []string{"sally", "sam", "sid"}, got)
	require.Equal(t, 2, pages)

	// Bad input: 400 with a reason, never a 500.
	for name, query := range map[string]string{
		"limit zero":         "limit=0",
		"limit too large":    "limit=201",
		"limit not a number": "limit=ten",
		"cursor garbage":     "cursor=%21%21%21",
		"cursor foreign":     "cursor=YWxpY2U",
		"search too long":    "q=" + strings.Repeat("a", 254),
		"search with /":      "q=a%2Fb",
		"search not UTF-8":   "q=%FF",
		"search bad, cursor": "q=a%2Fb&cursor=Z2gxOmFsaWNl",
	} {
		t.Run(name, func(t *testing.T) {
			code, body := e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/admin/users?"+query, nil)
			require.Equal(t, http.StatusBadRequest, code, "%v", body)
			require.NotEmpty(t, body["error"])
		})
	}

	// The auditor sees the page; a user without the verbs gets 403; a user
	// who may read users but not locks sees no lock state.
	code, body = e.do(&auditor, csrfRight, http.MethodGet, "/v1/webapi/admin/users", nil)
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.True(t, decode[webapi.UsersResponse](t, body).LocksVisible)
	code, body = e.do(&nobody, csrfRight, http.MethodGet, "/v1/webapi/admin/users", nil)
	require.Equal(t, http.StatusForbidden, code, "%v", body)
	code, body = e.do(&reader, csrfRight, http.MethodGet, "/v1/webapi/admin/users?q=lou", nil)
	require.Equal(t, http.StatusOK, code, "%v", body)
	p := decode[webapi.UsersResponse](t, body)
	require.False(t, p.LocksVisible)
	require.Equal(t, webapi.UserActive, p.Users[0].State)
	require.Nil(t, p.Users[0].Lock)
}

// TestLocksPage: the listing (paged), lifting a SCIM lock through the
// lock API with its audit event naming who lifted it, and the refusals.
func TestLocksPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.user("admin", auth.PresetEditorRole)
	auditor := e.user("auditor", auth.PresetAuditorRole)
	nobody := e.user("nobody", auth.PresetAccessRole)
	scimLock := scimprov.LockName("okta", "dana")
	scimLabels := map[string]string{services.LabelOrigin: "okta", scimprov.LabelPlugin: "okta",
		scimrecord.LabelReason: scimrecord.ReasonDeactivation, services.LabelSCIMID: "rec-1"}
	e.lock(scimLock, &typesv1.LockTarget{User: "dana"}, scimLabels)
	e.lock("manual", &typesv1.LockTarget{Role: "access"}, nil)
	e.lock("zz-login", &typesv1.LockTarget{Login: "root"}, nil)

	code, body := e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/admin/locks?limit=2", nil)
	require.Equal(t, http.StatusOK, code, "%v", body)
	first := decode[webapi.LocksResponse](t, body)
	require.True(t, first.CanLift)
	require.Len(t, first.Locks, 2)
	require.NotEmpty(t, first.NextCursor)
	require.Equal(t, webapi.LockRow{Name: "manual", Target: webapi.LockTarget{Role: "access"}, Message: "locked: manual",
		CreatedBy: "scim:okta", CreatedAt: "2026-01-02T03:04:05Z", InForce: true}, first.Locks[0])
	scimRow := first.Locks[1]
	require.Equal(t, scimLock, scimRow.Name)
	require.True(t, scimRow.SCIM)
	require.Equal(t, "okta", scimRow.Origin)
	require.Equal(t, scimrecord.ReasonDeactivation, scimRow.Reason)
	code, body = e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/admin/locks?limit=2&cursor="+url.QueryEscape(first.NextCursor), nil)
	require.Equal(t, http.StatusOK, code, "%v", body)
	second := decode[webapi.LocksResponse](t, body)
	require.Equal(t, "zz-login", second.Locks[0].Name)
	require.Empty(t, second.NextCursor)

	// The auditor reads but may not lift: 403, the lock stays.
	code, body = e.do(&auditor, csrfRight, http.MethodGet, "/v1/webapi/admin/locks", nil)
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.False(t, decode[webapi.LocksResponse](t, body).CanLift)
	for _, s := range []session{auditor, nobody} {
		code, body = e.do(&s, csrfRight, http.MethodDelete, "/v1/webapi/admin/locks/"+scimLock, nil)
		require.Equal(t, http.StatusForbidden, code, "%v", body)
	}
	code, _ = e.do(&nobody, csrfRight, http.MethodGet, "/v1/webapi/admin/locks", nil)
	require.Equal(t, http.StatusForbidden, code)
	// Without the CSRF token, nothing is lifted either.
	code, _ = e.do(&admin, csrfNone, http.MethodDelete, "/v1/webapi/admin/locks/"+scimLock, nil)
	require.Equal(t, http.StatusForbidden, code)
	_, err := e.auth.Services().Locks.GetLock(context.Background(), scimLock)
	require.NoError(t, err, "a refused lift leaves the lock")

	for name, tc := range map[string]struct {
		path string
		code int
	}{
		"missing":    {"/v1/webapi/admin/locks/nope", http.StatusNotFound},
		"bad name":   {"/v1/webapi/admin/locks/a%20b", http.StatusBadRequest},
		"bad cursor": {"/v1/webapi/admin/locks?cursor=zzz", http.StatusBadRequest},
		"bad limit":  {"/v1/webapi/admin/locks?limit=-1", http.StatusBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			method := http.MethodDelete
			if strings.Contains(tc.path, "?") {
				method = http.MethodGet
			}
			code, body := e.do(&admin, csrfRight, method, tc.path, nil)
			require.Equal(t, tc.code, code, "%v", body)
		})
	}

	// The editor lifts the SCIM lock: the answer says what it means, and
	// lock.delete names the editor.
	code, body = e.do(&admin, csrfRight, http.MethodDelete, "/v1/webapi/admin/locks/"+scimLock, nil)
	require.Equal(t, http.StatusOK, code, "%v", body)
	lifted := decode[webapi.LiftResponse](t, body)
	require.Equal(t, scimLock, lifted.Lifted.Name)
	require.True(t, lifted.Lifted.SCIM)
	require.Contains(t, lifted.Note, "stays deleted")
	require.Contains(t, lifted.Note, "Okta")
	_, err = e.auth.Services().Locks.GetLock(context.Background(), scimLock)
	require.Error(t, err)
	evs, err := e.events.Search(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour), []string{"lock.delete"}, 10)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, "admin", evs[0].GetUser())
	require.Equal(t, "lock/"+scimLock, evs[0].GetResource())
	require.Equal(t, services.OutcomeSuccess, evs[0].GetOutcome())

	// The Okta page's recent events show the lift.
	code, body = e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/plugins/okta/events", nil)
	require.Equal(t, http.StatusOK, code, "%v", body)
	okta := decode[webapi.EventsResponse](t, body)
	require.NotEmpty(t, okta.Events)
	require.Equal(t, "lock.delete", okta.Events[0].Type)
	require.Equal(t, "admin", okta.Events[0].User)

	code, body = e.do(&admin, csrfRight, http.MethodDelete, "/v1/webapi/admin/locks/manual", nil)
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.NotContains(t, decode[webapi.LiftResponse](t, body).Note, "Okta")
}

// TestOktaSettingsEdit: the Okta tile's settings are saved through the
// plugin API; malformed input is a 400 naming the field, the API's own
// refusals come back readable (400 for a short lock_ttl, 403 for grants
// the caller does not hold), and the auditor may not save.
func TestOktaSettingsEdit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.user("admin", auth.PresetEditorRole)
	auditor := e.user("auditor", auth.PresetAuditorRole)
	e.role("plugin-admin", []string{"plugin", "saml"}, []string{"list", "readnosecrets", "create", "update"})
	pluginAdmin := e.user("padmin", "plugin-admin")
	path := "/v1/webapi/plugins/okta/settings"

	code, body := e.do(&admin, csrfRight, http.MethodPut, path, webapi.OktaSettings{DefaultRoles: []string{"access"}})
	require.Equal(t, http.StatusBadRequest, code, "no plugin yet: %v", body)
	require.Contains(t, body["error"], "SSO first")
	code, body = e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/saml", webapi.CreateSAMLRequest{EntityDescriptor: idpMetadata(t, "http://www.okta.com/exk1")})
	require.Equal(t, http.StatusOK, code, "%v", body)

	want := webapi.OktaSettings{DefaultRoles: []string{"access"}, GrantableRoles: []string{"access", "auditor"}, LockTTL: "720h"}
	code, body = e.do(&admin, csrfRight, http.MethodPut, path, want)
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.Equal(t, want, decode[webapi.OktaState](t, body).Settings)
	p, err := e.auth.Services().Plugins.GetPlugin(context.Background(), "okta")
	require.NoError(t, err)
	require.Equal(t, "720h", p.GetSpec().GetOkta().GetLockTtl())
	require.Equal(t, []string{"access"}, p.GetSpec().GetOkta().GetDefaultRoles())
	require.Equal(t, "okta", p.GetSpec().GetOkta().GetSamlConnector(), "other settings are kept")
	evs, err := e.events.Search(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour), []string{"plugin.update"}, 10)
	require.NoError(t, err)
	require.NotEmpty(t, evs)
	require.Equal(t, "admin", evs[len(evs)-1].GetUser())

	for name, tc := range map[string]struct {
		body any
		code int
		msg  string
	}{
		"lock_ttl not a duration": {webapi.OktaSettings{LockTTL: "thirty days"}, http.StatusBadRequest, "Lock TTL"},
		"lock_ttl negative":       {webapi.OktaSettings{LockTTL: "-5h"}, http.StatusBadRequest, "positive"},
		"lock_ttl too short":      {webapi.OktaSettings{LockTTL: "1m"}, http.StatusBadRequest, "shorter than the longest session"},
		"role with a space":       {webapi.OktaSettings{DefaultRoles: []string{"a b"}}, http.StatusBadRequest, "Default roles"},
		"empty role":              {webapi.OktaSettings{GrantableRoles: []string{""}}, http.StatusBadRequest, "Grantable roles"},
		"duplicate role":          {webapi.OktaSettings{DefaultRoles: []string{"access", "access"}}, http.StatusBadRequest, "twice"},
		"unknown field":           {map[string]any{"default_roles": []string{}, "admin": true}, http.StatusBadRequest, "unknown field"},
		"wrong type":              {map[string]any{"lock_ttl": 5}, http.StatusBadRequest, `"lock_ttl" must be a string, not number`},
	} {
		t.Run(name, func(t *testing.T) {
			code, body := e.do(&admin, csrfRight, http.MethodPut, path, tc.body)
			require.Equal(t, tc.code, code, "%v", body)
			require.Contains(t, body["error"], tc.msg)
		})
	}

	// Someone who may update the plugin but holds no editor role cannot
	// make SCIM grant editor: the plugin API's 403, readable.
	code, body = e.do(&pluginAdmin, csrfRight, http.MethodPut, path, webapi.OktaSettings{DefaultRoles: []string{"editor"}})
	require.Equal(t, http.StatusForbidden, code, "%v", body)
	require.Contains(t, body["error"], "you do not hold editor")
	code, body = e.do(&auditor, csrfRight, http.MethodPut, path, webapi.OktaSettings{})
	require.Equal(t, http.StatusForbidden, code, "%v", body)
	// None of it changed the settings.
	code, body = e.do(&auditor, csrfRight, http.MethodGet, "/v1/webapi/plugins/okta", nil)
	require.Equal(t, http.StatusOK, code, "%v", body)
	st := decode[webapi.OktaState](t, body)
	require.Equal(t, want, st.Settings)
	require.False(t, st.Permissions.Manage, "the auditor's tile is read-only")
}

// countingBackend counts the user items range reads return.
type countingBackend struct {
	backend.Backend
	userItems atomic.Int64
}

func (c *countingBackend) GetRange(ctx context.Context, start, end backend.Key, limit int) (*backend.GetResult, error) {
	res, err := c.Backend.GetRange(ctx, start, end, limit)
	if err == nil {
		for _, it := range res.Items {
			if it.Key.HasPrefix(backend.Key(services.UsersPrefix + "/")) {
				c.userItems.Add(1)
			}
		}
	}
	return res, err
}

// scaleUsers is the size of the directory of the scale test and benchmark.
const scaleUsers = 100_000

// newScaleEnv is an env whose backend holds scaleUsers users (user000000
// ...), written directly to the backend for speed.
func newScaleEnv(tb testing.TB) (*env, *countingBackend) {
	tb.Helper()
	mem, err := memory.New(context.Background(), memory.Config{})
	require.NoError(tb, err)
	tb.Cleanup(func() { mem.Close() })
	cb := &countingBackend{Backend: mem}
	e := newEnvOn(tb, cb, publicAddr, "")
	ctx := context.Background()
	for i := range scaleUsers {
		item, err := services.MarshalUser(&typesv1.User{
			Metadata: &typesv1.Metadata{Name: fmt.Sprintf("user%06d", i)},
			Spec:     &typesv1.UserSpec{Roles: []string{"access"}, Incarnation: "0123456789abcdef"},
		})
		require.NoError(tb, err)
		_, err = mem.Put(ctx, item)
		require.NoError(tb, err)
	}
	return e, cb
}

// TestUsersPageAtScale: with 100,000 users, a page reads limit+1 users
// from the backend, wherever it starts and whatever it searches: a page
// costs O(page), not O(users).
func TestUsersPageAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100,000 users")
	}
	t.Parallel()
	e, cb := newScaleEnv(t)
	admin := e.user("admin", auth.PresetEditorRole)
	for _, tc := range []struct {
		query string
		want  int
		first string
	}{
		{"limit=50", 50, "admin"},
		{"limit=200&q=user09", 200, "user090000"},
		{"limit=50&q=USER09999", 10, "user099990"},
		{"limit=50&q=nobody", 0, ""},
	} {
		cb.userItems.Store(0)
		code, body := e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/admin/users?"+tc.query, nil)
		require.Equal(t, http.StatusOK, code, "%v", body)
		p := decode[webapi.UsersResponse](t, body)
		require.Len(t, p.Users, tc.want, tc.query)
		if tc.want > 0 {
			require.Equal(t, tc.first, p.Users[0].Name)
		}
		// limit+1 from the listing, plus the caller's own user read by the
		// session middleware and the authorizer.
		require.LessOrEqual(t, cb.userItems.Load(), int64(tc.want+1+2), tc.query)
	}
	// Deep in the directory through the cursor: still one page read.
	code, body := e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/admin/users?limit=60&q=user0999", nil)
	require.Equal(t, http.StatusOK, code)
	next := decode[webapi.UsersResponse](t, body).NextCursor
	require.NotEmpty(t, next)
	cb.userItems.Store(0)
	code, body = e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/admin/users?limit=60&q=user0999&cursor="+url.QueryEscape(next), nil)
	require.Equal(t, http.StatusOK, code)
	p := decode[webapi.UsersResponse](t, body)
	require.Len(t, p.Users, 40)
	require.Equal(t, "user099960", p.Users[0].Name)
	require.Equal(t, "user099999", p.Users[len(p.Users)-1].Name)
	require.Empty(t, p.NextCursor)
	require.LessOrEqual(t, cb.userItems.Load(), int64(40+1+2))
}

// BenchmarkUsersPage times one Users page (50 users, then a search) over
// HTTP with 100,000 users stored: go test -bench UsersPage ./lib/web/webapi.
func BenchmarkUsersPage(b *testing.B) {
	e, _ := newScaleEnv(b)
	admin := e.user("admin", auth.PresetEditorRole)
	for _, q := range []string{"limit=50", "limit=50&q=user0777", "limit=200&q=user05"} {
		b.Run(q, func(b *testing.B) {
			for b.Loop() {
				code, _ := e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/admin/users?"+q, nil)
				if code != http.StatusOK {
					b.Fatalf("status %d", code)
				}
			}
		})
	}
}
