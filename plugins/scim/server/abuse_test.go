package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/lib/abuse"
	"github.com/gatehouse/gatehouse/lib/auth/pluginv1"
	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/plugins/scim/server"
)

// realEnv is the SCIM handler over the real provisioner (memory backend), with plugin "okta"
// (SCIM on) and plugin "off" (SCIM off), each with a token.
type realEnv struct {
	t     *testing.T
	bk    backend.Backend
	svc   *services.Services
	prov  *scimprov.Provisioner
	h     *server.Server
	token string
}

// newRealEnv writes the tokens as pluginv1 does (hash and fingerprint), or, with legacy, as
// credentials written before fingerprints existed (hash only).
func newRealEnv(t *testing.T, legacy bool) *realEnv {
	t.Helper()
	return newRealEnvAt(t, legacy, nil)
}

// newRealEnvAt is newRealEnv with the backend's (and so the provisioner's) clock; nil is the
// real clock.
func newRealEnvAt(t *testing.T, legacy bool, clock clockwork.Clock) *realEnv {
	t.Helper()
	ctx := context.Background()
	bk, err := memory.New(ctx, memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	svc, err := services.New(services.Config{Backend: bk})
	require.NoError(t, err)
	e := &realEnv{t: t, bk: bk, svc: svc}
	for _, name := range []string{"okta", "off"} {
		token := installPlugin(t, svc, name, name == "okta", legacy)
		if name == "okta" {
			e.token = token
		}
	}
	e.prov = newRealProvisioner(t, bk, svc, nil)
	e.h, err = server.New(server.Config{Users: e.prov, Groups: e.prov, Tokens: e.prov, Status: e.prov, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	return e
}

// get sends GET /Users to plugin with token from remote and returns the answer.
func (e *realEnv) get(plugin, token, remote string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, server.MountPrefix+plugin+"/Users", nil)
	r.RemoteAddr = remote
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

const attacker = "198.51.100.66:4444"

// TestBadTokenBurstThenValidToken: 30 bad tokens from Okta's address, then Okta's valid
// token from the same address: accepted, whether it was verified before the burst or not (a
// restart or a rotation leaves it unverified), and whether its credential has a fingerprint
// or predates them.
func TestBadTokenBurstThenValidToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		legacy, verified bool
	}{
		{name: "unverified"},
		{name: "verified", verified: true},
		{name: "unverified legacy credential", legacy: true},
		{name: "verified legacy credential", legacy: true, verified: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newRealEnv(t, tc.legacy)
			if tc.verified {
				require.Equal(t, http.StatusOK, e.get("okta", e.token, attacker).Code)
			}
			before := e.prov.TokenCheckStats().Compares
			codes := map[int]int{}
			for i := range 30 {
				codes[e.get("okta", "bad-"+strconv.Itoa(i), attacker).Code]++
			}
			if tc.legacy && !tc.verified {
				// Only bcrypt can tell a token for a credential without a fingerprint: a
				// throttled source still gets one comparison at a time through the legacy
				// slot, so one after the other, all are refused by bcrypt.
				require.Equal(t, map[int]int{http.StatusUnauthorized: 30}, codes)
			} else {
				require.Equal(t, map[int]int{http.StatusUnauthorized: server.DefaultAuthFailureLimit, http.StatusTooManyRequests: 30 - server.DefaultAuthFailureLimit}, codes)
			}
			if !tc.legacy || tc.verified {
				require.Equal(t, before, e.prov.TokenCheckStats().Compares, "bad tokens never reach bcrypt")
			}
			w := e.get("okta", e.token, attacker)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			require.Equal(t, http.StatusTooManyRequests, e.get("okta", "bad-again", attacker).Code, "the source stays throttled for bad tokens")
			if tc.legacy {
				// The first success added the fingerprint.
				c, err := e.svc.ListPluginStaticCredentialsByLabels(context.Background(), pluginv1.CredentialsLabels("okta"), true)
				require.NoError(t, err)
				require.Len(t, c, 1)
				require.Equal(t, services.SCIMTokenFingerprint(e.token), c[0].GetSpec().GetScimTokenFingerprint())
				require.NoError(t, bcrypt.CompareHashAndPassword(c[0].GetSpec().GetScimTokenHash(), []byte(e.token)))
				require.Equal(t, http.StatusOK, e.get("okta", e.token, attacker).Code)
			}
		})
	}
}

// TestConcurrentBadTokenFlood: 200 concurrent bad tokens from one address. With fingerprinted
// credentials none reaches bcrypt; with a legacy credential (only bcrypt can tell) no more than
// abuse.HashSlots comparisons run at once. Exactly DefaultAuthFailureLimit are answered 401
// (the count is reserved before verification), and the valid token is accepted right after.
func TestConcurrentBadTokenFlood(t *testing.T) {
	t.Parallel()
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "fingerprint", true: "legacy"}[legacy], func(t *testing.T) {
			t.Parallel()
			e := newRealEnv(t, legacy)
			var mu sync.Mutex
			codes := map[int]int{}
			var wg sync.WaitGroup
			for i := range 200 {
				wg.Go(func() {
					c := e.get("okta", "flood-"+strconv.Itoa(i), attacker).Code
					mu.Lock()
					codes[c]++
					mu.Unlock()
				})
			}
			wg.Wait()
			st := e.prov.TokenCheckStats()
			require.Equal(t, 200, codes[http.StatusUnauthorized]+codes[http.StatusTooManyRequests], "%v", codes)
			require.LessOrEqual(t, st.PeakConcurrent, int64(abuse.HashSlots()))
			if legacy {
				// Reserved failures, plus the few a throttled source got through the
				// single legacy slot: every one of them a bcrypt.
				require.GreaterOrEqual(t, codes[http.StatusUnauthorized], server.DefaultAuthFailureLimit)
				require.Equal(t, int64(codes[http.StatusUnauthorized]), st.Compares)
			} else {
				require.Equal(t, server.DefaultAuthFailureLimit, codes[http.StatusUnauthorized])
				require.Zero(t, st.Compares, "no bad token reaches bcrypt")
			}
			w := e.get("okta", e.token, attacker)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		})
	}
}

// TestUnknownPluginLooksLikeWrongToken: an unknown plugin, a plugin with SCIM off and a wrong
// token get the same status, headers and body, after the same prefilter work (the decoy is
// compared when there is no credential).
func TestUnknownPluginLooksLikeWrongToken(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t, false)
	wrong := e.get("okta", "wrong-token", "192.0.2.10:1")
	require.Equal(t, http.StatusUnauthorized, wrong.Code)
	require.Zero(t, e.prov.TokenCheckStats().Decoys, "a real plugin's check compares real fingerprints")
	for i, plugin := range []string{"nosuch", "off"} {
		w := e.get(plugin, "wrong-token", "192.0.2."+strconv.Itoa(20+i)+":1")
		require.Equal(t, wrong.Code, w.Code, plugin)
		require.Equal(t, wrong.Body.String(), w.Body.String(), plugin)
		require.Equal(t, wrong.Header(), w.Header(), plugin)
		require.Equal(t, int64(i+1), e.prov.TokenCheckStats().Decoys, "%s: the decoy check ran", plugin)
	}
	require.Zero(t, e.prov.TokenCheckStats().Compares)
}
