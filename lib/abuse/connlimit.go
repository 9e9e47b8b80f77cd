package abuse

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// ConnLimits bounds the connections a listener holds open at once. Every
// listener of the server accepts connections before anyone is
// authenticated, and each one holds a file descriptor until its handshake
// times out (10 s on the web listener, 30 s on SSH); without a bound, a
// few sources opening idle connections take every descriptor of the
// process, and then no listener can accept the request that deprovisions
// someone.
type ConnLimits struct {
	// PerSource is the most connections open at once from one source
	// (AddrKey: an IPv4 address, an IPv6 /64); zero means no such bound.
	PerSource int
	// Total is the most connections open at once on the listener; zero
	// means no such bound.
	Total int
	// Reserve is how many of Total are kept for sources holding fewer
	// than ReservePerSource connections: a few sources that fill the
	// listener up to their PerSource share still leave room for a source
	// that holds one or two (Okta with the request that deprovisions
	// someone). Zero keeps none.
	Reserve          int
	ReservePerSource int
	// Exempt are peers counted only against Total: trusted reverse
	// proxies, which carry every client behind them on their own address.
	Exempt []netip.Prefix
	// OnRefuse, if set, is called for every refused connection with the
	// bound it hit ("total" or "source"): a metric.
	OnRefuse func(bound string)
	// Logger receives one warning per refusing source and minute.
	Logger *slog.Logger
	// Clock drives that aggregation; nil means the real clock.
	Clock clockwork.Clock
}

// refusalLogWindow is how often a source's refused connections are logged.
const refusalLogWindow = time.Minute

// LimitListener returns ln with lim enforced: a connection over either
// bound is closed as soon as it is accepted (before a TLS or SSH handshake
// costs anything) and Accept goes on to the next one.
func LimitListener(ln net.Listener, lim ConnLimits) *LimitedListener {
	if lim.Logger == nil {
		lim.Logger = slog.Default()
	}
	if lim.Clock == nil {
		lim.Clock = clockwork.NewRealClock()
	}
	return &LimitedListener{
		Listener: ln,
		lim:      lim,
		open:     map[string]int{},
		refusals: NewAggregator(lim.Clock, refusalLogWindow, 1024),
	}
}

// LimitedListener is a listener under ConnLimits.
type LimitedListener struct {
	net.Listener
	lim      ConnLimits
	refusals *Aggregator

	mu    sync.Mutex
	open  map[string]int
	total int
}

// Accept returns the next connection within the limits.
func (l *LimitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, perSource := l.source(c.RemoteAddr())
		if bound, why := l.admit(key, perSource); why != "" {
			// Counted before the close, so that whoever sees the close sees the count.
			if l.lim.OnRefuse != nil {
				l.lim.OnRefuse(bound)
			}
			c.Close()
			record, flush := l.refusals.Note(key)
			if record {
				l.lim.Logger.Warn("Refusing connections.", "reason", why, "source", key, "listener", l.Addr().String())
			}
			for _, f := range flush {
				l.lim.Logger.Warn("Refused more connections.", "source", f.Key, "count", f.Count, "since", f.Start, "listener", l.Addr().String())
			}
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.release(key, perSource) }}, nil
	}
}

// source returns the key a connection is counted under and whether it
// counts against PerSource.
func (l *LimitedListener) source(a net.Addr) (string, bool) {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		parsed, err := netip.ParseAddrPort(a.String())
		if err != nil {
			// Not an IP peer (a Unix socket): nothing to group by.
			return a.String(), false
		}
		ap = parsed
	}
	addr := ap.Addr().Unmap()
	for _, p := range l.lim.Exempt {
		if p.Contains(addr) {
			return AddrKey(addr), false
		}
	}
	return AddrKey(addr), true
}

// Bounds a refused connection hit (ConnLimits.OnRefuse).
const (
	BoundTotal  = "total"
	BoundSource = "source"
)

// admit counts one connection from key, or says which bound it hit and why.
func (l *LimitedListener) admit(key string, perSource bool) (bound, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lim.Total > 0 && l.total >= l.lim.Total {
		return BoundTotal, "too many connections open"
	}
	if perSource && l.lim.PerSource > 0 && l.open[key] >= l.lim.PerSource {
		return BoundSource, "too many connections open from this source"
	}
	if perSource && l.lim.Total > 0 && l.total >= l.lim.Total-l.lim.Reserve && l.open[key] >= l.lim.ReservePerSource {
		return BoundTotal, "too many connections open (the rest is kept for sources holding few)"
	}
	l.total++
	if perSource {
		l.open[key]++
	}
	return "", ""
}

func (l *LimitedListener) release(key string, perSource bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if perSource {
		if l.open[key]--; l.open[key] <= 0 {
			delete(l.open, key)
		}
	}
}

// limitedConn gives its slot back once, on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
