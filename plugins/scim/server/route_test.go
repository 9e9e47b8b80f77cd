package server

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
)

// TestRouteSplit holds route's path parsing to the split it replaced: the same plugin, id,
// operation and refusal for paths of every length and shape.
func TestRouteSplit(t *testing.T) {
	t.Parallel()
	srv := newLookupServer(t)
	// splitRoute is how route read plugin/resource[/id] before.
	splitRoute := func(path string) (plugin, resource, id string, found bool) {
		rest, ok := strings.CutPrefix(path, MountPrefix)
		if !ok {
			return "", "", "", false
		}
		parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
		plugin = parts[0]
		if len(parts) < 2 || len(parts) > 3 {
			return plugin, "", "", false
		}
		if len(parts) == 3 {
			if parts[2] == "" {
				return plugin, "", "", false
			}
			id = parts[2]
		}
		return plugin, canonicalEndpoint(parts[1]), id, true
	}
	for _, rest := range []string{
		"", "/", "okta", "okta/", "okta/Users", "okta/Users/", "okta/Users/abc", "okta/Users/abc/",
		"okta/Users/abc/def", "okta/Users//", "okta//", "okta//abc", "/Users", "//", "///", "okta/users/x",
		"okta/Groups/g1", "okta/.search", "okta/.search/x", "okta/Users/.search", "okta/Schemas/urn:x",
		"okta/ResourceTypes", "okta/ServiceProviderConfig", "okta/ServiceProviderConfig/x", "okta/Nope",
		"okta/Users/a/b/c", "okta/Users/abc//",
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			path := MountPrefix + rest
			r := httptest.NewRequest(method, "/", nil)
			r.URL.Path = path
			req, err := srv.route(r)
			plugin, resource, id, found := splitRoute(path)
			require.Equal(t, plugin, req.plugin, "%s %s", method, path)
			if !found {
				require.Error(t, err, "%s %s", method, path)
				require.Equal(t, opUnknown, req.op)
				continue
			}
			if err == nil {
				require.Equal(t, id, req.id, "%s %s", method, path)
			}
			switch resource {
			case "Users", "Groups", searchPath, "ServiceProviderConfig", "ResourceTypes", "Schemas":
			default:
				require.Error(t, err, "%s %s", method, path)
			}
		}
	}
}

// TestBaseURLCached holds the cached base URLs to what they are built from: the PublicURL, or
// the request's Host without one, and the plugin; past the cache's bound, answers are still
// right.
func TestBaseURLCached(t *testing.T) {
	t.Parallel()
	for _, public := range []string{"", "https://gatehouse.example.com"} {
		srv, err := New(Config{Users: newFake(), Groups: newFake(), Tokens: newFake(), Status: newFake(), PublicURL: public})
		require.NoError(t, err)
		for round := range 2 {
			for i := range 2 * maxCachedBases {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				r.Host = fmt.Sprintf("host-%d.example.com", i%(maxCachedBases+10))
				plugin := fmt.Sprintf("plugin-%d", i%3)
				origin := public
				if origin == "" {
					origin = "https://" + r.Host
				}
				require.Equal(t, origin+MountPrefix+plugin, srv.baseURL(r, plugin), "round %d, %d", round, i)
			}
		}
		require.LessOrEqual(t, srv.basesCount.Load(), int32(maxCachedBases))
	}
}

// TestAllowMatchesLimiterReadBack runs allow, which compares a plugin's settings with what it
// last set on the bucket, beside the code it replaces, which read the limit and burst back from
// the bucket, over random settings changes and times: the same answers throughout.
func TestAllowMatchesLimiterReadBack(t *testing.T) {
	t.Parallel()
	srv, err := New(Config{Users: newFake(), Groups: newFake(), Tokens: newFake(), Status: newFake(), DefaultRateLimit: 5, DefaultRateBurst: 3})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	var ref *rate.Limiter
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5000 {
		settings := &scimrecord.SCIMSettings{RateLimit: rng.IntN(4), RateBurst: rng.IntN(4)}
		now = now.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
		limit, burst := 5, 3
		if settings.RateLimit > 0 {
			limit = settings.RateLimit
		}
		if settings.RateBurst > 0 {
			burst = settings.RateBurst
		}
		if ref == nil {
			ref = rate.NewLimiter(rate.Limit(limit), burst)
			ref.AllowN(now, 0)
		} else {
			if ref.Limit() != rate.Limit(limit) {
				ref.SetLimitAt(now, rate.Limit(limit))
			}
			if ref.Burst() != burst {
				ref.SetBurstAt(now, burst)
			}
		}
		want := ref.AllowN(now, 1)
		got := srv.allow("okta", settings, now)
		require.Equal(t, want, got == nil, "step %d", i)
	}
}
