package integration

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/lite"
	"github.com/gatehouse/gatehouse/lib/web"
)

// BenchmarkSCIMFloor measures what the cheapest server doing a SCIM create, lookup and
// deactivation at the protocol and storage level costs on this machine: the floor under
// BenchmarkSCIMLoad's server CPU per operation. It runs BenchmarkSCIMLoad's load client (same
// bodies, same concurrency: 32 for creates, 16 for lookups and deactivations, HTTPS with
// keep-alive) against a floor server in its own process, whose CPU is read from /proc like the
// real server's, once per variant (SCIM_FLOOR_VARIANTS, default "mem,lite,lite-nohttp"):
//
//   - mem: net/http over TLS set up as lib/web does (self-signed P-256 certificate, TLS 1.2+, Go's
//     default curves, the same timeouts), a bearer token compared in constant time, the create's
//     body decoded with encoding/json into a map and the answer encoded from it (the same size as
//     gatehouse's), users kept in a mutex-guarded map. Nothing is durable.
//   - lite: mem, plus each create and each deactivation is ONE durable AtomicWrite on the real
//     lib/backend/lite backend (synchronous=FULL, its group commit, its read cache), of the keys,
//     conditions and value sizes a real SCIM write has (see floorCreateActions,
//     floorDeactivateActions). Lookups are answered from memory, as gatehouse answers them from
//     its read cache.
//   - lite-nohttp: lite's creates and deactivations without HTTP, JSON or TLS: the floor
//     process itself issues the same AtomicWrites from 32 and 16 goroutines, so its CPU is the
//     durable write's alone. It has no lookup phase (a map read is not worth measuring).
//
// SCIM_BENCH_USERS (default 20,000) users are created, then lookups run for
// SCIM_BENCH_LOOKUP_SECONDS (default 20), then SCIM_BENCH_DEACTIVATIONS (default 5,000) users are
// deactivated. Run it once:
//
//	go test -run '^$' -bench 'BenchmarkSCIMFloor$' -benchtime 1x -timeout 30m ./integration/
func BenchmarkSCIMFloor(b *testing.B) {
	users := envInt(b, "SCIM_BENCH_USERS", 20_000)
	variants := strings.Split(cmp.Or(os.Getenv("SCIM_FLOOR_VARIANTS"), "mem,lite,lite-nohttp"), ",")
	var results []floorResult
	for _, v := range variants {
		v = strings.TrimSpace(v)
		require.Contains(b, []string{floorMem, floorLite, floorLiteNoHTTP}, v, "SCIM_FLOOR_VARIANTS")
		b.Run(v, func(b *testing.B) {
			if v == floorLiteNoHTTP {
				results = append(results, floorNoHTTP(b, users))
			} else {
				results = append(results, floorLoad(b, v, users))
			}
		})
	}
	table := floorTable(users, results)
	b.Log(table)
	fmt.Fprintln(os.Stderr, table)
}

// The floor server's variants.
const (
	floorMem        = "mem"
	floorLite       = "lite"
	floorLiteNoHTTP = "lite-nohttp"
)

// Environment of the floor server process (TestFloorServerProcess).
const (
	floorEnvVariant = "GATEHOUSE_SCIM_FLOOR_VARIANT" // a variant; unset: not the floor server
	floorEnvDir     = "GATEHOUSE_SCIM_FLOOR_DIR"     // where web.crt and the lite database go
	floorEnvToken   = "GATEHOUSE_SCIM_FLOOR_TOKEN"   // the bearer token to accept
	floorEnvWrites  = "GATEHOUSE_SCIM_FLOOR_WRITES"  // lite-nohttp: "<users>,<deactivations>,<create concurrency>"
	floorAddrPrefix = "floor-addr "                  // stdout line with the listen address
	floorDonePrefix = "floor-result "                // lite-nohttp: stdout line with its result
)

// floorResult is one variant's run.
type floorResult struct {
	variant string
	loadResult
	lookupP50, deactP99 time.Duration
}

