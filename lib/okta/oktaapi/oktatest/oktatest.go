// Package oktatest is a stand-in for Okta's management API, for tests: the
// users assigned to one app (GET /api/v1/apps/{appId}/users, expand=user,
// filter=lastUpdated gt) and one assignment (.../users/{userId}), users
// (GET /api/v1/users/{id}), groups and their members, and the System Log
// (GET /api/v1/logs, a polling query with since, filter and an after
// cursor) with an event for each change made to the org, with Okta's documented
// response shapes, Link rel="next"/"self" pagination (limit and an after
// cursor), X-Rate-Limit-* headers and 429s with Okta's error body. Tests
// inject failures (a status for the Nth call, a truncated page, slow pages)
// and change the org (assign, unassign, deactivate, suspend, groups).
//
// It authenticates with an API token (SSWS) or, for an OAuth service app,
// checks a private_key_jwt client assertion at /oauth2/v1/token against the
// registered public key and issues an access token.
package oktatest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/lib/defaults"
)

// Org is the stand-in's state.
type Org struct {
	// Token is the accepted API token.
	Token string
	// AppID is the one app.
	AppID string
	// RateLimit is the calls per endpoint per window (0: 600); the window
	// is RateWindow (0: one minute).
	RateLimit  int
	RateWindow time.Duration
	// PageSize, if set, caps the page size whatever the client asks (Okta
	// caps it too), to get several pages from a small org.
	PageSize int
	// RejectFilter answers 400 to a lastUpdated filter, as an org (or an
	// API version) that does not support it would.
	RejectFilter bool
	// LogsForbidden answers 403 to the System Log, as Okta does for a
	// credential without okta.logs.read; a service app asking for that
	// scope gets invalid_scope from the token endpoint.
	LogsForbidden bool

	mu       sync.Mutex
	now      func() time.Time
	users    map[string]*user
	groups   map[string]*group
	assigned map[string]*assignment
	seq      int
	// faults are injected answers by call number (1-based, all API calls).
	faults  map[int]fault
	calls   int
	byPath  map[string]int
	byCode  map[int]int
	windows map[string]*window
	delay   time.Duration
	// failKind fails every call of a path kind with a status.
	failKind map[string]int
	// logs is the System Log, oldest first.
	logs []logEvent
	// OAuth.
	clientID    string
	clientKey   crypto.PublicKey
	accessToken string
	tokenScopes []string
	Server      *httptest.Server
}

type user struct {
	ID, Status, Login, First, Last string
	Created, LastUpdated           time.Time
}

type group struct {
	ID, Name    string
	LastUpdated time.Time
	members     map[string]bool
}

type assignment struct {
	status      string
	created     time.Time
	lastUpdated time.Time
}

type fault struct {
	status   int
	truncate bool
}

type logEvent struct {
	uuid      string
	published time.Time
	eventType string
	targets   []map[string]any
}

type window struct {
	start time.Time
	used  int
}

// New starts a stand-in org; Close it with org.Server.Close (done through
// t.Cleanup by the caller).
func New() *Org {
	o := &Org{
		Token:    "test-ssws-token",
		AppID:    "0oaapp1234567890",
		now:      time.Now,
		users:    map[string]*user{},
		groups:   map[string]*group{},
		assigned: map[string]*assignment{},
		faults:   map[int]fault{},
		byPath:   map[string]int{},
		byCode:   map[int]int{},
		windows:  map[string]*window{},
		failKind: map[string]int{},
	}
	o.Server = httptest.NewServer(http.HandlerFunc(o.serve))
	return o
}

// URL is the org URL.
func (o *Org) URL() string { return o.Server.URL }

// Close stops the server.
func (o *Org) Close() { o.Server.Close() }

// SetClock makes the org's timestamps and rate-limit windows follow now.
func (o *Org) SetClock(now func() time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.now = now
}

// RegisterServiceApp accepts client assertions of clientID signed by the
// private key of pub.
func (o *Org) RegisterServiceApp(clientID string, pub crypto.PublicKey) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clientID, o.clientKey = clientID, pub
}

