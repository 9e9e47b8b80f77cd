package integration

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/backend/etcdbk/etcdtest"
)

// BenchmarkHADeprovisionLatency measures the cross-server deprovision-to-disconnect latency: two
// gatehouse servers on a three-member etcd embedded in the benchmark process,
// HA_BENCH_SESSIONS (default 100) SCIM users each with a live SSH session on server B's node,
// then, one user at a time, Okta's deactivation (PATCH active:false) sent to server A; the
// latency is from sending the PATCH (and from its answer) to the SSH client seeing its session
// end. It reports p50 and p99.
//
//	go test -run '^$' -bench BenchmarkHADeprovisionLatency -benchtime 1x -timeout 30m ./integration/
func BenchmarkHADeprovisionLatency(b *testing.B) {
	n := envInt(b, "HA_BENCH_SESSIONS", 100)
	gatehouseBin, gatectlBin := buildBinaries(b)
	cluster := etcdtest.StartCluster(b, 3)
	dirA, dirB, work := b.TempDir(), b.TempDir(), b.TempDir()
	args := append(haEtcdArgs(cluster.Endpoints()), "--log-level", "warn")
	srvA := haLaunch(b, gatehouseBin, dirA, &syncBuffer{}, args...)
	srvB := haLaunch(b, gatehouseBin, dirB, &syncBuffer{}, args...)
	haWaitReady(b, srvA)
	haWaitReady(b, srvB)
	adminA := func(args ...string) result {
		return runCmd(b, gatectlBin, append([]string{"--data-dir", dirA}, args...)...)
	}
	token := haSetupOkta(b, adminA, work)
	scimA := newSCIMClient(b, srvA, "okta", token, 4)
	addrB, login := haSSHAddr(b, srvB), haLogin(b)

	ids := make([]string, n)
	signers := make([]ssh.Signer, n)
	for i := range n {
		name := fmt.Sprintf("dep%04d@example.com", i)
		r := scimA.do(http.MethodPost, "/Users", oktaUser(name, "00udep"+strconv.Itoa(i))).expect(b, http.StatusCreated)
		ids[i] = r.body["id"].(string)
		signers[i] = haSigner(b, adminA, work, name)
	}
	sessions := make([]*haSession, n)
	for i := range n {
		s, err := haStartSession(addrB, login, signers[i])
		require.NoError(b, err)
		sessions[i] = s
	}

	deactivate := patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})
	fromRequest := make([]time.Duration, n)
	fromAnswer := make([]time.Duration, n)
	patch := make([]time.Duration, n)
	b.ResetTimer()
	for i := range n {
		sent := time.Now()
		scimA.do(http.MethodPatch, "/Users/"+ids[i], deactivate).expect(b, http.StatusOK)
		answered := time.Now()
		select {
		case <-sessions[i].done:
		case <-time.After(10 * time.Second):
			b.Fatalf("session %d outlived its deactivation by 10s", i)
		}
		fromRequest[i] = sessions[i].ended.Sub(sent)
		fromAnswer[i] = sessions[i].ended.Sub(answered)
		patch[i] = answered.Sub(sent)
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(fromRequest, .5)), "disconnect-p50-ms")
	b.ReportMetric(ms(percentile(fromRequest, .99)), "disconnect-p99-ms")
	table := fmt.Sprintf(`
Cross-server deprovision-to-disconnect, 2 servers on a 3-member etcd, %d SSH sessions on B, PATCH active:false to A
| measure | p50 | p99 | max |
| --- | --- | --- | --- |
| PATCH sent on A to SSH session ended on B | %.1f ms | %.1f ms | %.1f ms |
| PATCH answered by A to SSH session ended on B | %.1f ms | %.1f ms | %.1f ms |
| PATCH round trip on A | %.1f ms | %.1f ms | %.1f ms |
| machine load average at the end (2 cores, shared) | %s | | |
`, n,
		ms(percentile(fromRequest, .5)), ms(percentile(fromRequest, .99)), ms(percentile(fromRequest, 1)),
		ms(percentile(fromAnswer, .5)), ms(percentile(fromAnswer, .99)), ms(percentile(fromAnswer, 1)),
		ms(percentile(patch, .5)), ms(percentile(patch, .99)), ms(percentile(patch, 1)),
		loadAvg())
	b.Log(table)
	fmt.Fprintln(os.Stderr, table)
}