// floorLoad starts a floor server of variant and runs BenchmarkSCIMLoad's three phases on it.
func floorLoad(b *testing.B, variant string, users int) floorResult {
	createConc := envInt(b, "SCIM_BENCH_CREATE_CONCURRENCY", 32)
	lookupDur := time.Duration(envInt(b, "SCIM_BENCH_LOOKUP_SECONDS", 20)) * time.Second
	deactivations := min(users, envInt(b, "SCIM_BENCH_DEACTIVATIONS", 5_000))
	const lookupConc = 16

	srv, stop := startFloorServer(b, variant)
	c := newSCIMClient(b, srv.server, "okta", srv.token, 64)
	require.NotNil(b, c)
	pid := srv.cmd.Process.Pid

	b.ResetTimer()
	cpu0 := procCPU(b, pid)
	ids := make([]string, users)
	start := time.Now()
	createLat := runParallel(b, createConc, users, func(i int) error {
		r, err := c.try(http.MethodPost, "/Users", oktaUser(benchUser(i), "00u"+strconv.Itoa(i)))
		if err != nil {
			return err
		}
		if r.status != http.StatusCreated {
			return fmt.Errorf("create %d: %d %s", i, r.status, r.raw)
		}
		ids[i], _ = r.body["id"].(string)
		return nil
	})
	createSecs := time.Since(start).Seconds()
	cpu1 := procCPU(b, pid)

	start = time.Now()
	var throttled atomic.Int64
	lookups := runLookups(b, []*scimClient{c}, users, lookupConc, lookupDur, 42, &throttled)
	lookupSecs := time.Since(start).Seconds()
	cpu2 := procCPU(b, pid)

	deactivate := patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})
	start = time.Now()
	deactLat := runParallel(b, lookupConc, deactivations, func(i int) error {
		r, err := c.try(http.MethodPatch, "/Users/"+ids[i], deactivate)
		if err != nil {
			return err
		}
		if r.status != http.StatusOK || r.body["active"] != false {
			return fmt.Errorf("deactivate %d: %d %s", i, r.status, r.raw)
		}
		return nil
	})
	deactSecs := time.Since(start).Seconds()
	cpu3 := procCPU(b, pid)
	b.StopTimer()
	dataMB := dirSizeMB(srv.dir)
	stop()

	r := floorResult{variant: variant, lookupP50: percentile(lookups, .5), deactP99: percentile(deactLat, .99), loadResult: loadResult{
		users:      users,
		createRate: float64(users) / createSecs, lookupRate: float64(len(lookups)) / lookupSecs,
		deacRate:  float64(deactivations) / deactSecs,
		createP99: percentile(createLat, .99), lookupP99: percentile(lookups, .99),
		cpuCreate: (cpu1 - cpu0) / time.Duration(users),
		cpuLookup: (cpu2 - cpu1) / time.Duration(max(1, len(lookups))),
		cpuDeac:   (cpu3 - cpu2) / time.Duration(max(1, deactivations)),
		dataDirMB: dataMB,
	}}
	b.ReportMetric(r.createRate, "creates/s")
	b.ReportMetric(r.lookupRate, "lookups/s")
	b.ReportMetric(r.deacRate, "deactivations/s")
	b.ReportMetric(ms(r.cpuCreate), "cpu-ms/create")
	b.ReportMetric(ms(r.cpuLookup), "cpu-ms/lookup")
	b.ReportMetric(ms(r.cpuDeac), "cpu-ms/deactivation")
	return r
}

// floorTable renders the results as Markdown, like BenchmarkSCIMLoad's table.
func floorTable(users int, rs []floorResult) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nSCIM floor, %d users (%s, load average at the end %s; 2 cores shared with the client)\n\n",
		users, time.Now().UTC().Format("2006-01-02"), loadAvg())
	sb.WriteString("| variant | creates/s (p99) | server CPU per create | lookups/s (p50 / p99) | server CPU per lookup | deactivations/s (p99) | server CPU per deactivation | data dir |\n")
	sb.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rs {
		lookups, lookupCPU := "—", "—" // lite-nohttp has no lookup phase
		if r.lookupRate > 0 {
			lookups = fmt.Sprintf("%.0f (%.2f / %.2f ms)", r.lookupRate, ms(r.lookupP50), ms(r.lookupP99))
			lookupCPU = fmt.Sprintf("%.3f ms", ms(r.cpuLookup))
		}
		fmt.Fprintf(&sb, "| %s | %.0f (%.1f ms) | %.3f ms | %s | %s | %.0f (%.1f ms) | %.3f ms | %.0f MB |\n",
			r.variant, r.createRate, ms(r.createP99), ms(r.cpuCreate), lookups, lookupCPU,
			r.deacRate, ms(r.deactP99), ms(r.cpuDeac), r.dataDirMB)
	}
	return sb.String()
}

