package server

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/abuse"
)

const base = "/v1/webapi/scim/okta"

type harness struct {
	t     *testing.T
	fake  *fakeProvisioner
	srv   *Server
	clock *clockwork.FakeClock
	reg   *prometheus.Registry
}

func newHarness(t *testing.T, mutate ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, fake: newFake(), clock: clockwork.NewFakeClock(), reg: prometheus.NewRegistry()}
	cfg := Config{Users: h.fake, Groups: h.fake, Tokens: h.fake, Status: h.fake, Registerer: h.reg, Clock: h.clock,
		PublicURL: "https://gatehouse.example.com", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	h.srv = srv
	return h
}

// TestConfigNeedsEachInterface: the four parts of the seam are each required, and a missing
// one is named.
func TestConfigNeedsEachInterface(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"Users", func(c *Config) { c.Users = nil }},
		{"Groups", func(c *Config) { c.Groups = nil }},
		{"Tokens", func(c *Config) { c.Tokens = nil }},
		{"Status", func(c *Config) { c.Status = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFake()
			cfg := Config{Users: fake, Groups: fake, Tokens: fake, Status: fake}
			require.NoError(t, cfg.CheckAndSetDefaults())
			tc.mutate(&cfg)
			err := cfg.CheckAndSetDefaults()
			require.True(t, trace.IsBadParameter(err), "%v", err)
			require.ErrorContains(t, err, "missing "+tc.name)
		})
	}
}

// req is one request; headers are name, value pairs that replace the defaults (bearer token,
// SCIM content type, source 192.0.2.1); a value of "" removes the header.
func (h *harness) req(method, path, body string, headers ...string) *httptest.ResponseRecorder {
	h.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.1:40000"
	r.Header.Set("Authorization", "Bearer secret-token")
	r.Header.Set("User-Agent", "Okta SCIM Client 1.0.0")
	r.Header.Set("Accept", "application/scim+json")
	if body != "" {
		r.Header.Set("Content-Type", "application/scim+json; charset=utf-8")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		switch {
		case headers[i] == "RemoteAddr":
			r.RemoteAddr = headers[i+1]
		case headers[i+1] == "":
			r.Header.Del(headers[i])
		default:
			r.Header.Set(headers[i], headers[i+1])
		}
	}
	w := httptest.NewRecorder()
	h.srv.ServeHTTP(w, r)
	return w
}

func decode(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &m), "body: %s", w.Body.String())
	return m
}

// requireSCIMError checks the status, the SCIM error body and its scimType.
func requireSCIMError(t *testing.T, w *httptest.ResponseRecorder, status int, scimType string) map[string]any {
	t.Helper()
	require.Equal(t, status, w.Code, w.Body.String())
	require.Equal(t, "application/scim+json", w.Header().Get("Content-Type"))
	m := decode(t, w)
	require.Equal(t, []any{"urn:ietf:params:scim:api:messages:2.0:Error"}, m["schemas"])
	require.Equal(t, strconv.Itoa(status), m["status"])
	if scimType == "" {
		require.NotContains(t, m, "scimType")
	} else {
		require.Equal(t, scimType, m["scimType"])
	}
	return m
}

