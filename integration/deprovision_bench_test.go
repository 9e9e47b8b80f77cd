package integration

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/auth/saml/samltest"
)

// benchSessions is how many live SSH sessions one deactivation ends.
const benchSessions = 100

// BenchmarkDeprovisionToDisconnect measures deprovision-to-disconnect
// latency against a real gatehouse on SQLite: one SCIM-provisioned user
// with 100 live SSH sessions (Go SSH clients, each running a remote
// sleep), one SCIM PATCH active:false, and for every session the time from
// the SCIM response (and from the request) until the client sees the
// session end. Each iteration reactivates the user and reopens the
// sessions first (not timed).
//
//	go test -run '^$' -bench DeprovisionToDisconnect -benchtime 1x ./integration/
func BenchmarkDeprovisionToDisconnect(b *testing.B) {
	gatehouseBin, gatectlBin := buildBinaries(b)
	dataDir, work := b.TempDir(), b.TempDir()
	logs := &syncBuffer{}
	srv := startGatehouse(b, gatehouseBin, dataDir, logs, "--storage", "sqlite", "--log-level", "warn")
	_, admin := gatectlOn(b, gatectlBin, dataDir)
	idp := samltest.NewIdP(b, samltest.Options{})
	token := ssoSetup(b, srv, admin, idp, work)
	scim := newSCIMClient(b, srv, "okta", token, 4)
	const name = "load@example.com"
	r := scim.do(http.MethodPost, "/Users", oktaUser(name, "00uload")).expect(b, http.StatusCreated)
	id, _ := r.body["id"].(string)
	require.NotEmpty(b, id)

	// An admin-issued certificate (gatectl auth sign) for the user. A reactivation is a new
	// incarnation of the account, which voids every earlier certificate: each round gets its own.
	host, port := srv.sshAddr(b)
	key := filepath.Join(work, "load")
	clientConfig := func() *ssh.ClientConfig {
		admin("auth", "sign", "--user", name, "--ttl", "1h", "--out", key)
		keyPEM, err := os.ReadFile(key)
		require.NoError(b, err)
		signer, err := ssh.ParsePrivateKey(keyPEM)
		require.NoError(b, err)
		certText, err := os.ReadFile(key + "-cert.pub")
		require.NoError(b, err)
		parsed, _, _, _, err := ssh.ParseAuthorizedKey(certText)
		require.NoError(b, err)
		certSigner, err := ssh.NewCertSigner(parsed.(*ssh.Certificate), signer)
		require.NoError(b, err)
		return &ssh.ClientConfig{
			User:            sshLogin(b),
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(certSigner)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(),
			Timeout:         30 * time.Second,
		}
	}
	deactivate := patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})
	reactivate := patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": true}})

	var fromResp, fromReq []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ended := openSessions(b, host+":"+port, clientConfig())
		b.StartTimer()
		sent := time.Now()
		scim.do(http.MethodPatch, "/Users/"+id, deactivate).expect(b, http.StatusOK)
		answered := time.Now()
		for j := 0; j < benchSessions; j++ {
			select {
			case at := <-ended:
				fromResp = append(fromResp, max(at.Sub(answered), 0))
				fromReq = append(fromReq, at.Sub(sent))
			case <-time.After(10 * time.Second):
				b.Fatalf("%d of %d sessions still live 10s after the deactivation", benchSessions-j, benchSessions)
			}
		}
		b.StopTimer()
		scim.do(http.MethodPatch, "/Users/"+id, reactivate).expect(b, http.StatusOK)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(fromResp)
	slices.Sort(fromReq)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(fromResp, 0.50), "p50-ms")
	b.ReportMetric(pct(fromResp, 0.99), "p99-ms")
	b.ReportMetric(pct(fromResp, 1), "max-ms")
	b.ReportMetric(pct(fromReq, 0.99), "p99-from-request-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d sessions x %d deactivations: from the SCIM response p50 %.1f ms, p99 %.1f ms, max %.1f ms; from the request p50 %.1f ms, p99 %.1f ms",
		benchSessions, b.N, pct(fromResp, 0.5), pct(fromResp, 0.99), pct(fromResp, 1), pct(fromReq, 0.5), pct(fromReq, 0.99))
}

// openSessions opens benchSessions connections each running a remote sleep,
// waits until every command runs, and returns a channel that receives the
// time each session ends.
func openSessions(b *testing.B, addr string, cfg *ssh.ClientConfig) <-chan time.Time {
	b.Helper()
	ended := make(chan time.Time, benchSessions)
	var ready sync.WaitGroup
	errs := make(chan error, benchSessions)
	for i := 0; i < benchSessions; i++ {
		ready.Add(1)
		go func() {
			c, err := ssh.Dial("tcp", addr, cfg)
			if err != nil {
				errs <- err
				ready.Done()
				return
			}
			defer c.Close()
			s, err := c.NewSession()
			if err != nil {
				errs <- err
				ready.Done()
				return
			}
			out := &startedWriter{started: make(chan struct{})}
			s.Stdout = out
			if err := s.Start("echo started; sleep 600"); err != nil {
				errs <- err
				ready.Done()
				return
			}
			select {
			case <-out.started:
			case <-time.After(30 * time.Second):
				errs <- os.ErrDeadlineExceeded
			}
			ready.Done()
			_ = s.Wait()
			ended <- time.Now()
		}()
	}
	ready.Wait()
	select {
	case err := <-errs:
		b.Fatalf("opening sessions: %v", err)
	default:
	}
	return ended
}

// startedWriter closes started when "started" has been written.
type startedWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	started chan struct{}
	done    bool
}

func (w *startedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.buf.Write(p)
		if bytes.Contains(w.buf.Bytes(), []byte("started")) {
			w.done = true
			close(w.started)
		}
	}
	return len(p), nil
}
