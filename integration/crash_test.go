package integration

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
)

// The crash test's shape: crashUsers users are created over SCIM, crashReactivate of them
// deactivated at once (the round's reactivations need inactive records); then crashRounds
// rounds each send crashDeactivations deactivations, crashDeletes deletions (the other write
// that takes an account away), crashReactivations reactivations and crashCreates creates of new
// users from crashWorkers goroutines, and SIGKILL the server a few milliseconds to a few hundred
// milliseconds in. Every user is touched by at most one round, so
// each one's state after the restart is either before or after its one request.
const (
	crashUsers         = 300
	crashRounds        = 6
	crashDeactivations = 36
	crashReactivations = 5
	crashCreates       = 5
	crashDeletes       = 4
	crashReactivate    = crashRounds * crashReactivations
	crashWorkers       = 8
)

// crashOp is what a round does to one user.
type crashOp int

const (
	opDeactivate crashOp = iota + 1
	opReactivate
	opCreate
	opDelete
)

func (o crashOp) String() string {
	return map[crashOp]string{opDeactivate: "deactivation", opReactivate: "reactivation", opCreate: "create", opDelete: "deletion"}[o]
}

// crashState is what the server holds for one userName, read as an operator reads it.
type crashState struct {
	record    bool // SCIM lists a record with the userName
	active    bool // the record is active
	account   bool // gatectl get users has the account
	lock      bool // gatectl get locks has the plugin's scim-okta-<hash> lock on the user
	deactEvts int  // scim.user.deactivate events for the userName
	reactEvts int  // scim.user.reactivate events
	createEvt int  // scim.user.create events
	deleteEvt int  // scim.user.delete events
	lockEvts  int  // lock.create events of the user's deactivation lock
	unlockEvt int  // lock.delete events of it
}

// The states a user is in, by what was done to it. An active user has no lock; an inactive one
// has its lock and no account; the event counts follow the history.
func crashActive(creates, deacts, reacts int) crashState {
	return crashState{record: true, active: true, account: true, createEvt: creates, deactEvts: deacts, reactEvts: reacts, lockEvts: deacts, unlockEvt: reacts}
}

func crashInactive(creates, deacts, reacts int) crashState {
	return crashState{record: true, lock: true, createEvt: creates, deactEvts: deacts, reactEvts: reacts, lockEvts: deacts, unlockEvt: reacts}
}

// crashUser is the test's model of one userName: its state before and after the one request a
// round sends it; settled once that request is acknowledged or the state after the restart has
// shown which one holds.
type crashUser struct {
	name, id      string
	op            crashOp
	round         int
	before, after crashState
	settled       bool
	acked         bool
	cert          string // an SSH key (and key-cert.pub) issued before the request, if any
	identity      string // an identity file issued before the request, if any
}

