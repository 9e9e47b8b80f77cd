package web

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStreamLimit: a source's HTTP/2 requests beyond the bound get 429
// before the handler runs, while other sources, HTTP/1.1 requests and
// trusted proxies are served; a finished request gives its place back.
func TestStreamLimit(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var entered sync.WaitGroup
	h := newStreamLimit(2, []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}).wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered.Done()
			<-release
		}
		w.WriteHeader(http.StatusOK)
	}))
	serve := func(path, remote string, major int) int {
		r := httptest.NewRequest(http.MethodPost, path, nil)
		r.RemoteAddr = remote
		r.ProtoMajor = major
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	var done sync.WaitGroup
	block := func(remote string) {
		entered.Add(1)
		done.Go(func() { require.Equal(t, http.StatusOK, serve("/block", remote, 2)) })
	}
	// Two in flight from 203.0.113.9, and two from one IPv6 /64.
	block("203.0.113.9:1000")
	block("[::ffff:203.0.113.9]:1001")
	block("[2001:db8:1:2::1]:1")
	block("[2001:db8:1:2::ffff]:2")
	entered.Wait()

	for _, tc := range []struct {
		name   string
		remote string
		major  int
		want   int
	}{
		{name: "third from the source", remote: "203.0.113.9:1002", major: 2, want: http.StatusTooManyRequests},
		{name: "third from the /64", remote: "[2001:db8:1:2::5]:3", major: 2, want: http.StatusTooManyRequests},
		{name: "another /64", remote: "[2001:db8:1:3::5]:3", major: 2, want: http.StatusOK},
		{name: "another source", remote: "203.0.113.10:1", major: 2, want: http.StatusOK},
		{name: "HTTP/1.1 is bounded by connections", remote: "203.0.113.9:1003", major: 1, want: http.StatusOK},
		{name: "trusted proxy", remote: "10.0.0.1:1", major: 2, want: http.StatusOK},
		{name: "not an IP peer", remote: "@", major: 2, want: http.StatusOK},
	} {
		require.Equal(t, tc.want, serve("/", tc.remote, tc.major), tc.name)
	}
	close(release)
	done.Wait()
	require.Equal(t, http.StatusOK, serve("/", "203.0.113.9:1004", 2), "finished requests give their places back")
}
