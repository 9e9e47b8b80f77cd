package sso_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/abuse"
	"github.com/gatehouse/gatehouse/lib/auth/saml"
	"github.com/gatehouse/gatehouse/lib/web/sso"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// loginReq is a password login from remote with content type ct; headers are name, value pairs.
func loginReq(h http.Handler, user, pw, remote, ct string, headers ...string) *httptest.ResponseRecorder {
	b, _ := json.Marshal(sso.PasswordLoginRequest{User: user, Password: pw})
	req := httptest.NewRequest(http.MethodPost, "/v1/webapi/sessions", bytes.NewReader(b))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.RemoteAddr = remote
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func withRoot(t *testing.T, opts ...func(*sso.Config)) (*sso.Handler, *recorder) {
	t.Helper()
	h, svc, _, rec := newHandler(t, opts...)
	ctx := context.Background()
	_, err := svc.CreateUser(ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "root"}, Spec: &typesv1.UserSpec{Roles: []string{"editor"}}})
	require.NoError(t, err)
	require.NoError(t, svc.SetLocalPassword(ctx, "root", "correct horse battery"))
	return h, rec
}

// TestPasswordLoginNeedsJSON: a login whose body is not declared JSON (what a cross-site
// HTML form can send) is refused with 415 before anything is hashed or counted.
func TestPasswordLoginNeedsJSON(t *testing.T) {
	t.Parallel()
	h, _ := withRoot(t)
	for _, ct := range []string{"", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", "application/jsonx", "application/json-seq"} {
		w := loginReq(h, "root", "correct horse battery", "192.0.2.1:1", ct)
		require.Equal(t, http.StatusUnsupportedMediaType, w.Code, "%q: %s", ct, w.Body.String())
		require.Contains(t, w.Body.String(), "application/json")
	}
	compares, _ := h.PasswordHashStats()
	require.Zero(t, compares)
	for _, ct := range []string{"application/json", "Application/JSON; charset=utf-8"} {
		require.Equal(t, http.StatusOK, loginReq(h, "root", "correct horse battery", "192.0.2.1:1", ct).Code, ct)
	}
}

// TestConcurrentBadPasswords: 50 concurrent wrong passwords from one address. The failures
// are reserved before the password is hashed, so exactly the limiter's burst is hashed (403)
// and the rest are refused unhashed (429); hashes run at most abuse.HashSlots at once; the
// refusals by the limiter are audited once, not 45 times.
func TestConcurrentBadPasswords(t *testing.T) {
	t.Parallel()
	h, rec := withRoot(t)
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			c := loginReq(h, fmt.Sprintf("user-%d", i%3), "wrong password!!", "192.0.2.1:1", "application/json").Code
			mu.Lock()
			codes[c]++
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Equal(t, map[int]int{http.StatusForbidden: 5, http.StatusTooManyRequests: 45}, codes)
	compares, peak := h.PasswordHashStats()
	require.Equal(t, int64(5), compares)
	require.LessOrEqual(t, peak, int64(abuse.HashSlots()))
	limited := 0
	for _, e := range rec.events {
		if e.Err != nil && strings.Contains(e.Err.Error(), "too many failed logins") {
			limited++
		}
	}
	require.Equal(t, 1, limited, "throttled logins are aggregated per source")
	require.Equal(t, http.StatusOK, loginReq(h, "root", "correct horse battery", "192.0.2.2:1", "application/json").Code, "another source is not affected")
}