func (o *Org) nextID(prefix string) string {
	o.seq++
	return fmt.Sprintf("%s%017d", prefix, o.seq)
}

// tick returns a timestamp strictly after every one given before, so that
// lastUpdated filters see each change.
func (o *Org) tick() time.Time {
	t := o.now().UTC().Truncate(time.Millisecond)
	return t
}

// AddUser creates an ACTIVE user with login and returns its id; assigned
// says whether it is assigned to the app.
func (o *Org) AddUser(login string, assigned bool) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.tick()
	id := o.nextID("00u")
	first, _, _ := strings.Cut(login, "@")
	o.users[id] = &user{ID: id, Status: "ACTIVE", Login: login, First: first, Last: "Test", Created: now, LastUpdated: now}
	o.logUser("user.lifecycle.create", id)
	o.logUser("user.lifecycle.activate", id)
	if assigned {
		o.assigned[id] = &assignment{status: "ACTIVE", created: now, lastUpdated: now}
		o.logMembership("application.user_membership.add", id)
	}
	return id
}

// AddUsers creates n assigned users named user<i>@example.com.
func (o *Org) AddUsers(n int) []string {
	ids := make([]string, n)
	for i := range n {
		ids[i] = o.AddUser(fmt.Sprintf("user%05d@example.com", i), true)
	}
	return ids
}

// Assign assigns user id to the app.
func (o *Org) Assign(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.tick()
	o.assigned[id] = &assignment{status: "ACTIVE", created: now, lastUpdated: now}
	o.logMembership("application.user_membership.add", id)
}

// Unassign removes user id from the app (it disappears from the listing,
// as in Okta).
func (o *Org) Unassign(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.assigned, id)
	o.logMembership("application.user_membership.remove", id)
}

// DeleteUser deletes user id (deactivated first, as Okta requires), with
// its assignment.
func (o *Org) DeleteUser(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.users[id].Status != "DEPROVISIONED" {
		o.logUser("user.lifecycle.deactivate", id)
	}
	o.logUser("user.lifecycle.delete.initiated", id)
	delete(o.assigned, id)
	delete(o.users, id)
	for _, g := range o.groups {
		delete(g.members, id)
	}
}

// AddLogEvent appends a System Log event of eventType about user id (with
// the app as a target for application.* events) without changing the
// org: an event whose change was undone, or a stale one.
func (o *Org) AddLogEvent(eventType, id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if strings.HasPrefix(eventType, "application.") {
		o.logMembership(eventType, id)
	} else {
		o.logUser(eventType, id)
	}
}

// userTarget is the User target of an event about id.
func (o *Org) userTarget(id string) map[string]any {
	t := map[string]any{"id": id, "type": "User", "alternateId": "unknown", "displayName": "unknown", "detailEntry": nil}
	if u := o.users[id]; u != nil {
		t["alternateId"], t["displayName"] = u.Login, u.First+" "+u.Last
	}
	return t
}

// logUser records a user.lifecycle.* event, with o.mu held.
func (o *Org) logUser(eventType, id string) {
	o.appendLog(eventType, []map[string]any{o.userTarget(id)})
}

// logMembership records an application.user_membership.* event: its
// targets are the app user, the app and the user, as in Okta.
func (o *Org) logMembership(eventType, id string) {
	ut := o.userTarget(id)
	o.appendLog(eventType, []map[string]any{
		{"id": "0ua" + strings.TrimPrefix(id, "00u"), "type": "AppUser", "alternateId": ut["alternateId"], "displayName": ut["displayName"], "detailEntry": nil},
		{"id": o.AppID, "type": "AppInstance", "alternateId": "Gatehouse", "displayName": "Gatehouse", "detailEntry": map[string]any{"signOnModeType": "SAML_2_0"}},
		ut,
	})
}

func (o *Org) appendLog(eventType string, targets []map[string]any) {
	o.logs = append(o.logs, logEvent{uuid: fmt.Sprintf("%08d-0000-11ee-8000-000000000000", len(o.logs)+1), published: o.tick(), eventType: eventType, targets: targets})
}

