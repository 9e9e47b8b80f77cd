package sshnode_test

import (
	"bufio"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/srv/sshnode"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// BenchmarkLockToDisconnect measures deprovision-to-disconnect latency: 100
// live SSH sessions of one user, one lock written to the backend (memory or
// SQLite), and the time from the write to each client seeing its session
// end ("p50-ms", "p99-ms"). The server side alone, from the write to the
// connection's channels being closed (its session terminated audit event,
// written right after), is reported as "server-p50-ms" and "server-p99-ms". The clients run
// in the same process, so they share its CPU.
//
//	go test -run '^$' -bench LockToDisconnect -benchtime 3x ./lib/srv/sshnode/
func BenchmarkLockToDisconnect(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchLockToDisconnect(b, nodeOpts{}) })
	b.Run("sqlite", func(b *testing.B) { benchLockToDisconnect(b, nodeOpts{lite: true}) })
}

func benchLockToDisconnect(b *testing.B, o nodeOpts) {
	const sessions = 100
	n := startNodeWith(b, o)
	key, cert := n.issue(b, certOpts{keyID: "alice"})
	var all, server []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		clients := make([]*ssh.Client, sessions)
		live := make([]*ssh.Session, sessions)
		var wg sync.WaitGroup
		errs := make(chan error, sessions)
		for j := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := n.dial(key, cert, n.login)
				if err != nil {
					errs <- err
					return
				}
				clients[j] = c
				s, err := c.NewSession()
				if err != nil {
					errs <- err
					return
				}
				out, err := s.StdoutPipe()
				if err != nil {
					errs <- err
					return
				}
				if err := s.Start("echo ready; exec sleep 60"); err != nil {
					errs <- err
					return
				}
				// The session is live once it has printed.
				line, err := bufio.NewReader(out).ReadString('\n')
				if err != nil || strings.TrimSpace(line) != "ready" {
					errs <- err
					return
				}
				live[j] = s
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(b, err)
		}

		lat := make([]time.Duration, sessions)
		var ended sync.WaitGroup
		ended.Add(sessions)
		b.StartTimer()
		start := time.Now()
		for j, s := range live {
			go func() {
				defer ended.Done()
				_ = s.Wait()
				lat[j] = time.Since(start)
			}()
		}
		n.putLock(b, "alice-okta", &typesv1.LockTarget{User: "alice"}, lockMsg)
		ended.Wait()
		b.StopTimer()
		all = append(all, lat...)
		require.Eventually(b, func() bool { return len(n.audit.since(sshnode.EventSessionTerminated, start)) == sessions }, 10*time.Second, time.Millisecond)
		server = append(server, n.audit.since(sshnode.EventSessionTerminated, start)...)

		for _, c := range clients {
			c.Close()
		}
		n.deleteLock(b, "alice-okta")
		require.Eventually(b, func() bool { return n.lw.CheckLockInForce(b.Context(), aliceSubject(n)) == nil }, 5*time.Second, time.Millisecond)
	}
	pct := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		idx := int(p*float64(len(d))+0.5) - 1
		idx = max(0, min(idx, len(d)-1))
		return float64(d[idx].Microseconds()) / 1000
	}
	b.ReportMetric(pct(all, 0.50), "p50-ms")
	b.ReportMetric(pct(all, 0.99), "p99-ms")
	b.ReportMetric(pct(all, 1.0), "max-ms")
	b.ReportMetric(pct(server, 0.50), "server-p50-ms")
	b.ReportMetric(pct(server, 0.99), "server-p99-ms")
	b.ReportMetric(0, "ns/op")
}