// floorProcess is a running floor server.
type floorProcess struct {
	*server // dataDir holds web.crt, webAddr the listen address, for newSCIMClient
	dir     string
	token   string
	result  chan string // lite-nohttp's result line
}

// startFloorServer re-runs this test binary as the floor server of variant (TestFloorServerProcess)
// and waits for its address; stop ends it (closing its stdin) and waits for a clean exit.
func startFloorServer(b *testing.B, variant string, env ...string) (*floorProcess, func()) {
	b.Helper()
	exe, err := os.Executable()
	require.NoError(b, err)
	dir := b.TempDir()
	token := make([]byte, 24)
	_, _ = rand.Read(token)
	p := &floorProcess{dir: dir, token: hex.EncodeToString(token)}
	cmd := exec.Command(exe, "-test.run=^TestFloorServerProcess$")
	cmd.Env = append(os.Environ(), floorEnvVariant+"="+variant, floorEnvDir+"="+dir, floorEnvToken+"="+p.token)
	cmd.Env = append(cmd.Env, env...)
	stdin, err := cmd.StdinPipe()
	require.NoError(b, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(b, err)
	logs := &syncBuffer{}
	cmd.Stderr = logs
	require.NoError(b, cmd.Start())
	p.server = &server{cmd: cmd, out: logs, dataDir: dir, done: make(chan error, 1)}
	addr := make(chan string, 1)
	p.result = make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), floorAddrPrefix); ok {
				addr <- a
			} else if r, ok := strings.CutPrefix(sc.Text(), floorDonePrefix); ok {
				p.result <- r
			} else {
				_, _ = logs.Write(append(sc.Bytes(), '\n'))
			}
		}
		p.done <- cmd.Wait()
	}()
	b.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case p.webAddr = <-addr:
	case err := <-p.done:
		b.Fatalf("floor server exited early (%v):\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		b.Fatalf("floor server did not start:\n%s", logs.String())
	}
	stop := func() {
		_ = stdin.Close()
		select {
		case err := <-p.done:
			require.NoError(b, err, "floor server: %s", logs.String())
		case <-time.After(30 * time.Second):
			b.Fatalf("floor server did not stop:\n%s", logs.String())
		}
	}
	return p, stop
}

// TestFloorServerProcess is not a test: it is BenchmarkSCIMFloor's server process, which the
// benchmark starts by re-running this test binary with GATEHOUSE_SCIM_FLOOR_VARIANT set. Without
// that variable, as in every ordinary test run, it returns at once. It serves until its stdin
// closes (the benchmark is done, or gone) or it gets SIGTERM.
func TestFloorServerProcess(t *testing.T) {
	variant := os.Getenv(floorEnvVariant)
	if variant == "" {
		return
	}
	dir, token := os.Getenv(floorEnvDir), os.Getenv(floorEnvToken)
	require.NotEmpty(t, dir, floorEnvDir)
	require.NotEmpty(t, token, floorEnvToken)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	fs := newFloorServer(token)
	switch variant {
	case floorMem:
	case floorLite, floorLiteNoHTTP:
		be, err := lite.New(ctx, lite.Config{Path: filepath.Join(dir, "backend", lite.DBFileName), Logger: log})
		require.NoError(t, err)
		defer be.Close()
		// What gatehouse's services ask of the read cache (services.NewUserService,
		// scimstore): users and externalId index entries enter it when read, not when written.
		be.CacheWhenRead(func(k backend.Key) bool { return bytes.HasPrefix(k, []byte("users/")) })
		be.CacheWhenRead(func(k backend.Key) bool {
			return bytes.HasPrefix(k, []byte("scim/okta/user_external_id_index/"))
		})
		fs.be = be
	default:
		t.Fatalf("unknown floor variant %q", variant)
	}

	// The TLS of lib/web: a self-signed P-256 certificate, TLS 1.2 or later, Go's default
	// curves and cipher suites, the same timeouts and header limit.
	certPEM, keyPEM, err := web.GenerateSelfSigned([]string{"localhost", "127.0.0.1", "::1"}, time.Now(), 24*time.Hour)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, web.SelfSignedCertName), certPEM, 0o600))
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	srv := &http.Server{
		Handler:           fs.routes(),
		ReadHeaderTimeout: web.DefaultReadHeaderTimeout,
		ReadTimeout:       web.DefaultReadTimeout,
		WriteTimeout:      web.DefaultWriteTimeout,
		IdleTimeout:       web.DefaultIdleTimeout,
		MaxHeaderBytes:    web.DefaultMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	fmt.Println(floorAddrPrefix + ln.Addr().String())
	if variant == floorLiteNoHTTP {
		// The writes without HTTP; the listener, up for startFloorServer, stays idle.
		floorWrites(t, fs.be)
	}

	quit := make(chan os.Signal, 1)
	signal.Notify(quit, syscall.SIGTERM)
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	select {
	case <-quit:
	case <-stdinClosed:
	case err := <-served:
		t.Fatalf("floor server stopped: %v", err)
	}
	shutCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(shutCtx))
}