// SetStatus sets user id's status (ACTIVE, SUSPENDED, DEPROVISIONED...);
// the user and its assignment are updated now.
func (o *Org) SetStatus(id, status string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.tick()
	u := o.users[id]
	prev := u.Status
	u.Status, u.LastUpdated = status, now
	if a := o.assigned[id]; a != nil {
		a.lastUpdated = now
	}
	switch {
	case status == "SUSPENDED":
		o.logUser("user.lifecycle.suspend", id)
	case status == "DEPROVISIONED":
		o.logUser("user.lifecycle.deactivate", id)
	case status == "ACTIVE" && prev == "SUSPENDED":
		o.logUser("user.lifecycle.unsuspend", id)
	case status == "ACTIVE":
		o.logUser("user.lifecycle.activate", id)
	}
}

// SetLogin renames user id.
func (o *Org) SetLogin(id, login string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.tick()
	u := o.users[id]
	u.Login, u.LastUpdated = login, now
	if a := o.assigned[id]; a != nil {
		a.lastUpdated = now
	}
}

// SetName changes user id's first and last name (its profile's firstName
// and lastName), as a person editing their own Okta profile can.
func (o *Org) SetName(id, first, last string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.tick()
	u := o.users[id]
	u.First, u.Last, u.LastUpdated = first, last, now
	if a := o.assigned[id]; a != nil {
		a.lastUpdated = now
	}
}

// AddGroup creates a group and returns its id.
func (o *Org) AddGroup(name string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	id := o.nextID("00g")
	o.groups[id] = &group{ID: id, Name: name, LastUpdated: o.tick(), members: map[string]bool{}}
	return id
}

// AddMember adds user to group (as in Okta, neither the user's nor its
// assignment's lastUpdated changes).
func (o *Org) AddMember(groupID, userID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.groups[groupID].members[userID] = true
}

// RemoveMember removes user from group.
func (o *Org) RemoveMember(groupID, userID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.groups[groupID].members, userID)
}

// FailCall makes API call number n from now (1 = the next) answer status.
func (o *Org) FailCall(n, status int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.faults[o.calls+n] = fault{status: status}
}

// TruncateCall makes API call number n from now answer 200 with its body
// cut in half.
func (o *Org) TruncateCall(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.faults[o.calls+n] = fault{truncate: true}
}

// FailKind makes every call of a path kind (see Calls) answer status, until
// called again with status 0.
func (o *Org) FailKind(kind string, status int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if status == 0 {
		delete(o.failKind, kind)
		return
	}
	o.failKind[kind] = status
}

// SlowPages delays every API answer by d.
func (o *Org) SlowPages(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.delay = d
}

// Calls returns the API calls made so far by path kind ("apps.users",
// "apps.user", "users", "logs", "groups", "groups.users", "oauth2.token")
// and by status.
func (o *Org) Calls() (total int, byPath map[string]int, byCode map[int]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	bp, bc := map[string]int{}, map[int]int{}
	for k, v := range o.byPath {
		bp[k] = v
	}
	for k, v := range o.byCode {
		bc[k] = v
	}
	return o.calls, bp, bc
}

func writeError(w http.ResponseWriter, status int, code, summary string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errorCode": code, "errorSummary": summary, "errorLink": code,
		"errorId": "oae" + strconv.Itoa(status), "errorCauses": []any{},
	})
}

func (o *Org) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/oauth2/v1/token" {
		o.serveToken(w, r)
		return
	}
	o.mu.Lock()
	delay := o.delay
	o.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	kind := pathKind(r.URL.Path)
	o.byPath[kind]++
	status, body := o.route(w, r, kind)
	o.byCode[status]++
	if status != http.StatusOK {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if f, ok := o.faults[o.calls]; ok && f.truncate {
		body = body[:len(body)/2]
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func pathKind(p string) string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case len(parts) == 5 && parts[2] == "apps" && parts[4] == "users":
		return "apps.users"
	case len(parts) == 6 && parts[2] == "apps" && parts[4] == "users":
		return "apps.user"
	case len(parts) == 4 && parts[2] == "users":
		return "users"
	case len(parts) == 3 && parts[2] == "logs":
		return "logs"
	case len(parts) == 3 && parts[2] == "groups":
		return "groups"
	case len(parts) == 5 && parts[2] == "groups" && parts[4] == "users":
		return "groups.users"
	}
	return "other"
}

