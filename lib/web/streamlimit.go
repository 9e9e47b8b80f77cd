package web

import (
	"net/http"
	"net/netip"
	"slices"
	"sync"
)

// streamLimit bounds the HTTP/2 requests each source has in flight (see
// Config.MaxHTTP2RequestsPerSource). Without it, one source with a few
// hundred connections of 250 streams each, every stream a request whose
// body never comes, held tens of thousands of handlers and close to a
// gigabyte of the server's memory until ReadTimeout.
type streamLimit struct {
	max     int
	exempt  []netip.Prefix
	mu      sync.Mutex
	flights map[netip.Addr]int
}

func newStreamLimit(max int, exempt []netip.Prefix) *streamLimit {
	return &streamLimit{max: max, exempt: slices.Clone(exempt), flights: map[netip.Addr]int{}}
}

func (l *streamLimit) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// HTTP/1.1 requests are bounded by the connections a source may hold.
		if r.ProtoMajor < 2 {
			next.ServeHTTP(w, r)
			return
		}
		key, ok := l.key(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if !l.acquire(key) {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusTooManyRequests, statusBody{Status: "error", Error: "too many requests in flight from this address"})
			return
		}
		defer l.release(key)
		next.ServeHTTP(w, r)
	})
}

// key is the source of r, grouped as abuse.AddrKey groups it (an IPv6 /64),
// without formatting it: this runs on every HTTP/2 request.
func (l *streamLimit) key(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	a := ap.Addr().Unmap().WithZone("")
	for _, p := range l.exempt {
		if p.Contains(a) {
			return netip.Addr{}, false
		}
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return a, true
}

func (l *streamLimit) acquire(key netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flights[key] >= l.max {
		return false
	}
	l.flights[key]++
	return true
}

func (l *streamLimit) release(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flights[key]--; l.flights[key] <= 0 {
		delete(l.flights, key)
	}
}