// TestSCIMDeactivationsSurviveKill is invariant 6 against the real binary: a deactivation is
// one atomic write (the record, the user delete, the lock and the audit event) and once
// acknowledged it survives a crash. Rounds of concurrent SCIM deactivations, deletions,
// reactivations and creates are cut by SIGKILL at a random moment; after each restart on the
// same data dir every user touched so far is read back through gatectl and SCIM GET: an
// acknowledged request is there in full, a request in flight is there in full or not at all
// (and Okta's retry of it works), and a certificate issued before a deactivation that took
// effect is refused by the SSH node (with the lock's message, also to connections made while
// the restarted process starts: the lock is enforced from its first answer) and over gRPC.
func TestSCIMDeactivationsSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	started := time.Now()
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	// The SSH node keeps one port across restarts, so that a client can try it from the moment
	// the restarted process starts, before it has loaded its lock view.
	sshAddr := freeLoopbackAddr(t)
	serverArgs := []string{"--storage", "sqlite", "--log-level", "warn", "--ssh-addr", sshAddr}
	srv := startGatehouseLogged(t, gatehouseBin, dataDir, serverArgs...)
	gatectl, admin := gatectlOn(t, gatectlBin, dataDir)
	token := installOkta(t, admin, work)
	// Certificates need a role with an SSH login: the plugin gives dev to the users it creates.
	admin("create", "-f", resourceFile(t, work, "dev", "kind: role\nversion: v1\nmetadata:\n  name: dev\nspec:\n  allow:\n    logins: ["+sshLogin(t)+"]\n"))
	admin("plugins", "update", "okta", "--default-roles", "dev")
	scim := newSCIMClient(t, srv, "okta", token, crashWorkers)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 6))
	deactivate := patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})
	reactivate := patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": true}})

	// Setup, acknowledged before any kill: every user created, the reactivation targets
	// deactivated.
	users := make([]*crashUser, crashUsers)
	runParallelT(t, crashWorkers, crashUsers, func(i int) error {
		u := &crashUser{name: fmt.Sprintf("crash%04d@example.com", i), settled: true}
		r, err := scim.try(http.MethodPost, "/Users", oktaUser(u.name, fmt.Sprintf("00ucrash%d", i)))
		if err := crashAnswer("create "+u.name, r, err, http.StatusCreated); err != nil {
			return err
		}
		u.id, _ = r.body["id"].(string)
		u.before = crashActive(1, 0, 0)
		if i < crashReactivate {
			r, err := scim.try(http.MethodPatch, "/Users/"+u.id, deactivate)
			if err := crashAnswer("deactivate "+u.name, r, err, http.StatusOK); err != nil {
				return err
			}
			u.before = crashInactive(1, 1, 0)
		}
		u.after = u.before
		users[i] = u
		return nil
	})
	t.Logf("setup: %d users created, %d deactivated in %v", crashUsers, crashReactivate, time.Since(started))

	// The rounds' work: reactivations of users 0.., deactivations and deletions of the active
	// users in a random order, creates of new users.
	active := rng.Perm(crashUsers - crashReactivate)
	newUser := 0
	var rounds [crashRounds][]*crashUser
	for r := range crashRounds {
		var batch []*crashUser
		for range crashDeactivations {
			u := users[crashReactivate+active[0]]
			active = active[1:]
			u.op, u.round, u.after = opDeactivate, r, crashInactive(1, 1, 0)
			batch = append(batch, u)
		}
		for range crashDeletes {
			u := users[crashReactivate+active[0]]
			active = active[1:]
			u.op, u.round = opDelete, r
			u.after = crashState{lock: true, createEvt: 1, deleteEvt: 1, lockEvts: 1}
			batch = append(batch, u)
		}
		for i := range crashReactivations {
			u := users[r*crashReactivations+i]
			u.op, u.round, u.after = opReactivate, r, crashActive(1, 1, 1)
			batch = append(batch, u)
		}
		for range crashCreates {
			u := &crashUser{name: fmt.Sprintf("crashnew%04d@example.com", newUser), op: opCreate, round: r, settled: true, after: crashActive(1, 0, 0)}
			newUser++
			users = append(users, u)
			batch = append(batch, u)
		}
		rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		rounds[r] = batch
	}

	// send sends u's request the way Okta does.
	send := func(u *crashUser) (scimResponse, error) {
		switch u.op {
		case opDeactivate:
			return scim.try(http.MethodPatch, "/Users/"+u.id, deactivate)
		case opReactivate:
			return scim.try(http.MethodPatch, "/Users/"+u.id, reactivate)
		case opDelete:
			return scim.try(http.MethodDelete, "/Users/"+u.id, nil)
		default:
			return scim.try(http.MethodPost, "/Users", oktaUser(u.name, "00u"+u.name))
		}
	}

	for r, batch := range rounds {
		// Certificates for the round's first and last deactivation targets, issued while they
		// are active: after the restart they must be refused if the deactivation took effect
		// (the first is sent at once, the last mostly after the kill), and work if not.
		var targets []*crashUser
		for _, u := range batch {
			if u.op == opDeactivate {
				targets = append(targets, u)
			}
		}
		for _, u := range []*crashUser{targets[0], targets[len(targets)-1]} {
			u.cert = filepath.Join(work, fmt.Sprintf("cert-%s", u.id))
			admin("auth", "sign", "--user", u.name, "--ttl", "1h", "--out", u.cert)
			u.identity = filepath.Join(work, fmt.Sprintf("identity-%s", u.id))
			admin("auth", "sign", "--user", u.name, "--ttl", "1h", "--format", "identity", "--out", u.identity)
		}
		for _, u := range batch {
			u.settled = false
		}

		// The round: crashWorkers goroutines take the batch in order; SIGKILL lands after a
		// random delay, or sooner, once a random number of requests were acknowledged: a round
		// can take less than the delay on a fast machine, and the kill must land in it. A
		// request answered 2xx is acknowledged; any other outcome (no answer, connection
		// reset, a 5xx of a server going down) leaves it in flight.
		delay := time.Duration(2+rng.IntN(298)) * time.Millisecond
		killAt := len(batch)/8 + rng.IntN(len(batch)*3/4)
		var (
			next  int
			mu    sync.Mutex
			wg    sync.WaitGroup
			acked int
		)
		kill := make(chan struct{})
		roundStart := time.Now()
		for range crashWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					if next == len(batch) {
						mu.Unlock()
						return
					}
					u := batch[next]
					next++
					mu.Unlock()
					resp, err := send(u)
					if err != nil || resp.status/100 != 2 {
						continue
					}
					mu.Lock()
					u.acked, u.settled = true, true
					if u.op == opCreate {
						u.id, _ = resp.body["id"].(string)
					}
					acked++
					if acked == killAt {
						close(kill)
					}
					mu.Unlock()
				}
			}()
		}
		select {
		case <-time.After(delay):
		case <-kill:
		}
		require.NoError(t, srv.cmd.Process.Kill())
		killed := time.Since(roundStart)
		<-srv.done
		wg.Wait()
		t.Logf("round %d: SIGKILL %v in; %d of %d requests acknowledged", r, killed.Round(time.Millisecond), acked, len(batch))

		early := probeSSHDuringStart(sshAddr, sshLogin(t), targets[0])
		srv = startGatehouseLogged(t, gatehouseBin, dataDir, serverArgs...)
		earlyAnswers := early()
		scim = newSCIMClient(t, srv, "okta", token, crashWorkers)

		// Certificates first: the restarted server must enforce the locks from its first
		// requests. What the answers must be depends on the state read next.
		sshAnswers := map[*crashUser]crashSSH{}
		for _, u := range batch {
			if u.cert != "" {
				sshAnswers[u] = trySSHAfterRestart(t, srv, u)
			}
		}
		// Then everyone touched so far, this round and every earlier one.
		got := crashRead(t, gatectl, scim)
		var committed, dropped []*crashUser
		stale := 0
		for _, a := range earlyAnswers {
			if strings.Contains(a.stderr, "lock view is stale") {
				stale++
			}
		}
		if !got[targets[0].name].account {
			for _, a := range earlyAnswers {
				require.False(t, a.accepted, "%s's certificate was accepted while the restarted server started, before its lock view was loaded", targets[0].name)
				require.True(t, strings.Contains(a.stderr, "lock view is stale") || strings.Contains(a.stderr, `lock targeting user "`+targets[0].name+`" is in force`),
					"%s's certificate during the start: refused for another reason than the lock: %s", targets[0].name, a.stderr)
			}
		}
		refused := 0
		for u, a := range sshAnswers {
			checkCrashCert(t, srv, gatectlBin, u, a, got[u.name])
			if !a.accepted {
				refused++
			}
		}
		for _, u := range users {
			st := got[u.name]
			switch {
			case u.settled && u.acked:
				require.Equal(t, u.after, st, "acknowledged %s of %s (round %d) is not there in full", u.op, u.name, u.round)
			case u.settled:
				require.Equal(t, u.before, st, "%s (round %d) changed without a request", u.name, u.round)
			case st == u.after:
				u.before, u.settled = u.after, true // in flight, committed: it must stay
				committed = append(committed, u)
			case st == u.before:
				u.settled = true // in flight, not committed: nothing of it
				dropped = append(dropped, u)
			default:
				t.Fatalf("%s of %s (round %d) in flight at the kill left half a write:\nbefore %+v\nafter  %+v\ngot    %+v", u.op, u.name, u.round, u.before, u.after, st)
			}
		}
		t.Logf("round %d: of the requests not acknowledged, %d were committed in full and %d not at all; %d of %d certificates refused for the lock; %d SSH answers during the start (%d stale)", r, len(committed), len(dropped), refused, len(sshAnswers), len(earlyAnswers), stale)
		// Okta retries what got no answer. A crash must leave nothing (an index entry, a
		// lock, a half-held name) that makes the retry of a request not committed fail; the
		// retry of one committed changes nothing (a create is told the userName is taken).
		// The next rounds' checks hold every retried user to its state after the request.
		retries := append(slices.Clone(dropped), committed...)
		runParallelT(t, crashWorkers, len(retries), func(i int) error {
			u := retries[i]
			resp, err := send(u)
			switch {
			case err != nil:
				return fmt.Errorf("retry of the %s of %s: %w", u.op, u.name, err)
			case i >= len(dropped) && u.op == opCreate:
				if resp.status != http.StatusConflict {
					return fmt.Errorf("retry of the committed create of %s: %d %s", u.name, resp.status, resp.raw)
				}
			case i >= len(dropped) && u.op == opDelete:
				if resp.status != http.StatusNotFound {
					return fmt.Errorf("retry of the committed deletion of %s: %d %s", u.name, resp.status, resp.raw)
				}
			case resp.status/100 != 2:
				return fmt.Errorf("retry of the %s of %s: %d %s", u.op, u.name, resp.status, resp.raw)
			}
			u.acked = true
			if i < len(dropped) && u.op == opCreate {
				u.id, _ = resp.body["id"].(string)
			}
			return nil
		})
	}
	// The last round's retries, read back.
	got := crashRead(t, gatectl, scim)
	for _, u := range users {
		want := u.before
		if u.acked {
			want = u.after
		}
		require.Equal(t, want, got[u.name], "%s of %s (round %d, acknowledged %v)", u.op, u.name, u.round, u.acked)
	}
	t.Logf("whole test: %v", time.Since(started))
}

