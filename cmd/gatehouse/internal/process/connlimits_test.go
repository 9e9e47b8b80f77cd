package process

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/abuse"
)

// TestConnBudget: the listeners together hold at most half the process's
// descriptors, and never more than their caps.
func TestConnBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		nofile         uint64
		web, ssh, auth int
	}{
		{nofile: 0, web: maxWebConns, ssh: maxSSHConns, auth: maxAuthConns},
		{nofile: 1024, web: 256, ssh: 128, auth: 128},
		{nofile: 20000, web: 5000, ssh: 2048, auth: 2048},
		{nofile: 1 << 20, web: maxWebConns, ssh: maxSSHConns, auth: maxAuthConns},
		{nofile: 4, web: 1, ssh: 1, auth: 1},
	} {
		web, ssh, auth := connBudget(tc.nofile)
		require.Equal(t, []int{tc.web, tc.ssh, tc.auth}, []int{web, ssh, auth}, "nofile %d", tc.nofile)
		if tc.nofile >= 16 {
			require.LessOrEqual(t, uint64(web+ssh+auth), tc.nofile/2)
		}
	}
}

// TestListenersBounded: every listener of a started process, the
// diagnostics one included, is under its bounds: the connection past a
// source's share is closed before any handshake, and the source's own
// connections are still served.
func TestListenersBounded(t *testing.T) {
	t.Parallel()
	p := start(t, settings(t, t.TempDir()), clockwork.NewFakeClockAt(time.Now()), io.Discard)
	t.Cleanup(func() { stop(t, p) })
	for _, tc := range []struct {
		name      string
		addr      net.Addr
		perSource int
	}{
		{name: "diag", addr: p.diagLn.Addr(), perSource: diagConnsPerSource},
		{name: "ssh", addr: p.sshLn.Addr(), perSource: sshConnsPerSource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var held []net.Conn
			t.Cleanup(func() {
				for _, c := range held {
					c.Close()
				}
			})
			open := func() net.Conn {
				c, err := net.DialTimeout("tcp", tc.addr.String(), 5*time.Second)
				require.NoError(t, err)
				held = append(held, c)
				return c
			}
			for range tc.perSource {
				open()
			}
			// The listener admits in order: once the extra connection is refused,
			// all before it were counted.
			over := open()
			require.NoError(t, over.SetReadDeadline(time.Now().Add(5*time.Second)))
			_, err := over.Read(make([]byte, 1))
			require.ErrorIs(t, err, io.EOF, "connection %d from one source must be closed", tc.perSource+1)
			require.Equal(t, 1.0, refusedMetric(t, p, tc.name, abuse.BoundSource), "counted")
		})
	}
}

// refusedMetric reads gatehouse_connections_refused_total{listener, bound}
// from the process's registry, as /metrics shows it.
func refusedMetric(t *testing.T, p *Process, listener, bound string) float64 {
	t.Helper()
	families, err := p.cfg.Registry.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "gatehouse_connections_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["listener"] == listener && labels["bound"] == bound {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