// route answers one API call with o.mu held: errors are written here, a
// 200's body is returned for serve to write.
func (o *Org) route(w http.ResponseWriter, r *http.Request, kind string) (int, []byte) {
	now := o.now()
	if !o.authorized(r) {
		writeError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
		return http.StatusUnauthorized, nil
	}
	// Rate limit per endpoint kind, as Okta buckets by endpoint.
	limit, win := o.RateLimit, o.RateWindow
	defaults.IfZero(&limit, 600)
	defaults.IfZero(&win, time.Minute)
	wd := o.windows[kind]
	if wd == nil || now.Sub(wd.start) >= win {
		wd = &window{start: now}
		o.windows[kind] = wd
	}
	wd.used++
	remaining := max(limit-wd.used, 0)
	h := w.Header()
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(limit))
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(remaining))
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(wd.start.Add(win).Unix(), 10))
	if wd.used > limit {
		writeError(w, http.StatusTooManyRequests, "E0000047", "API call exceeded rate limit due to too many requests.")
		return http.StatusTooManyRequests, nil
	}
	if f, ok := o.faults[o.calls]; ok && f.status != 0 {
		writeError(w, f.status, "E0000009", "Internal Server Error")
		return f.status, nil
	}
	if status := o.failKind[kind]; status != 0 {
		writeError(w, status, "E0000009", "Internal Server Error")
		return status, nil
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	limitN := 200
	if v, err := strconv.Atoi(q.Get("limit")); err == nil && v > 0 {
		limitN = min(v, 500)
	}
	if o.PageSize > 0 {
		limitN = min(limitN, o.PageSize)
	}
	switch kind {
	case "logs":
		return o.serveLogs(w, r)
	case "apps.user":
		if parts[3] != o.AppID {
			writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+parts[3]+" (AppInstance)")
			return http.StatusNotFound, nil
		}
		if o.assigned[parts[5]] == nil {
			writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+parts[5]+" (AppUser)")
			return http.StatusNotFound, nil
		}
		body, _ := json.Marshal(o.appUserJSON(parts[5], q.Get("expand") == "user"))
		return http.StatusOK, body
	case "users":
		u := o.users[parts[3]]
		if u == nil {
			writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+parts[3]+" (User)")
			return http.StatusNotFound, nil
		}
		body, _ := json.Marshal(o.userJSON(u))
		return http.StatusOK, body
	case "apps.users":
		if parts[3] != o.AppID {
			writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+parts[3]+" (AppInstance)")
			return http.StatusNotFound, nil
		}
		var since time.Time
		if f := q.Get("filter"); f != "" && o.RejectFilter {
			writeError(w, http.StatusBadRequest, "E0000031", "Invalid search criteria.")
			return http.StatusBadRequest, nil
		} else if f != "" {
			v, ok := strings.CutPrefix(f, "lastUpdated gt ")
			t, err := time.Parse(time.RFC3339Nano, strings.Trim(v, `"`))
			if !ok || err != nil {
				writeError(w, http.StatusBadRequest, "E0000031", "Invalid search criteria.")
				return http.StatusBadRequest, nil
			}
			since = t
		}
		var ids []string
		for id, a := range o.assigned {
			if since.IsZero() || a.lastUpdated.After(since) {
				ids = append(ids, id)
			}
		}
		return o.page(w, r, ids, limitN, func(id string) any { return o.appUserJSON(id, q.Get("expand") == "user") })
	case "groups":
		var ids []string
		for id, g := range o.groups {
			if strings.HasPrefix(strings.ToLower(g.Name), strings.ToLower(q.Get("q"))) {
				ids = append(ids, id)
			}
		}
		return o.page(w, r, ids, limitN, func(id string) any { return o.groupJSON(o.groups[id]) })
	case "groups.users":
		g := o.groups[parts[3]]
		if g == nil {
			writeError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+parts[3]+" (UserGroup)")
			return http.StatusNotFound, nil
		}
		var ids []string
		for id := range g.members {
			ids = append(ids, id)
		}
		return o.page(w, r, ids, limitN, func(id string) any { return o.userJSON(o.users[id]) })
	}
	writeError(w, http.StatusNotFound, "E0000022", "The endpoint does not support the provided HTTP method")
	return http.StatusNotFound, nil
}

