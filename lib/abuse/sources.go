// Package abuse holds what the unauthenticated endpoints (SCIM bearer
// authentication, password login, SAML) share to resist floods: the
// client source of a request (trusted proxies, IPv6 grouping), a failure
// limiter that counts before it verifies, a bound on concurrent password
// hashing, an aggregator that turns a burst of refusals into one audit
// event per source and window, and a listener that bounds the connections
// it holds open per source and in all (LimitListener).
//
// It imports nothing of Gatehouse, so every layer may use it.
package abuse

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/gravitational/trace"
)

// Sources resolves the client of a request. The direct TCP peer is the
// client unless it is one of the trusted proxies: then X-Forwarded-For is
// read from the right, skipping trusted proxies, and the first untrusted
// address is the client (the leftmost entries are written by the client
// itself and prove nothing). The zero value and nil trust no proxy.
type Sources struct {
	trusted []netip.Prefix
}

// ParseTrustedProxies parses CIDRs ("10.0.0.0/8", "2001:db8::/32") or
// single addresses ("192.0.2.10", taken as /32 or /128). An empty list
// trusts no proxy.
func ParseTrustedProxies(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			return nil, trace.BadParameter("trusted proxy: empty value")
		}
		if strings.Contains(v, "/") {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return nil, trace.BadParameter("trusted proxy %q is not a CIDR such as 10.0.0.0/8", v)
			}
			if p.Masked() != p {
				return nil, trace.BadParameter("trusted proxy %q has host bits set; did you mean %s?", v, p.Masked())
			}
			out = append(out, p)
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return nil, trace.BadParameter("trusted proxy %q is not an IP address or CIDR", v)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// NewSources returns the resolver for trusted proxy prefixes (from
// ParseTrustedProxies).
func NewSources(trusted []netip.Prefix) *Sources {
	return &Sources{trusted: append([]netip.Prefix(nil), trusted...)}
}

func (s *Sources) isTrusted(a netip.Addr) bool {
	if s == nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Client returns the client address of r: the TCP peer, or, when the
// peer is a trusted proxy, the rightmost X-Forwarded-For entry that is not
// a trusted proxy. A malformed entry stops the walk at the last address
// known good (a trusted proxy would not write junk, so junk comes from
// further left, from the client). ok is false when RemoteAddr is not an
// IP (a test or a Unix socket).
func (s *Sources) Client(r *http.Request) (addr netip.Addr, ok bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	client := peer.Unmap().WithZone("")
	if !s.isTrusted(client) {
		return client, true
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return client, true
			}
			client = a.Unmap().WithZone("")
			if !s.isTrusted(client) {
				return client, true
			}
		}
	}
	return client, true
}

// Key returns the limiter key of r's client: an IPv4 address, an IPv6
// /64 (one subscriber usually holds a whole /64, so per-address keys
// would hand an attacker 2^64 fresh budgets), or RemoteAddr as is when it
// is not an IP.
func (s *Sources) Key(r *http.Request) string {
	a, ok := s.Client(r)
	if !ok {
		return r.RemoteAddr
	}
	return AddrKey(a)
}

// AddrKey groups a: IPv4 (and IPv4-mapped IPv6) by address, IPv6 by /64.
func AddrKey(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