// floorServer is the floor's SCIM server: the Users endpoints BenchmarkSCIMLoad uses, and
// nothing else.
type floorServer struct {
	token []byte
	be    *lite.Backend // nil: the mem variant
	seq   atomic.Int64  // the mem variant's versions

	mu     sync.RWMutex
	byID   map[string]*floorUser
	byName map[string]*floorUser
}

// floorUser is one user as last written; never modified once in the maps (a write replaces it).
type floorUser struct {
	id, userName, externalID string
	attrs                    map[string]any // the resource answered, for PATCH to change
	json                     []byte         // attrs encoded, the answer to a lookup
	rev                      string         // lite: the revision of the record and the user
}

const floorBase = "/v1/webapi/scim/okta"

// newFloorServer is the mem variant's server; the lite variants set be.
func newFloorServer(token string) *floorServer {
	return &floorServer{token: []byte(token), byID: map[string]*floorUser{}, byName: map[string]*floorUser{}}
}

func (s *floorServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+floorBase+"/Users", s.create)
	mux.HandleFunc("GET "+floorBase+"/Users", s.lookup)
	mux.HandleFunc("PATCH "+floorBase+"/Users/{id}", s.patch)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// lib/web's security headers, which every gatehouse answer carries.
		h := w.Header()
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(auth), s.token) != 1 {
			floorError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		mux.ServeHTTP(w, r)
	})
}

func (s *floorServer) create(w http.ResponseWriter, r *http.Request) {
	var attrs map[string]any
	if err := json.NewDecoder(r.Body).Decode(&attrs); err != nil {
		floorError(w, http.StatusBadRequest, "body is not a JSON object: "+err.Error())
		return
	}
	userName, _ := attrs["userName"].(string)
	externalID, _ := attrs["externalId"].(string)
	if userName == "" {
		floorError(w, http.StatusBadRequest, "userName is required")
		return
	}
	// What gatehouse never answers with (password is returned: never; groups come from groups).
	delete(attrs, "password")
	delete(attrs, "groups")
	u := &floorUser{id: uuid.NewString(), userName: userName, externalID: externalID}
	now := time.Now().UTC()
	rev, ok := s.write(w, r, func(now time.Time) []backend.ConditionalAction { return floorCreateActions(u, now) }, now)
	if !ok {
		return
	}
	u.rev = rev
	attrs["id"] = u.id
	attrs["meta"] = floorMeta(u, now, now)
	u.attrs = attrs
	var err error
	if u.json, err = json.Marshal(attrs); err != nil {
		floorError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	if _, taken := s.byName[userName]; taken && s.be == nil {
		s.mu.Unlock()
		floorError(w, http.StatusConflict, "userName is taken")
		return
	}
	s.byID[u.id], s.byName[userName] = u, u
	s.mu.Unlock()
	w.Header().Set("Location", "https://gatehouse.example.com"+floorBase+"/Users/"+u.id)
	floorAnswer(w, http.StatusCreated, u, u.json)
}

// listPrefix and listSuffix frame one user in a ListResponse.
var (
	listPrefix = []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":1,"startIndex":1,"itemsPerPage":1,"Resources":[`)
	listSuffix = []byte(`]}`)
	listEmpty  = []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"startIndex":1,"itemsPerPage":0,"Resources":[]}`)
)

// lookup answers Okta's `userName eq "..."` filter from memory, copying the user's JSON as
// gatehouse copies the stored JSON.
func (s *floorServer) lookup(w http.ResponseWriter, r *http.Request) {
	f := r.URL.Query().Get("filter")
	rest, ok := strings.CutPrefix(f, `userName eq "`)
	name, ok2 := strings.CutSuffix(rest, `"`)
	if !ok || !ok2 {
		floorError(w, http.StatusBadRequest, `only filter=userName eq "..." is served here`)
		return
	}
	s.mu.RLock()
	u := s.byName[name]
	s.mu.RUnlock()
	h := w.Header()
	h.Set("Content-Type", "application/scim+json")
	h.Set("Cache-Control", "no-store")
	if u == nil {
		h.Set("Content-Length", strconv.Itoa(len(listEmpty)))
		_, _ = w.Write(listEmpty)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(listPrefix)+len(u.json)+len(listSuffix)))
	_, _ = w.Write(listPrefix)
	_, _ = w.Write(u.json)
	_, _ = w.Write(listSuffix)
}