const janeJSON = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "userName": "jane@example.com",
  "name": {"givenName": "Jane", "familyName": "Doe"},
  "emails": [{"primary": true, "value": "jane@example.com", "type": "work"}],
  "displayName": "Jane Doe",
  "locale": "en-US",
  "externalId": "00u1abcd",
  "groups": [],
  "password": "Pl@ceholder-1",
  "active": true,
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "12345678901234567890", "department": "Eng"}
}`

func (h *harness) createJane() map[string]any {
	h.t.Helper()
	w := h.req(http.MethodPost, base+"/Users", janeJSON)
	require.Equal(h.t, http.StatusCreated, w.Code, w.Body.String())
	return decode(h.t, w)
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		path    string
		headers []string
	}{
		{"missing token", base + "/Users", []string{"Authorization", ""}},
		{"wrong scheme", base + "/Users", []string{"Authorization", "Basic c2VjcmV0LXRva2Vu"}},
		{"bad token", base + "/Users", []string{"Authorization", "Bearer nope"}},
		{"empty token", base + "/Users", []string{"Authorization", "Bearer "}},
		{"unknown plugin", "/v1/webapi/scim/nosuch/Users", nil},
		{"plugin with SCIM disabled", "/v1/webapi/scim/off/Users", nil},
		{"junk plugin name", "/v1/webapi/scim/..%2f/Users", nil},
		{"unknown path, unauthenticated", base + "/Nope", []string{"Authorization", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			w := h.req(http.MethodGet, tc.path, "", tc.headers...)
			m := requireSCIMError(t, w, http.StatusUnauthorized, "")
			require.Equal(t, "authentication required", m["detail"], "no detail for an unauthenticated caller")
			require.True(t, strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer"))
			require.Empty(t, h.fake.record, "unauthenticated requests do not touch the plugin status")
			require.Zero(t, h.fake.calls["ListUsers"])
		})
	}
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		w := h.req(http.MethodGet, base+"/Users", "", "Authorization", "bearer secret-token")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	})
	t.Run("verifier failure is a 500 without detail", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.fake.errOn["VerifySCIMToken"] = errors.New("backend broke at 10.0.0.7")
		w := h.req(http.MethodGet, base+"/Users", "")
		m := requireSCIMError(t, w, http.StatusInternalServerError, "")
		require.Equal(t, "internal error", m["detail"])
	})
	t.Run("storage unavailable is a 503 with Retry-After", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.fake.errOn["VerifySCIMToken"] = trace.ConnectionProblem(nil, "backend down at 10.0.0.7")
		w := h.req(http.MethodGet, base+"/Users", "")
		m := requireSCIMError(t, w, http.StatusServiceUnavailable, "")
		require.Equal(t, "internal error", m["detail"])
		require.Equal(t, "3", w.Header().Get("Retry-After"))
	})
}

// TestSourceFailureLimiter: a source with AuthFailureLimit failures gets 429 for its bad tokens
// until the window ends, without its token being verified further, while the valid token is
// still accepted from it (an attacker sharing Okta's address cannot stop deprovisioning).
func TestSourceFailureLimiter(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.AuthFailureLimit = 3; c.AuthFailureWindow = time.Minute })
	for range 3 {
		requireSCIMError(t, h.req(http.MethodGet, base+"/Users", "", "Authorization", "Bearer bad"), http.StatusUnauthorized, "")
	}
	w := h.req(http.MethodGet, base+"/Users", "", "Authorization", "Bearer bad")
	requireSCIMError(t, w, http.StatusTooManyRequests, "")
	require.Equal(t, "60", w.Header().Get("Retry-After"))
	requireSCIMError(t, h.req(http.MethodGet, base+"/Users", "", "Authorization", ""), http.StatusTooManyRequests, "")
	require.Equal(t, 3, h.srv.failures.Failures("192.0.2.1"), "refusals of a throttled source are not counted again")
	// The valid token from the same source is accepted.
	require.Equal(t, http.StatusOK, h.req(http.MethodGet, base+"/Users", "").Code)
	// Another source is not affected.
	requireSCIMError(t, h.req(http.MethodGet, base+"/Users", "", "RemoteAddr", "192.0.2.2:1", "Authorization", "Bearer bad"), http.StatusUnauthorized, "")
	h.clock.Advance(30 * time.Second)
	w = h.req(http.MethodGet, base+"/Users", "", "Authorization", "Bearer bad")
	require.Equal(t, "30", w.Header().Get("Retry-After"))
	h.clock.Advance(30 * time.Second)
	requireSCIMError(t, h.req(http.MethodGet, base+"/Users", "", "Authorization", "Bearer bad"), http.StatusUnauthorized, "")
}

// TestConcurrentBadTokensCountedExactly is the race of issue 10: 200 concurrent bad tokens from
// one address; exactly AuthFailureLimit of them are verified (401), the others are refused
// before verification (429), and the source's count is exact.
func TestConcurrentBadTokensCountedExactly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	codes := make(chan int, 200)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			codes <- h.req(http.MethodGet, base+"/Users", "", "Authorization", "Bearer bad-"+strconv.Itoa(i)).Code
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	require.Equal(t, map[int]int{http.StatusUnauthorized: DefaultAuthFailureLimit, http.StatusTooManyRequests: 200 - DefaultAuthFailureLimit}, count)
	require.Equal(t, DefaultAuthFailureLimit, h.srv.failures.Failures("192.0.2.1"))
}

// TestSourceGrouping: IPv6 sources share a budget per /64; X-Forwarded-For counts only from a
// trusted proxy, and then its rightmost untrusted address is the source.
func TestSourceGrouping(t *testing.T) {
	t.Parallel()
	trusted, err := abuse.ParseTrustedProxies([]string{"10.0.0.0/8"})
	require.NoError(t, err)
	h := newHarness(t, func(c *Config) {
		c.AuthFailureLimit = 2
		c.Sources = abuse.NewSources(trusted)
	})
	bad := func(headers ...string) int {
		return h.req(http.MethodGet, base+"/Users", "", append([]string{"Authorization", "Bearer bad"}, headers...)...).Code
	}
	// Two addresses of one /64 exhaust one budget; the next /64 has its own.
	require.Equal(t, http.StatusUnauthorized, bad("RemoteAddr", "[2001:db8:1:2::1]:1"))
	require.Equal(t, http.StatusUnauthorized, bad("RemoteAddr", "[2001:db8:1:2:aaaa::9]:1"))
	require.Equal(t, http.StatusTooManyRequests, bad("RemoteAddr", "[2001:db8:1:2:ffff::1]:1"))
	require.Equal(t, http.StatusUnauthorized, bad("RemoteAddr", "[2001:db8:1:3::1]:1"))

	// An untrusted peer's X-Forwarded-For is ignored: a fresh header per request does not
	// buy a fresh budget.
	require.Equal(t, http.StatusUnauthorized, bad("RemoteAddr", "203.0.113.5:1", "X-Forwarded-For", "198.51.100.1"))
	require.Equal(t, http.StatusUnauthorized, bad("RemoteAddr", "203.0.113.5:1", "X-Forwarded-For", "198.51.100.2"))
	require.Equal(t, http.StatusTooManyRequests, bad("RemoteAddr", "203.0.113.5:1", "X-Forwarded-For", "198.51.100.3"))
	require.Equal(t, 2, h.srv.failures.Failures("203.0.113.5"))

	// Through a trusted proxy, each client has its own budget, and the proxy none.
	require.Equal(t, http.StatusUnauthorized, bad("RemoteAddr", "10.0.0.1:1", "X-Forwarded-For", "1.2.3.4, 198.51.100.7"))
	require.Equal(t, http.StatusUnauthorized, bad("RemoteAddr", "10.0.0.1:1", "X-Forwarded-For", "5.6.7.8, 198.51.100.7"))
	require.Equal(t, http.StatusTooManyRequests, bad("RemoteAddr", "10.0.0.2:1", "X-Forwarded-For", "198.51.100.7"))
	require.Equal(t, http.StatusUnauthorized, bad("RemoteAddr", "10.0.0.1:1", "X-Forwarded-For", "198.51.100.8"))
	require.Equal(t, 2, h.srv.failures.Failures("198.51.100.7"))
	require.Zero(t, h.srv.failures.Failures("10.0.0.1"))
}

func TestPluginRateLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fake.settings["okta"].RateLimit = 1
	h.fake.settings["okta"].RateBurst = 2
	require.Equal(t, http.StatusOK, h.req(http.MethodGet, base+"/Users", "").Code)
	require.Equal(t, http.StatusOK, h.req(http.MethodGet, base+"/Users", "").Code)
	w := h.req(http.MethodGet, base+"/Users", "")
	requireSCIMError(t, w, http.StatusTooManyRequests, "")
	require.Equal(t, "1", w.Header().Get("Retry-After"))
	h.clock.Advance(time.Second)
	require.Equal(t, http.StatusOK, h.req(http.MethodGet, base+"/Users", "").Code)
	// Raising the limit in the settings takes effect on the next request.
	h.fake.settings["okta"].RateLimit = 1000
	h.fake.settings["okta"].RateBurst = 1000
	h.clock.Advance(time.Second)
	require.Equal(t, http.StatusOK, h.req(http.MethodGet, base+"/Users", "").Code)
	h.clock.Advance(time.Second)
	for range 20 {
		require.Equal(t, http.StatusOK, h.req(http.MethodGet, base+"/Users", "").Code)
	}
}

func TestDefaultRateLimitDoesNotThrottleBursts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for i := range 3000 {
		w := h.req(http.MethodGet, base+"/ServiceProviderConfig", "")
		require.Equal(t, http.StatusOK, w.Code, "request %d", i)
	}
}

func TestRoutingAndContentTypes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, path := range []string{"/ServiceProviderConfig", "/ResourceTypes", "/ResourceTypes/User", "/Schemas",
		"/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", "/Users", "/Users/", "/Groups"} {
		w := h.req(http.MethodGet, base+path, "")
		require.Equal(t, http.StatusOK, w.Code, "%s: %s", path, w.Body.String())
		require.Equal(t, "application/scim+json", w.Header().Get("Content-Type"), path)
	}
	spc := decode(t, h.req(http.MethodGet, base+"/ServiceProviderConfig", ""))
	require.Equal(t, "https://gatehouse.example.com/v1/webapi/scim/okta/ServiceProviderConfig", spc["meta"].(map[string]any)["location"])

	for _, path := range []string{"/Nope", "/Users/a/b", "/ResourceTypes/Nope", "/Schemas/urn:nope", "", "/ServiceProviderConfig/x"} {
		requireSCIMError(t, h.req(http.MethodGet, base+path, ""), http.StatusNotFound, "")
	}
	// RFC 7644 §3.11: /Me, which Gatehouse does not serve, is 501 (in any case, any method),
	// with a detail that says why; unauthenticated, it is the same 401 as any other path.
	for _, path := range []string{"/Me", "/me", "/Me/x"} {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			w := h.req(method, base+path, "")
			requireSCIMError(t, w, http.StatusNotImplemented, "")
			require.Contains(t, w.Body.String(), "/Me is not supported", "%s %s", method, path)
		}
	}
	anon := httptest.NewRequest(http.MethodGet, base+"/Me", nil)
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, anon)
	requireSCIMError(t, rec, http.StatusUnauthorized, "")
	// RFC 7644 §4: a filter on a discovery endpoint is 403, never the unfiltered list as if it
	// were the filtered one.
	for _, path := range []string{"/ServiceProviderConfig", "/ResourceTypes", "/ResourceTypes/User", "/Schemas",
		"/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"} {
		requireSCIMError(t, h.req(http.MethodGet, base+path+"?filter=id%20pr", ""), http.StatusForbidden, "")
	}
	w := h.req(http.MethodDelete, base+"/Users", "")
	requireSCIMError(t, w, http.StatusMethodNotAllowed, "")
	require.Equal(t, "GET, POST", w.Header().Get("Allow"))
	requireSCIMError(t, h.req(http.MethodPost, base+"/Schemas", "{}"), http.StatusMethodNotAllowed, "")

	// Content types: both JSON media types, with or without charset; anything else is 415.
	for i, ct := range []string{"application/scim+json", "application/json", "application/json; charset=utf-8", "application/scim+json; charset=UTF-8"} {
		body := strings.Replace(janeJSON, "jane@example.com", "ct"+strconv.Itoa(i)+"@example.com", 1)
		w := h.req(http.MethodPost, base+"/Users", body, "Content-Type", ct)
		require.Equal(t, http.StatusCreated, w.Code, "%s: %s", ct, w.Body.String())
	}
	requireSCIMError(t, h.req(http.MethodPost, base+"/Users", janeJSON, "Content-Type", "text/plain"), http.StatusUnsupportedMediaType, "")

	// Body limits: a declared or an actual body over 1 MiB is 413.
	big := `{"userName":"big@example.com","displayName":"` + strings.Repeat("x", 1<<20) + `"}`
	requireSCIMError(t, h.req(http.MethodPost, base+"/Users", big), http.StatusRequestEntityTooLarge, "")
	r := httptest.NewRequest(http.MethodPost, base+"/Users", strings.NewReader(big))
	r.ContentLength = -1 // chunked: only the reader can tell
	r.Header.Set("Authorization", "Bearer secret-token")
	rec = httptest.NewRecorder()
	h.srv.ServeHTTP(rec, r)
	requireSCIMError(t, rec, http.StatusRequestEntityTooLarge, "")
}

// TestResourceRoutes: each kind's generic handler is routed under its own operation names (the
// metrics label, and what marks a write that drops the sorted-list snapshots).
func TestResourceRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		method, path, op string
		write            bool
	}{
		{http.MethodGet, "/Users", opListUsers, false},
		{http.MethodPost, "/Users", opCreateUser, true},
		{http.MethodPost, "/Users/.search", opSearchUsers, false},
		{http.MethodGet, "/Users/u1", opGetUser, false},
		{http.MethodPut, "/Users/u1", opReplaceUser, true},
		{http.MethodPatch, "/Users/u1", opPatchUser, true},
		{http.MethodDelete, "/Users/u1", opDeleteUser, true},
		{http.MethodGet, "/Groups", opListGroups, false},
		{http.MethodPost, "/Groups", opCreateGroup, true},
		{http.MethodPost, "/Groups/.search", opSearchGroups, false},
		{http.MethodGet, "/Groups/g1", opGetGroup, false},
		{http.MethodPut, "/Groups/g1", opReplaceGroup, true},
		{http.MethodPatch, "/Groups/g1", opPatchGroup, true},
		{http.MethodDelete, "/Groups/g1", opDeleteGroup, true},
		{http.MethodPost, "/.search", opSearch, false},
	} {
		req, err := h.srv.route(httptest.NewRequest(tc.method, base+tc.path, nil))
		require.NoError(t, err, "%s %s", tc.method, tc.path)
		require.Equal(t, tc.op, req.op, "%s %s", tc.method, tc.path)
		require.Equal(t, tc.write, writeOps[req.op], "%s %s", tc.method, tc.path)
	}
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/Users/.search"},
		{http.MethodDelete, "/Groups"},
		{http.MethodPost, "/Groups/g1"},
	} {
		// Answered 405 with Allow (TestRoutingAndContentTypes), under no operation.
		req, err := h.srv.route(httptest.NewRequest(tc.method, base+tc.path, nil))
		require.NoError(t, err, "%s %s", tc.method, tc.path)
		require.Equal(t, opUnknown, req.op, "%s %s", tc.method, tc.path)
	}
}

func TestErrorShapes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	jane := h.createJane()
	id := jane["id"].(string)
	cases := []struct {
		name, method, path, body string
		status                   int
		scimType                 string
	}{
		{"not JSON", http.MethodPost, "/Users", "{", 400, "invalidSyntax"},
		{"JSON array", http.MethodPost, "/Users", "[]", 400, "invalidSyntax"},
		{"no userName", http.MethodPost, "/Users", `{"displayName":"x"}`, 400, "invalidValue"},
		{"wrong type", http.MethodPost, "/Users", `{"userName":"x","active":"maybe"}`, 400, "invalidValue"},
		{"duplicate userName, other case", http.MethodPost, "/Users", `{"userName":"JANE@example.com"}`, 409, "uniqueness"},
		{"bad filter", http.MethodGet, "/Users?filter=userName%20eq", "", 400, "invalidFilter"},
		{"filter on bool with gt", http.MethodGet, "/Users?filter=active%20gt%20true", "", 400, "invalidFilter"},
		{"bad startIndex", http.MethodGet, "/Users?startIndex=x", "", 400, "invalidValue"},
		{"unknown id", http.MethodGet, "/Users/nope", "", 404, ""},
		{"put unknown id", http.MethodPut, "/Users/nope", `{"userName":"x"}`, 404, ""},
		{"delete unknown id", http.MethodDelete, "/Users/nope", "", 404, ""},
		{"patch without schema", http.MethodPatch, "/Users/" + id, `{"Operations":[{"op":"replace","value":{"active":false}}]}`, 400, "invalidSyntax"},
		{"patch bad op", http.MethodPatch, "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"move","path":"x"}]}`, 400, "invalidSyntax"},
		{"patch read-only path", http.MethodPatch, "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"groups","value":[]}]}`, 400, "mutability"},
		{"patch remove without path", http.MethodPatch, "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove"}]}`, 400, "noTarget"},
		{"patch bad path", http.MethodPatch, "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"emails[type eq","value":"x"}]}`, 400, "invalidPath"},
		{"group member of other type", http.MethodPost, "/Groups", `{"displayName":"G","members":[{"value":"x","type":"Group"}]}`, 400, "invalidValue"},
		{"group without displayName", http.MethodPost, "/Groups", `{"members":[]}`, 400, "invalidValue"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requireSCIMError(t, h.req(tc.method, base+tc.path, tc.body), tc.status, tc.scimType)
		})
	}
}