// crashSSH is how the SSH node answered a certificate.
type crashSSH struct {
	accepted bool
	stderr   string
}

// trySSHAfterRestart connects with u's certificate, issued before its request, to the
// restarted server's SSH node; a refusal because the lock view is still loading (fail closed)
// is retried for up to 10s.
func trySSHAfterRestart(t *testing.T, srv *server, u *crashUser) crashSSH {
	t.Helper()
	host, port := srv.sshAddr(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, stderr, err := runSSH(t, host, port, u.cert, sshLogin(t), "true")
		if err == nil || !strings.Contains(stderr, "lock view is stale") {
			return crashSSH{accepted: err == nil, stderr: stderr}
		}
		require.True(t, time.Now().Before(deadline), "the SSH node's lock view stayed stale for 10s after the restart")
		time.Sleep(50 * time.Millisecond)
	}
}

// probeSSHDuringStart connects with u's certificate to addr over and over, from now until the
// returned function is called, and that function returns every answer the SSH node gave (a
// connection refused because nothing listens yet is no answer).
func probeSSHDuringStart(addr, login string, u *crashUser) func() []crashSSH {
	host, port, _ := strings.Cut(addr, ":")
	stop := make(chan struct{})
	done := make(chan []crashSSH)
	go func() {
		var answers []crashSSH
		for {
			select {
			case <-stop:
				done <- answers
				return
			default:
			}
			cmd := opensshCmd(host, port, u.cert, login, "true")
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				continue
			}
			timer := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
			err := cmd.Wait()
			timer.Stop()
			if err == nil || strings.Contains(stderr.String(), "administratively prohibited") {
				answers = append(answers, crashSSH{accepted: err == nil, stderr: stderr.String()})
			} else {
				time.Sleep(20 * time.Millisecond) // nothing listens yet
			}
		}
	}()
	return func() []crashSSH {
		close(stop)
		return <-done
	}
}

