package process

import (
	"net"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/lib/abuse"
)

// Bounds on the connections each listener holds open at once. A listener
// accepts a connection before anyone is authenticated and holds its file
// descriptor until the handshake times out, so without them a few sources
// opening idle connections take every descriptor of the process, and then
// not even the SCIM request that deprovisions someone can be accepted
// (docs/security.md). Per source: far more than Okta, a browser or an
// office behind one address opens; in all: a fraction of the process's
// descriptors (below), capped where idle connections would cost more
// memory than they are worth.
const (
	webConnsPerSource  = 256
	sshConnsPerSource  = 256
	authConnsPerSource = 128
	maxWebConns        = 8192
	maxSSHConns        = 2048
	maxAuthConns       = 2048
	// The diagnostics listener serves Prometheus and an operator: a few
	// connections. It is bounded too, because an operator may bind it
	// beyond loopback, and its descriptors are the process's.
	diagConnsPerSource = 16
	maxDiagConns       = 64
	// reservePerSource: a source holding fewer connections may use the
	// reserve (an eighth of a listener's total).
	reservePerSource = 4
)

// connBudget is how many connections each listener may hold, from the
// process's descriptor limit: a quarter for the web listener, an eighth each
// for SSH and auth, and the other half for everything else (SSH sessions'
// terminals and commands, the backend, outgoing connections). Zero nofile
// (unknown) gives the caps.
func connBudget(nofile uint64) (web, ssh, auth int) {
	part := func(div uint64, ceiling int) int {
		if nofile == 0 || nofile/div >= uint64(ceiling) {
			return ceiling
		}
		return max(1, int(nofile/div))
	}
	return part(4, maxWebConns), part(8, maxSSHConns), part(8, maxAuthConns)
}

// limitListeners puts the web, SSH and auth listeners under their bounds.
// Trusted proxies carry many clients on one address: they are bound only by
// the total.
func (p *Process) limitListeners() {
	p.connsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gatehouse", Name: "connections_refused_total",
		Help: "Connections closed as soon as accepted, by listener and the bound they hit (source or total).",
	}, []string{"listener", "bound"})
	p.cfg.Registry.MustRegister(p.connsRefused)
	web, ssh, auth := connBudget(openFileLimit())
	p.webLn = p.limitListener(p.webLn, webConnsPerSource, web, p.set.WebTrustedProxies, "web")
	p.sshLn = p.limitListener(p.sshLn, sshConnsPerSource, ssh, nil, "ssh")
	p.authLn = p.limitListener(p.authLn, authConnsPerSource, auth, nil, "auth")
}

// limitListener puts ln under its bounds (ConnLimits).
func (p *Process) limitListener(ln net.Listener, perSource, total int, exempt []netip.Prefix, name string) net.Listener {
	refused := p.connsRefused.MustCurryWith(prometheus.Labels{"listener": name})
	return abuse.LimitListener(ln, abuse.ConnLimits{
		PerSource: perSource,
		Total:     total,
		// An eighth of each listener is kept for sources holding at most
		// a few connections, so that sources filling the listener up to
		// their share still leave Okta room.
		Reserve:          total / 8,
		ReservePerSource: reservePerSource,
		Exempt:           exempt,
		OnRefuse:         func(bound string) { refused.WithLabelValues(bound).Inc() },
		Clock:            p.cfg.Clock,
		Logger:           p.cfg.Logger.With("component", "connlimit", "listener_name", name),
	})
}
