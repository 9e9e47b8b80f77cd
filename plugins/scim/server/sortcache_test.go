package server

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSortSnapshots: the next pages of a sorted list come from its snapshot, without reading
// the records again; a write through the endpoint, another query, the TTL, or snapshots turned
// off each make the next page scan.
func TestSortSnapshots(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{{"snapshots", 0}, {"no snapshots", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(c *Config) { c.SortSnapshotTTL = tc.ttl })
			for i := range 7 {
				w := h.req(http.MethodPost, base+"/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"u%d@example.com"}`, 6-i))
				require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
			}
			scans := func() int { return h.fake.calls["ListUsers"] }
			page := func(query string) []any {
				w := h.req(http.MethodGet, base+"/Users?"+query, "")
				require.Equal(t, http.StatusOK, w.Code, w.Body.String())
				return decode(t, w)["Resources"].([]any)
			}
			userName := func(r []any, i int) string { return r[i].(map[string]any)["userName"].(string) }
			scanned := func(want bool, query string) []any {
				t.Helper()
				before := scans()
				r := page(query)
				require.Equal(t, want, scans() > before, "%s scanned", query)
				return r
			}
			cached := tc.ttl >= 0
			scanned(true, "sortBy=userName&count=3")
			require.Equal(t, "u3@example.com", userName(scanned(!cached, "sortBy=userName&startIndex=4&count=3"), 0))
			require.Equal(t, "u6@example.com", userName(scanned(!cached, "sortBy=USERNAME&startIndex=7&count=3"), 0))
			scanned(true, "sortBy=userName&sortOrder=descending&count=3")
			scanned(true, "sortBy=userName&count=3&filter=userName+pr")

			// A write through the endpoint drops the plugin's snapshots.
			w := h.req(http.MethodPost, base+"/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@example.com"}`)
			require.Equal(t, http.StatusCreated, w.Code)
			require.Equal(t, "a@example.com", userName(scanned(true, "sortBy=userName&count=3"), 0))
			scanned(!cached, "sortBy=userName&startIndex=4&count=3")

			// So does time.
			h.clock.Advance(DefaultSortSnapshotTTL)
			scanned(true, "sortBy=userName&startIndex=4&count=3")
		})
	}
}

// TestSnapshotsBounded: the snapshots never hold more entries than the limit together; the
// oldest go first.
func TestSnapshotsBounded(t *testing.T) {
	t.Parallel()
	c := newSnapshots()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	k := func(attr string) snapshotKey { return snapshotKey{plugin: "okta", scope: "User", attr: attr} }
	c.put(k("a"), 0, now, make([]sortEntry, 4), 10)
	c.put(k("b"), 0, now.Add(time.Second), make([]sortEntry, 4), 10)
	c.put(k("c"), 0, now.Add(2*time.Second), make([]sortEntry, 4), 10)
	_, ok := c.get(k("a"), now, time.Minute)
	require.False(t, ok, "the oldest is dropped")
	for _, attr := range []string{"b", "c"} {
		_, ok := c.get(k(attr), now, time.Minute)
		require.True(t, ok)
	}
	require.Equal(t, 8, c.size)
	c.put(k("big"), 0, now, make([]sortEntry, 11), 10)
	_, ok = c.get(k("big"), now, time.Minute)
	require.False(t, ok, "a list over the limit is not kept")
	// A snapshot built across a write is not kept.
	gen := c.generation("okta")
	c.wrote("okta")
	require.Zero(t, c.size)
	c.put(k("d"), gen, now, make([]sortEntry, 1), 10)
	_, ok = c.get(k("d"), now, time.Minute)
	require.False(t, ok)
}