// freeLoopbackAddr returns a loopback address with a port free at the time of the call.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// checkCrashCert checks how the restarted server answered u's certificate and identity, issued
// before its deactivation, given u's state st: if the deactivation took effect, the SSH node
// refused the certificate naming the lock and gRPC refuses the identity; if not, the
// certificate still works (so this check can fail).
func checkCrashCert(t *testing.T, srv *server, gatectlBin string, u *crashUser, ssh crashSSH, st crashState) {
	t.Helper()
	if st.account {
		require.True(t, ssh.accepted, "%s is still active but its certificate was refused: %s", u.name, ssh.stderr)
		return
	}
	require.False(t, ssh.accepted, "%s's certificate from before the deactivation was accepted after the restart", u.name)
	require.Contains(t, ssh.stderr, `lock targeting user "`+u.name+`" is in force`, "%s's certificate: refused for another reason than the lock", u.name)
	authAddr, err := os.ReadFile(filepath.Join(srv.dataDir, "auth_addr"))
	require.NoError(t, err)
	r := runCmd(t, gatectlBin, "--auth-server", strings.TrimSpace(string(authAddr)), "--identity", u.identity, "get", "users")
	require.NotEqual(t, 0, r.code, "%s's identity from before the deactivation was accepted after the restart: %s", u.name, r)
	require.Contains(t, r.stderr, `user "`+u.name+`" no longer exists`, r.String())
}

