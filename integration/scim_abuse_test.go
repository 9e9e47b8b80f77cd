package integration

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSCIMBadTokenFlood attacks the real server's SCIM endpoint the way issue 10 describes, from
// the address Okta uses (here 127.0.0.1, the only one): a burst of 30 bad tokens, then 200
// concurrent ones while Okta deactivates a user. Okta's token, never verified by this process
// before the burst, is accepted right after it; the deactivation is answered within the usual
// time during the flood; X-Forwarded-For from an untrusted peer buys no fresh budget.
func TestSCIMBadTokenFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	logs := &syncBuffer{}
	srv := startGatehouse(t, gatehouseBin, dataDir, logs, "--log-level", "info")
	admin, _ := gatectlOn(t, gatectlBin, dataDir)
	token := installOkta(t, admin, work)
	okta := newSCIMClient(t, srv, "okta", token, 8)
	attacker := newSCIMClient(t, srv, "okta", "", 64)
	bad := func(i int, headers ...string) scimResponse {
		r, err := attacker.try(http.MethodGet, "/Users", nil, append([]string{"Authorization", "Bearer bad-" + strconv.Itoa(i)}, headers...)...)
		require.NoError(t, err)
		return r
	}

	// 30 bad tokens, each with a made-up X-Forwarded-For (ignored: no proxy is trusted).
	codes := map[int]int{}
	for i := range 30 {
		codes[bad(i, "X-Forwarded-For", "198.51.100."+strconv.Itoa(i)).status]++
	}
	require.Equal(t, map[int]int{http.StatusUnauthorized: 10, http.StatusTooManyRequests: 20}, codes)
	// Okta's token, from the same address, right after the burst.
	okta.do(http.MethodGet, "/Users?startIndex=1&count=2", nil).expect(t, http.StatusOK)

	// A user to deactivate during the flood.
	id, _ := okta.do(http.MethodPost, "/Users", oktaUser("flood@example.com", "00uflood")).expect(t, http.StatusCreated).body["id"].(string)
	require.NotEmpty(t, id)
	quiet := time.Now()
	okta.do(http.MethodGet, "/Users/"+id, nil).expect(t, http.StatusOK)
	usual := time.Since(quiet)

	var wg sync.WaitGroup
	var mu sync.Mutex
	flood := map[int]int{}
	start := make(chan struct{})
	for i := range 200 {
		wg.Go(func() {
			<-start
			r := bad(1000 + i)
			mu.Lock()
			flood[r.status]++
			mu.Unlock()
		})
	}
	close(start)
	began := time.Now()
	deactivate := patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})
	r := okta.do(http.MethodPatch, "/Users/"+id, deactivate).expect(t, http.StatusOK)
	took := time.Since(began)
	t.Logf("deactivation during the flood: %v (a quiet GET: %v)", took, usual)
	require.Equal(t, false, r.body["active"])
	wg.Wait()
	require.Equal(t, map[int]int{http.StatusTooManyRequests: 200}, flood, "the throttled source's bad tokens are refused before any verification")
	// Without a bound, 200 bcrypt comparisons on two cores take seconds; with the prefilter none
	// runs, and the deactivation costs what it costs on a quiet server plus scheduling.
	require.Less(t, took, usual+2*time.Second, "deactivation during the flood took %v (quiet GET: %v)", took, usual)
	rr := admin("get", "user/flood@example.com")
	require.NotEqual(t, 0, rr.code, "the deactivated user is deleted: %s", rr.String())

	// And Okta's token still works from the flooding address.
	okta.do(http.MethodGet, "/Users?startIndex=1&count=2", nil).expect(t, http.StatusOK)
	require.NotContains(t, logs.String(), token, "the token is never logged")
}