// page writes the Link headers and returns the page after the "after"
// cursor (ids in order).
func (o *Org) page(w http.ResponseWriter, r *http.Request, ids []string, limit int, render func(string) any) (int, []byte) {
	slices.Sort(ids)
	after := r.URL.Query().Get("after")
	start, _ := slices.BinarySearch(ids, after)
	if after != "" && start < len(ids) && ids[start] == after {
		start++
	}
	end := min(start+limit, len(ids))
	out := make([]any, 0, end-start)
	for _, id := range ids[start:end] {
		out = append(out, render(id))
	}
	self := o.Server.URL + r.URL.RequestURI()
	w.Header().Add("Link", "<"+self+`>; rel="self"`)
	if end < len(ids) {
		q := r.URL.Query()
		q.Set("after", ids[end-1])
		q.Set("limit", strconv.Itoa(limit))
		next := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		w.Header().Add("Link", "<"+o.Server.URL+next.RequestURI()+`>; rel="next"`)
	}
	body, _ := json.Marshal(out)
	return http.StatusOK, body
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (o *Org) userJSON(u *user) map[string]any {
	return map[string]any{
		"id": u.ID, "status": u.Status, "created": ts(u.Created), "activated": ts(u.Created),
		"statusChanged": ts(u.LastUpdated), "lastLogin": nil, "lastUpdated": ts(u.LastUpdated),
		"passwordChanged": nil, "type": map[string]any{"id": "oty1"},
		"profile": map[string]any{
			"firstName": u.First, "lastName": u.Last, "mobilePhone": nil, "secondEmail": nil,
			"login": u.Login, "email": u.Login,
		},
		"credentials": map[string]any{"provider": map[string]any{"type": "OKTA", "name": "OKTA"}},
		"_links":      map[string]any{"self": map[string]any{"href": o.Server.URL + "/api/v1/users/" + u.ID}},
	}
}

func (o *Org) appUserJSON(id string, expand bool) map[string]any {
	a, u := o.assigned[id], o.users[id]
	out := map[string]any{
		"id": id, "externalId": nil, "created": ts(a.created), "lastUpdated": ts(a.lastUpdated),
		"scope": "USER", "status": a.status, "statusChanged": ts(a.lastUpdated), "passwordChanged": nil,
		"syncState": "DISABLED", "credentials": map[string]any{"userName": u.Login},
		"profile": map[string]any{},
		"_links": map[string]any{
			"app":  map[string]any{"href": o.Server.URL + "/api/v1/apps/" + o.AppID},
			"user": map[string]any{"href": o.Server.URL + "/api/v1/users/" + id},
		},
	}
	if expand {
		out["_embedded"] = map[string]any{"user": o.userJSON(u)}
	}
	return out
}

func (o *Org) groupJSON(g *group) map[string]any {
	return map[string]any{
		"id": g.ID, "created": ts(g.LastUpdated), "lastUpdated": ts(g.LastUpdated),
		"lastMembershipUpdated": ts(g.LastUpdated), "objectClass": []string{"okta:user_group"},
		"type": "OKTA_GROUP", "profile": map[string]any{"name": g.Name, "description": ""},
	}
}

func (o *Org) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "SSWS "); ok {
		return tok == o.Token
	}
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return o.accessToken != "" && tok == o.accessToken
	}
	return false
}