// crashRead reads every user's state as an operator would: SCIM list, gatectl get users, get
// locks and events ls.
func crashRead(t *testing.T, gatectl func(args ...string) result, scim *scimClient) map[string]crashState {
	t.Helper()
	got := map[string]crashState{}
	update := func(name string, fn func(s *crashState)) {
		s := got[name]
		fn(&s)
		got[name] = s
	}
	for start := 1; ; start += 100 {
		r := scim.do(http.MethodGet, fmt.Sprintf("/Users?startIndex=%d&count=100", start), nil).expect(t, http.StatusOK)
		res, _ := r.body["Resources"].([]any)
		for _, x := range res {
			m, _ := x.(map[string]any)
			name, _ := m["userName"].(string)
			active, _ := m["active"].(bool)
			update(name, func(s *crashState) { s.record, s.active = true, active })
		}
		total, _ := r.body["totalResults"].(float64)
		if len(res) == 0 || start+len(res) > int(total) {
			break
		}
	}
	var accounts []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	crashJSON(t, gatectl("get", "users", "--format", "json"), &accounts)
	for _, a := range accounts {
		update(a.Metadata.Name, func(s *crashState) { s.account = true })
	}
	var locks []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Target struct {
				User string `json:"user"`
			} `json:"target"`
		} `json:"spec"`
	}
	crashJSON(t, gatectl("get", "locks", "--format", "json"), &locks)
	for _, l := range locks {
		name := l.Spec.Target.User
		require.Equal(t, scimprov.LockName("okta", name), l.Metadata.Name, "a lock on %s not named as the plugin names its locks", name)
		update(name, func(s *crashState) { s.lock = true })
	}
	var events []struct {
		Type     string            `json:"type"`
		Resource string            `json:"resource"`
		Fields   map[string]string `json:"fields"`
	}
	crashJSON(t, gatectl("events", "ls", "--since", "1h", "--format", "json",
		"--type", strings.Join([]string{scimprov.EventUserCreate, scimprov.EventUserDeactivate, scimprov.EventUserReactivate, scimprov.EventUserDelete, scimprov.EventLockCreate, scimprov.EventLockDelete}, ",")), &events)
	for _, e := range events {
		switch e.Type {
		case scimprov.EventUserCreate:
			update(e.Fields["username"], func(s *crashState) { s.createEvt++ })
		case scimprov.EventUserDeactivate:
			update(e.Fields["username"], func(s *crashState) { s.deactEvts++ })
		case scimprov.EventUserReactivate:
			update(e.Fields["username"], func(s *crashState) { s.reactEvts++ })
		case scimprov.EventUserDelete:
			update(e.Fields["username"], func(s *crashState) { s.deleteEvt++ })
		case scimprov.EventLockCreate:
			name := e.Fields["target"]
			require.Equal(t, "lock/"+scimprov.LockName("okta", name), e.Resource)
			update(name, func(s *crashState) { s.lockEvts++ })
		case scimprov.EventLockDelete:
			update(e.Fields["target"], func(s *crashState) { s.unlockEvt++ })
		}
	}
	return got
}

// crashAnswer is nil if the request was answered with status, else it says what went wrong.
func crashAnswer(what string, r scimResponse, err error, status int) error {
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case r.status != status:
		return fmt.Errorf("%s: %d %s", what, r.status, r.raw)
	}
	return nil
}

func crashJSON(t *testing.T, r result, v any) {
	t.Helper()
	require.Equal(t, 0, r.code, r.String())
	require.NoError(t, json.Unmarshal([]byte(r.stdout), v), r.stdout)
}

// runParallelT runs n jobs on conc workers and fails the test on the first error.
func runParallelT(t *testing.T, conc, n int, job func(i int) error) {
	t.Helper()
	var (
		next int
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := i >= n || len(errs) > 0
				mu.Unlock()
				if stop {
					return
				}
				if err := job(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	require.Empty(t, errs)
}