// patch serves Okta's deactivation, PATCH {"op":"replace","value":{"active":false}}, and
// write is the floor's durable write: actions(now) as one AtomicWrite on lite, or, for the mem
// variant, a counter for the version. ok is false when the write failed and w has the answer.
func (s *floorServer) write(w http.ResponseWriter, r *http.Request, actions func(time.Time) []backend.ConditionalAction, now time.Time) (rev string, ok bool) {
	if s.be == nil {
		return strconv.FormatInt(s.seq.Add(1), 10), true
	}
	rev, err := s.be.AtomicWrite(r.Context(), actions(now))
	if err != nil {
		floorWriteError(w, err)
		return "", false
	}
	return rev, true
}

// refuses every other operation.
func (s *floorServer) patch(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Operations []struct {
			Op    string         `json:"op"`
			Value map[string]any `json:"value"`
		} `json:"Operations"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		floorError(w, http.StatusBadRequest, "body is not a PatchOp: "+err.Error())
		return
	}
	if len(body.Operations) != 1 || !strings.EqualFold(body.Operations[0].Op, "replace") ||
		len(body.Operations[0].Value) != 1 || body.Operations[0].Value["active"] != false {
		floorError(w, http.StatusBadRequest, "only the deactivation is served here")
		return
	}
	s.mu.RLock()
	old := s.byID[r.PathValue("id")]
	s.mu.RUnlock()
	if old == nil {
		floorError(w, http.StatusNotFound, "no such user")
		return
	}
	u := *old
	now := time.Now().UTC()
	rev, ok := s.write(w, r, func(now time.Time) []backend.ConditionalAction { return floorDeactivateActions(old, now) }, now)
	if !ok {
		return
	}
	u.rev = rev
	created, _ := old.attrs["meta"].(map[string]any)["created"].(string)
	createdAt, _ := time.Parse(floorTimeFormat, created)
	u.attrs = maps.Clone(old.attrs)
	u.attrs["active"] = false
	u.attrs["meta"] = floorMeta(&u, createdAt, now)
	var err error
	if u.json, err = json.Marshal(u.attrs); err != nil {
		floorError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	if s.byID[u.id] == old {
		s.byID[u.id], s.byName[u.userName] = &u, &u
	}
	s.mu.Unlock()
	floorAnswer(w, http.StatusOK, &u, u.json)
}

const floorTimeFormat = "2006-01-02T15:04:05.000Z"

func floorMeta(u *floorUser, created, modified time.Time) map[string]any {
	return map[string]any{
		"resourceType": "User",
		"created":      created.Format(floorTimeFormat),
		"lastModified": modified.Format(floorTimeFormat),
		"location":     "https://gatehouse.example.com" + floorBase + "/Users/" + u.id,
		"version":      `W/"` + u.rev + `"`,
	}
}

// The sizes of what one SCIM create and one deactivation store on gatehouse's SQLite backend, read
// from a real server's database (values in bytes; keys are built the same way below).
const (
	floorRecordSize  = 310 // scim/okta/users/<id>: the SCIM record
	floorIndexSize   = 36  // scim/okta/usernames/<userName>, .../user_external_id_index/<externalId>/<id>
	floorUserSize    = 240 // users/<userName>: the Gatehouse user
	floorLockSize    = 412 // locks/scim-okta-<hash>: the deactivation lock
	floorCreateEvent = 219 // the create's audit event
	floorDeactEvent1 = 223 // the deactivation's two audit events
	floorDeactEvent2 = 296
	floorEventTTL    = 90 * 24 * time.Hour
)

// floorCreateActions is the AtomicWrite of a SCIM create: the record, its two index entries and
// the user, each required absent; the lock name required absent; the audit event.
func floorCreateActions(u *floorUser, now time.Time) []backend.ConditionalAction {
	return []backend.ConditionalAction{
		floorPut("scim/okta/users/"+u.id, backend.NotExists(), floorRecordSize, time.Time{}),
		floorPut("scim/okta/usernames/"+u.userName, backend.NotExists(), floorIndexSize, time.Time{}),
		floorPut("scim/okta/user_external_id_index/"+u.externalID+"/"+u.id, backend.NotExists(), floorIndexSize, time.Time{}),
		floorPut("users/"+u.userName, backend.NotExists(), floorUserSize, time.Time{}),
		{Key: floorLockKey(u), Condition: backend.NotExists(), Action: backend.Nop()},
		floorEvent(now, floorCreateEvent),
	}
}

// floorDeactivateActions is the AtomicWrite of a deactivation: the record rewritten and the user
// deleted, both at the revision the create wrote; the lock written, required absent; two audit
// events.
func floorDeactivateActions(u *floorUser, now time.Time) []backend.ConditionalAction {
	return []backend.ConditionalAction{
		floorPut("scim/okta/users/"+u.id, backend.Revision(u.rev), floorRecordSize, time.Time{}),
		{Key: backend.Key("users/" + u.userName), Condition: backend.Revision(u.rev), Action: backend.Delete()},
		floorPut(string(floorLockKey(u)), backend.NotExists(), floorLockSize, time.Time{}),
		floorEvent(now, floorDeactEvent1),
		floorEvent(now, floorDeactEvent2),
	}
}

func floorLockKey(u *floorUser) backend.Key {
	sum := sha256.Sum256([]byte(strings.ToLower(u.userName)))
	return backend.Key("locks/scim-okta-" + hex.EncodeToString(sum[:16]))
}

func floorEvent(now time.Time, size int) backend.ConditionalAction {
	return floorPut("events/"+now.Format(time.RFC3339Nano)+"/"+uuid.NewString(), backend.Whatever(), size, now.Add(floorEventTTL))
}

// floorValue is what the floor stores: SQLite keeps bytes as they are, so only their number
// matters to a write's cost, and every value is a prefix of these random bytes (the floor spends
// nothing on making them).
var floorValue = func() []byte {
	v := make([]byte, 1024)
	_, _ = rand.Read(v)
	return v
}()

// floorPut puts size bytes at key.
func floorPut(key string, cond backend.Condition, size int, expires time.Time) backend.ConditionalAction {
	return backend.ConditionalAction{Key: backend.Key(key), Condition: cond, Action: backend.Put(backend.Item{Value: floorValue[:size:size], Expires: expires})}
}

// floorWriteError answers a failed write: a condition that failed is a conflict (the name is
// taken, or the user changed meanwhile), anything else the server's own failure.
func floorWriteError(w http.ResponseWriter, err error) {
	if trace.IsCompareFailed(err) || trace.IsAlreadyExists(err) {
		floorError(w, http.StatusConflict, "conflict: "+err.Error())
		return
	}
	floorError(w, http.StatusInternalServerError, "write failed: "+err.Error())
}

func floorAnswer(w http.ResponseWriter, code int, u *floorUser, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/scim+json")
	h.Set("Cache-Control", "no-store")
	h.Set("ETag", `W/"`+u.rev+`"`)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func floorError(w http.ResponseWriter, code int, detail string) {
	body, _ := json.Marshal(map[string]any{
		"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"},
		"status":  strconv.Itoa(code),
		"detail":  detail,
	})
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// floorNoHTTP runs the lite-nohttp variant: the floor process makes the writes itself (floorWrites)
// and reports their rates and its CPU, read with getrusage around each phase.
func floorNoHTTP(b *testing.B, users int) floorResult {
	createConc := envInt(b, "SCIM_BENCH_CREATE_CONCURRENCY", 32)
	deactivations := min(users, envInt(b, "SCIM_BENCH_DEACTIVATIONS", 5_000))
	b.ResetTimer()
	srv, stop := startFloorServer(b, floorLiteNoHTTP, fmt.Sprintf("%s=%d,%d,%d", floorEnvWrites, users, deactivations, createConc))
	var line string
	select {
	case line = <-srv.result:
	case err := <-srv.done:
		b.Fatalf("floor writes failed (%v):\n%s", err, srv.out.String())
	case <-time.After(10 * time.Minute):
		b.Fatalf("floor writes did not finish:\n%s", srv.out.String())
	}
	b.StopTimer()
	var res floorWritesResult
	require.NoError(b, json.Unmarshal([]byte(line), &res))
	dataMB := dirSizeMB(srv.dir)
	stop()
	r := floorResult{variant: floorLiteNoHTTP, deactP99: res.DeactP99, loadResult: loadResult{
		users:      users,
		createRate: float64(users) / res.CreateSecs, deacRate: float64(deactivations) / res.DeactSecs,
		createP99: res.CreateP99,
		cpuCreate: res.CreateCPU / time.Duration(users), cpuDeac: res.DeactCPU / time.Duration(max(1, deactivations)),
		dataDirMB: dataMB,
	}}
	b.ReportMetric(r.createRate, "creates/s")
	b.ReportMetric(r.deacRate, "deactivations/s")
	b.ReportMetric(ms(r.cpuCreate), "cpu-ms/create")
	b.ReportMetric(ms(r.cpuDeac), "cpu-ms/deactivation")
	return r
}

// floorWritesResult is what floorWrites measured, sent to the benchmark as JSON.
type floorWritesResult struct {
	CreateSecs, DeactSecs float64
	CreateCPU, DeactCPU   time.Duration
	CreateP99, DeactP99   time.Duration
}

// floorWrites is lite-nohttp's load, in the floor process: the creates of floorCreateActions from
// createConc goroutines, then the deactivations of floorDeactivateActions from 16, each an
// AtomicWrite on be. It prints the result for floorNoHTTP.
func floorWrites(t *testing.T, be *lite.Backend) {
	var users, deactivations, createConc int
	_, err := fmt.Sscanf(os.Getenv(floorEnvWrites), "%d,%d,%d", &users, &deactivations, &createConc)
	require.NoError(t, err, floorEnvWrites)
	ctx := context.Background()
	all := make([]*floorUser, users)
	var res floorWritesResult

	cpu0, t0 := floorSelfCPU(t), time.Now()
	createLat := floorWorkers(t, createConc, users, func(i int) error {
		u := &floorUser{id: uuid.NewString(), userName: benchUser(i), externalID: "00u" + strconv.Itoa(i)}
		rev, err := be.AtomicWrite(ctx, floorCreateActions(u, time.Now().UTC()))
		u.rev, all[i] = rev, u
		return trace.Wrap(err)
	})
	res.CreateSecs, res.CreateCPU = time.Since(t0).Seconds(), floorSelfCPU(t)-cpu0
	res.CreateP99 = percentile(createLat, .99)

	cpu0, t0 = floorSelfCPU(t), time.Now()
	deactLat := floorWorkers(t, 16, deactivations, func(i int) error {
		_, err := be.AtomicWrite(ctx, floorDeactivateActions(all[i], time.Now().UTC()))
		return trace.Wrap(err)
	})
	res.DeactSecs, res.DeactCPU = time.Since(t0).Seconds(), floorSelfCPU(t)-cpu0
	res.DeactP99 = percentile(deactLat, .99)

	out, err := json.Marshal(res)
	require.NoError(t, err)
	fmt.Println(floorDonePrefix + string(out))
}

// floorWorkers is runParallel for the floor process: n jobs on conc goroutines, each job's
// latency, failing t on the first error.
func floorWorkers(t *testing.T, conc, n int, job func(i int) error) []time.Duration {
	var next atomic.Int64
	lat := make([]time.Duration, n)
	errs := make(chan error, conc)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				t0 := time.Now()
				if err := job(i); err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)
	return lat
}

// floorSelfCPU is the user+system CPU this process has used, all threads (what procCPU reads
// from /proc for another process, at a finer grain).
func floorSelfCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestFloorServerAnswers checks that the floor answers what BenchmarkSCIMFloor's client checks,
// in the sizes of gatehouse's own answers to the same requests (read from a real server: 728 bytes
// for benchUser(0)'s create, 858 for its lookup, 729 for its deactivation), and refuses what it
// does not serve.
func TestFloorServerAnswers(t *testing.T) {
	t.Parallel()
	fs := newFloorServer("tok")
	fs.seq.Store(15) // a fresh gatehouse's first SCIM write has revision 16: the same ETag length
	h := fs.routes()
	create, err := json.Marshal(oktaUser(benchUser(0), "00u0"))
	require.NoError(t, err)
	deactivate, err := json.Marshal(patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}}))
	require.NoError(t, err)
	rename, err := json.Marshal(patchBody(map[string]any{"op": "replace", "value": map[string]any{"userName": "x"}}))
	require.NoError(t, err)
	lookup := func(name string) string {
		return floorBase + "/Users?filter=" + url.QueryEscape(`userName eq "`+name+`"`) + "&startIndex=1&count=100"
	}
	var id string
	for _, step := range []struct {
		name, method, path, token string
		body                      []byte
		code, size                int // size 0: not checked
		check                     func(t *testing.T, body map[string]any)
	}{
		{name: "no token", method: http.MethodPost, path: floorBase + "/Users", token: "", body: create, code: http.StatusUnauthorized},
		{name: "wrong token", method: http.MethodGet, path: lookup(benchUser(0)), token: "tok2", code: http.StatusUnauthorized},
		{name: "not JSON", method: http.MethodPost, path: floorBase + "/Users", token: "tok", body: []byte("{"), code: http.StatusBadRequest},
		{name: "create", method: http.MethodPost, path: floorBase + "/Users", token: "tok", body: create, code: http.StatusCreated, size: 728,
			check: func(t *testing.T, body map[string]any) {
				id, _ = body["id"].(string)
				require.NotEmpty(t, id)
				require.NotContains(t, body, "password")
			}},
		{name: "create again", method: http.MethodPost, path: floorBase + "/Users", token: "tok", body: create, code: http.StatusConflict},
		{name: "lookup", method: http.MethodGet, path: lookup(benchUser(0)), token: "tok", code: http.StatusOK, size: 858,
			check: func(t *testing.T, body map[string]any) { require.Equal(t, 1.0, body["totalResults"]) }},
		{name: "lookup of nobody", method: http.MethodGet, path: lookup(benchUser(1)), token: "tok", code: http.StatusOK,
			check: func(t *testing.T, body map[string]any) { require.Equal(t, 0.0, body["totalResults"]) }},
		{name: "other filter", method: http.MethodGet, path: floorBase + "/Users?filter=" + url.QueryEscape(`externalId eq "00u0"`), token: "tok", code: http.StatusBadRequest},
		{name: "other patch", method: http.MethodPatch, path: floorBase + "/Users/{id}", token: "tok", body: rename, code: http.StatusBadRequest},
		{name: "deactivate nobody", method: http.MethodPatch, path: floorBase + "/Users/nobody", token: "tok", body: deactivate, code: http.StatusNotFound},
		{name: "deactivate", method: http.MethodPatch, path: floorBase + "/Users/{id}", token: "tok", body: deactivate, code: http.StatusOK, size: 729,
			check: func(t *testing.T, body map[string]any) { require.Equal(t, false, body["active"]) }},
		{name: "lookup after", method: http.MethodGet, path: lookup(benchUser(0)), token: "tok", code: http.StatusOK,
			check: func(t *testing.T, body map[string]any) {
				require.Equal(t, false, body["Resources"].([]any)[0].(map[string]any)["active"])
			}},
	} {
		req := httptest.NewRequest(step.method, strings.ReplaceAll(step.path, "{id}", id), bytes.NewReader(step.body))
		if step.token != "" {
			req.Header.Set("Authorization", "Bearer "+step.token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		require.Equal(t, step.code, w.Code, "%s: %s", step.name, w.Body)
		require.Equal(t, "application/scim+json", w.Header().Get("Content-Type"), step.name)
		if step.size != 0 {
			require.Equal(t, step.size, w.Body.Len(), "%s: %s", step.name, w.Body)
		}
		var body map[string]any
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body), step.name)
		if step.check != nil {
			step.check(t, body)
		}
	}
}