func TestPanicIsA500SCIMBody(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fake.panicOn = "CountUsers"
	w := h.req(http.MethodGet, base+"/Users", "")
	m := requireSCIMError(t, w, http.StatusInternalServerError, "")
	require.Equal(t, "internal error", m["detail"])
	require.Len(t, h.fake.record, 1)
	require.Error(t, h.fake.record[0], "the failure is reported to the plugin status")
	// The server keeps serving.
	h.fake.panicOn = ""
	require.Equal(t, http.StatusOK, h.req(http.MethodGet, base+"/Users", "").Code)
	require.NoError(t, h.fake.record[1])
}

// metricValue returns the counter value, or the histogram sample count, of the series of name
// with exactly these labels (-1 when absent).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.createJane()
	h.req(http.MethodGet, base+"/Users/nope", "")
	h.req(http.MethodGet, "/v1/webapi/scim/random-name/Users", "", "Authorization", "")
	const total = "gatehouse_scim_requests_total"
	require.Equal(t, 1.0, metricValue(t, h.reg, total, map[string]string{"plugin": "okta", "operation": "create_user", "code": "201"}))
	require.Equal(t, 1.0, metricValue(t, h.reg, total, map[string]string{"plugin": "okta", "operation": "get_user", "code": "404"}))
	require.Equal(t, 1.0, metricValue(t, h.reg, total, map[string]string{"plugin": "-", "operation": "list_users", "code": "401"}))
	require.Equal(t, 1.0, metricValue(t, h.reg, "gatehouse_scim_request_duration_seconds", map[string]string{"plugin": "okta", "operation": "create_user"}))
	_, err := New(Config{Users: h.fake, Groups: h.fake, Tokens: h.fake, Status: h.fake, Registerer: h.reg})
	require.Error(t, err, "registering twice on one registry is refused")
}