// serveToken is the client credentials grant with private_key_jwt.
func (o *Org) serveToken(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.byPath["oauth2.token"]++
	fail := func(desc string) {
		o.byCode[http.StatusUnauthorized]++
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": desc})
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		fail("The grant type is not client_credentials.")
		return
	}
	if r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		fail("client_assertion_type is missing or wrong.")
		return
	}
	for _, s := range []string{"okta.users.read", "okta.apps.read", "okta.groups.read"} {
		if !slices.Contains(strings.Fields(r.PostForm.Get("scope")), s) {
			fail("The scope " + s + " was not asked for.")
			return
		}
	}
	if err := o.checkAssertion(r.PostForm.Get("client_assertion"), o.Server.URL+"/oauth2/v1/token"); err != "" {
		fail(err)
		return
	}
	scopes := strings.Fields(r.PostForm.Get("scope"))
	if o.LogsForbidden && slices.Contains(scopes, "okta.logs.read") {
		o.byCode[http.StatusBadRequest]++
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_scope", "error_description": "The following scopes are not allowed: okta.logs.read"})
		return
	}
	o.accessToken = fmt.Sprintf("at-%d", o.now().UnixNano())
	o.tokenScopes = scopes
	o.byCode[http.StatusOK]++
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token_type": "Bearer", "expires_in": 3600, "access_token": o.accessToken, "scope": r.PostForm.Get("scope"),
	})
}

func (o *Org) checkAssertion(jwt, aud string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 || o.clientKey == nil {
		return "The client assertion is malformed or no service app is registered."
	}
	enc := base64.RawURLEncoding
	hb, err1 := enc.DecodeString(parts[0])
	cb, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return "The client assertion is malformed."
	}
	var hdr struct{ Alg string }
	var cl struct {
		Iss, Sub, Aud, Jti string
		Exp, Iat           int64
	}
	if json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(cb, &cl) != nil {
		return "The client assertion is malformed."
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	ok := false
	switch k := o.clientKey.(type) {
	case *rsa.PublicKey:
		ok = hdr.Alg == "RS256" && rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) == nil
	case *ecdsa.PublicKey:
		ok = hdr.Alg == "ES256" && len(sig) == 64 &&
			ecdsa.Verify(k, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	}
	switch {
	case !ok:
		return "The client_assertion signature is invalid."
	case cl.Iss != o.clientID || cl.Sub != o.clientID:
		return "The client_assertion iss and sub must be the client ID."
	case cl.Aud != aud:
		return "The audience of the client_assertion is not the token endpoint."
	case cl.Jti == "":
		return "The client_assertion has no jti."
	case o.now().Unix() > cl.Exp || cl.Exp-cl.Iat > 3600:
		return "The client_assertion is expired or valid for too long."
	}
	return ""
}

// serveLogs answers GET /api/v1/logs as a polling query: events published
// at or after since (default seven days ago) that match filter, oldest
// first, limit per page, an after cursor, and, as Okta does for a query
// without until, a next link on every page (the client stops at an empty
// page). With o.mu held.
func (o *Org) serveLogs(w http.ResponseWriter, r *http.Request) (int, []byte) {
	scoped := !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || slices.Contains(o.tokenScopes, "okta.logs.read")
	if o.LogsForbidden || !scoped {
		writeError(w, http.StatusForbidden, "E0000006", "You do not have permission to perform the requested action")
		return http.StatusForbidden, nil
	}
	q := r.URL.Query()
	since := o.now().Add(-7 * 24 * time.Hour)
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "E0000001", "Api validation failed: since")
			return http.StatusBadRequest, nil
		}
		since = t
	}
	var match func(logEvent) bool
	if f := q.Get("filter"); f != "" {
		p := &filterParser{toks: tokenizeFilter(f)}
		m, err := p.expr()
		if err != nil || p.pos != len(p.toks) {
			writeError(w, http.StatusBadRequest, "E0000031", "Invalid search criteria.")
			return http.StatusBadRequest, nil
		}
		match = m
	}
	limit := 100
	if v, err := strconv.Atoi(q.Get("limit")); err == nil && v > 0 {
		limit = min(v, 1000)
	}
	if o.PageSize > 0 {
		limit = min(limit, o.PageSize)
	}
	after := q.Get("after")
	passed := after == ""
	out := []any{}
	last := after
	for _, ev := range o.logs {
		if !passed {
			passed = ev.uuid == after
			continue
		}
		if ev.published.Before(since) || (match != nil && !match(ev)) {
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, o.logEventJSON(ev))
		last = ev.uuid
	}
	h := w.Header()
	h.Add("Link", "<"+o.Server.URL+r.URL.RequestURI()+`>; rel="self"`)
	nq := r.URL.Query()
	if last != "" {
		nq.Set("after", last)
	}
	next := url.URL{Path: r.URL.Path, RawQuery: nq.Encode()}
	h.Add("Link", "<"+o.Server.URL+next.RequestURI()+`>; rel="next"`)
	body, _ := json.Marshal(out)
	return http.StatusOK, body
}