// TestLoginSourceGrouping: IPv6 clients share one budget per /64; X-Forwarded-For counts only
// from a trusted proxy.
func TestLoginSourceGrouping(t *testing.T) {
	t.Parallel()
	trusted, err := abuse.ParseTrustedProxies([]string{"10.0.0.0/8"})
	require.NoError(t, err)
	h, _ := withRoot(t, func(c *sso.Config) { c.Sources = abuse.NewSources(trusted) })
	bad := func(user, remote string, headers ...string) int {
		return loginReq(h, user, "wrong password!!", remote, "application/json", headers...).Code
	}
	// Five failures spread over one /64 (distinct users, so only the address key counts).
	for i := range 5 {
		require.Equal(t, http.StatusForbidden, bad(fmt.Sprintf("v6-%d", i), fmt.Sprintf("[2001:db8:7:7::%x]:1", i+1)))
	}
	require.Equal(t, http.StatusTooManyRequests, bad("v6-x", "[2001:db8:7:7:ffff::1]:1"))
	require.Equal(t, http.StatusForbidden, bad("v6-y", "[2001:db8:7:8::1]:1"), "the next /64 has its own budget")

	// An untrusted peer cannot buy budgets with X-Forwarded-For.
	for i := range 5 {
		require.Equal(t, http.StatusForbidden, bad(fmt.Sprintf("u-%d", i), "203.0.113.5:1", "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i)))
	}
	require.Equal(t, http.StatusTooManyRequests, bad("u-x", "203.0.113.5:1", "X-Forwarded-For", "198.51.100.99"))

	// Behind a trusted proxy, clients are told apart.
	for i := range 5 {
		require.Equal(t, http.StatusForbidden, bad(fmt.Sprintf("p-%d", i), "10.0.0.1:1", "X-Forwarded-For", "1.1.1.1, 198.51.100.7"))
	}
	require.Equal(t, http.StatusTooManyRequests, bad("p-x", "10.0.0.2:1", "X-Forwarded-For", "198.51.100.7"))
	require.Equal(t, http.StatusForbidden, bad("p-y", "10.0.0.1:1", "X-Forwarded-For", "198.51.100.8"))
}

// TestACSFailuresAggregated: failed ACS posts from one source write one audit event per
// minute, then one with the count of the others.
func TestACSFailuresAggregated(t *testing.T) {
	t.Parallel()
	var clock *clockwork.FakeClock
	h, _, _, rec := newHandler(t, func(c *sso.Config) { clock = c.Clock.(*clockwork.FakeClock) })
	post := func(remote string) int {
		req := httptest.NewRequest(http.MethodPost, "/v1/webapi/saml/acs/nope", strings.NewReader(url.Values{"SAMLResponse": {"x"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for range 20 {
		require.Equal(t, http.StatusNotFound, post("198.51.100.1:1"))
	}
	require.Len(t, rec.events, 1)
	require.Equal(t, saml.EventLogin, rec.events[0].Type)
	require.Equal(t, "198.51.100.1", rec.events[0].Fields["remote_addr"])
	require.Equal(t, http.StatusNotFound, post("198.51.100.2:1"))
	require.Len(t, rec.events, 2, "each source has its own first event")

	clock.Advance(time.Minute)
	require.Equal(t, http.StatusNotFound, post("198.51.100.1:1"))
	require.Len(t, rec.events, 4)
	require.Equal(t, "19", rec.events[2].Fields["count"], "the aggregate counts the 19 not recorded: %+v", rec.events[2])
	require.Equal(t, "198.51.100.1", rec.events[2].Fields["source"])
	require.Equal(t, "198.51.100.1", rec.events[3].Fields["remote_addr"])
}

// TestSSOStartLimitedPerSource: every SP-initiated login stores a request item, so a source
// may start ssoBurst of them, then gets 429; another source is not affected.
func TestSSOStartLimitedPerSource(t *testing.T) {
	t.Parallel()
	h, _, _ := samlFixture(t, false)
	start := func(remote string) int {
		req := httptest.NewRequest(http.MethodGet, "/v1/webapi/saml/sso?connector_id=okta", nil)
		req.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for range 30 {
		require.Equal(t, http.StatusFound, start("198.51.100.1:1"))
	}
	require.Equal(t, http.StatusTooManyRequests, start("198.51.100.1:2"))
	require.Equal(t, http.StatusTooManyRequests, start("[::ffff:198.51.100.1]:2"))
	require.Equal(t, http.StatusFound, start("198.51.100.2:1"))
}

// TestACSFailuresLimitedPerSource: a source may post acsBurst failed SAML responses, then gets
// 429 before its posts are parsed; another source is not affected.
func TestACSFailuresLimitedPerSource(t *testing.T) {
	t.Parallel()
	h, _, _, _ := newHandler(t)
	post := func(remote string) int {
		req := httptest.NewRequest(http.MethodPost, "/v1/webapi/saml/acs/okta", strings.NewReader(url.Values{"SAMLResponse": {"junk"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for range 20 {
		require.Equal(t, http.StatusNotFound, post("[2001:db8:9:9::1]:1"))
	}
	require.Equal(t, http.StatusTooManyRequests, post("[2001:db8:9:9::2]:1"), "same /64")
	require.Equal(t, http.StatusNotFound, post("198.51.100.9:1"))
}