// logEventJSON is an event in Okta's LogEvent shape.
func (o *Org) logEventJSON(ev logEvent) map[string]any {
	return map[string]any{
		"uuid": ev.uuid, "published": ts(ev.published), "eventType": ev.eventType, "version": "0",
		"severity": "INFO", "legacyEventType": nil, "displayMessage": ev.eventType,
		"actor":                 map[string]any{"id": "00uadmin", "type": "User", "alternateId": "admin@example.com", "displayName": "Admin", "detailEntry": nil},
		"client":                map[string]any{"userAgent": nil, "zone": "null", "device": "Computer", "id": nil, "ipAddress": "192.0.2.1", "geographicalContext": nil},
		"outcome":               map[string]any{"result": "SUCCESS", "reason": nil},
		"target":                ev.targets,
		"transaction":           map[string]any{"type": "WEB", "id": "tx-" + ev.uuid, "detail": map[string]any{}},
		"debugContext":          map[string]any{"debugData": map[string]any{}},
		"authenticationContext": map[string]any{"authenticationStep": 0, "externalSessionId": "trs-" + ev.uuid},
		"securityContext":       map[string]any{},
		"request":               map[string]any{"ipChain": []any{}},
	}
}

// The System Log filter: comparisons `attr eq "value"` (attr one of
// eventType, target.id, target.type, outcome.result; target.* matches any
// target) joined by and/or, with parentheses. Enough of Okta's filter
// language for what user sync sends.

func tokenizeFilter(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ':
			i++
		case c == '(' || c == ')':
			toks = append(toks, string(c))
			i++
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return append(toks, s[i:])
			}
			toks = append(toks, s[i:i+j+2])
			i += j + 2
		default:
			j := strings.IndexAny(s[i:], " ()")
			if j < 0 {
				j = len(s) - i
			}
			toks = append(toks, s[i:i+j])
			i += j
		}
	}
	return toks
}

type filterParser struct {
	toks []string
	pos  int
}

func (p *filterParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *filterParser) expr() (func(logEvent) bool, error) {
	left, err := p.term()
	if err != nil {
		return nil, err
	}
	for strings.EqualFold(p.peek(), "or") {
		p.pos++
		right, err := p.term()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(ev logEvent) bool { return l(ev) || right(ev) }
	}
	return left, nil
}

func (p *filterParser) term() (func(logEvent) bool, error) {
	left, err := p.factor()
	if err != nil {
		return nil, err
	}
	for strings.EqualFold(p.peek(), "and") {
		p.pos++
		right, err := p.factor()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(ev logEvent) bool { return l(ev) && right(ev) }
	}
	return left, nil
}

func (p *filterParser) factor() (func(logEvent) bool, error) {
	if p.peek() == "(" {
		p.pos++
		m, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		return m, nil
	}
	if p.pos+3 > len(p.toks) || !strings.EqualFold(p.toks[p.pos+1], "eq") {
		return nil, fmt.Errorf("expected attr eq value")
	}
	attr, raw := p.toks[p.pos], p.toks[p.pos+2]
	p.pos += 3
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, fmt.Errorf("value must be quoted")
	}
	val := raw[1 : len(raw)-1]
	anyTarget := func(field string) func(logEvent) bool {
		return func(ev logEvent) bool {
			for _, t := range ev.targets {
				if t[field] == val {
					return true
				}
			}
			return false
		}
	}
	switch attr {
	case "eventType":
		return func(ev logEvent) bool { return ev.eventType == val }, nil
	case "target.id":
		return anyTarget("id"), nil
	case "target.type":
		return anyTarget("type"), nil
	case "outcome.result":
		return func(logEvent) bool { return val == "SUCCESS" }, nil
	}
	return nil, fmt.Errorf("unsupported attribute %q", attr)
}
