// Package server is Gatehouse's SCIM 2.0 HTTP endpoint (RFC 7644), mounted on the web listener at
// /v1/webapi/scim/{plugin}/: Users, Groups, ServiceProviderConfig, ResourceTypes and Schemas, and
// the POST searches /Users/.search, /Groups/.search and /.search (search.go). Lists page, filter,
// project and sort (sort.go) alike in the GET and the POST forms.
//
// It speaks HTTP and SCIM only. Users, groups, deactivation locks, plugin settings and tokens live
// behind the Users, Groups, TokenChecker and StatusRecorder interfaces (seam.go, implemented by
// lib/auth/scimprov); this package maps SCIM representations to scimrecord records and back, and
// owns the protocol rules: bearer authentication, limits, ETags, read-modify-write retries,
// filters, paging and projection.
//
// Request pipeline, in order:
//
//  1. Routing: the plugin name and the operation are read from the path (unknown paths are
//     answered only after authentication, so an unauthenticated caller learns nothing).
//  2. Authentication: `Authorization: Bearer <token>`, checked by TokenChecker.AuthenticateSCIM,
//     which resolves the plugin once for both its settings and its token, with the source's
//     failure limiter lent as a scimrecord.AuthGate (sourceGate). In order: a token equal to the
//     one already verified is accepted at once, whatever the source's failures (a valid token is
//     never refused by the limiter); otherwise the source reserves one failure, atomically,
//     before anything is verified (N concurrent bad tokens cannot all pass a "below the limit"
//     check), and a source that has AuthFailureLimit failures in the current AuthFailureWindow
//     gets 429 + Retry-After, unless its token passed the provisioner's fingerprint prefilter
//     (then only bcrypt can refuse it, and the right token must get through). Success gives the
//     reservation back. The source is the client address, IPv6 grouped by /64; X-Forwarded-For
//     is read only from configured trusted proxies (Config.Sources). A missing or bad token, an
//     unknown plugin and a plugin with SCIM disabled all get the same 401 (SCIM body,
//     `WWW-Authenticate: Bearer`) after the same work: an unauthenticated caller cannot tell
//     whether a plugin exists or is enabled.
//  3. Per-plugin rate limit (token bucket, SCIMSettings.RateLimit/RateBurst, defaults
//     DefaultRateLimit/DefaultRateBurst): 429 + Retry-After.
//  4. Body: over protocol.MaxBodyBytes → 413, after reading and discarding up to
//     protocol.MaxDrainBytes more (within BodyDrainTimeout) so that a client that writes its whole
//     body before reading gets the answer; Content-Type must be application/scim+json or
//     application/json (any charset) → else 415.
//  5. The operation. Every error is a SCIM error body (scimerr); a panic is recovered into a
//     logged 500 with a SCIM body.
//
// Every request is counted in Prometheus (gatehouse_scim_requests_total by plugin, operation and
// code; gatehouse_scim_request_duration_seconds). Authenticated requests are reported to
// StatusRecorder.RecordSCIMRequest (with the error for 5xx answers); unauthenticated ones are not,
// so that anybody on the network cannot move a plugin's "last request" status.
//
// Okta sends nothing when a user is suspended in Okta; suspension is therefore invisible here and
// the Gatehouse user stays active until Okta deactivates or unassigns them.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/gatehouse/gatehouse/lib/abuse"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/plugins/scim/protocol"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// MountPrefix is where the handler is mounted on the web listener; a plugin's SCIM base URL is
// MountPrefix + plugin name.
const MountPrefix = "/v1/webapi/scim/"

// Defaults.
const (
	// DefaultRateLimit and DefaultRateBurst bound one plugin's requests per second. Okta sends
	// bursts of a few hundred requests (an import or a group push of a large group), far below
	// this; the limit is there to keep a runaway or stolen-token client from monopolizing the
	// server, and it sits well above what a 2-core server can serve (about 10,000 filter
	// lookups/s, measured) so that it never throttles a legitimate load (nor the load
	// benchmark). A plugin's SCIMSettings override both.
	DefaultRateLimit = 25000
	DefaultRateBurst = 50000
	// DefaultAuthFailureLimit failed authentications per DefaultAuthFailureWindow from one source
	// (address, or IPv6 /64) are allowed; the next requests from it get 429 until the window
	// ends, except with a token that passes the provisioner's prefilter.
	DefaultAuthFailureLimit  = 10
	DefaultAuthFailureWindow = time.Minute
	// DefaultUpdateRetries is how many times a PUT or PATCH without If-Match re-reads and re-applies
	// when its conditional write loses a race.
	DefaultUpdateRetries = 5
	// DefaultMaxSortResults bounds the memory of one sorted query (about 150 bytes per match,
	// 30 MB at the bound) while sorting every user of a 100,000-user organisation; see sort.go.
	DefaultMaxSortResults = 200_000
	// DefaultBodyDrainTimeout bounds how long an oversized body is read and discarded before
	// the 413: long enough for a client on a slow link to finish sending protocol.MaxDrainBytes,
	// short enough that a client that stalls cannot hold a handler.
	DefaultBodyDrainTimeout = 10 * time.Second
	// maxTrackedSources bounds the source limiter's memory.
	maxTrackedSources = 100_000
)

// Config configures the SCIM endpoint.
type Config struct {
	// Users, Groups, Tokens and Status are the auth-service side (seam.go); one value may
	// implement all four. Required.
	Users  Users
	Groups Groups
	Tokens TokenChecker
	Status StatusRecorder
	// Registerer receives the endpoint's metrics; nil means a private registry (not exported).
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock defaults to the real clock. It drives rate limits, the source limiter and latencies.
	Clock clockwork.Clock
	// PublicURL is the public origin of the web listener ("https://gatehouse.example.com"), used in
	// Location headers and meta.location. Empty means "https://" + the request's Host.
	PublicURL string
	// DefaultRateLimit and DefaultRateBurst apply to plugins whose settings set none.
	DefaultRateLimit int
	DefaultRateBurst int
	// AuthFailureLimit and AuthFailureWindow configure the per-source failure limiter.
	AuthFailureLimit  int
	AuthFailureWindow time.Duration
	// Sources resolves a request's client (trusted proxies, IPv6 /64 grouping); nil trusts no
	// proxy: the client is the TCP peer.
	Sources *abuse.Sources
	// UpdateRetries bounds read-modify-write retries without If-Match.
	UpdateRetries int
	// MaxSortResults is the most matches a sorted query sorts (400 tooMany beyond), and the most
	// entries the sorted-list snapshots hold together; DefaultMaxSortResults if zero.
	MaxSortResults int
	// SortSnapshotTTL is how long a sorted list serves the next pages of the same query
	// (sortcache.go); DefaultSortSnapshotTTL if zero, no snapshots if negative.
	SortSnapshotTTL time.Duration
	// BodyDrainTimeout bounds the time spent discarding a refused oversized body before the 413
	// (see protocol.DrainBody); defaults to DefaultBodyDrainTimeout.
	BodyDrainTimeout time.Duration
}

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.Users == nil:
		return trace.BadParameter("scim server: missing Users")
	case c.Groups == nil:
		return trace.BadParameter("scim server: missing Groups")
	case c.Tokens == nil:
		return trace.BadParameter("scim server: missing Tokens")
	case c.Status == nil:
		return trace.BadParameter("scim server: missing Status")
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	defaults.Logger(&c.Logger, "scim")
	defaults.Clock(&c.Clock)
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "https://") && !strings.HasPrefix(c.PublicURL, "http://") {
		c.PublicURL = "https://" + c.PublicURL
	}
	defaults.IfNotPositive(&c.DefaultRateLimit, DefaultRateLimit)
	defaults.IfNotPositive(&c.DefaultRateBurst, DefaultRateBurst)
	defaults.IfNotPositive(&c.AuthFailureLimit, DefaultAuthFailureLimit)
	defaults.IfNotPositive(&c.AuthFailureWindow, DefaultAuthFailureWindow)
	defaults.IfNotPositive(&c.UpdateRetries, DefaultUpdateRetries)
	defaults.IfNotPositive(&c.MaxSortResults, DefaultMaxSortResults)
	defaults.IfZero(&c.SortSnapshotTTL, DefaultSortSnapshotTTL)
	defaults.IfNotPositive(&c.BodyDrainTimeout, DefaultBodyDrainTimeout)
	return nil
}

// Server is the SCIM endpoint, an http.Handler for every path under MountPrefix.
type Server struct {
	cfg      Config
	log      *slog.Logger
	metrics  *metrics
	failures *abuse.FailureLimiter
	// legacy is the one slot through which a throttled source may still reach bcrypt for a
	// credential without a fingerprint (scimrecord.PrefilterUnknown): such a token cannot be
	// told from a wrong one before bcrypt, so a throttled flood gets at most one comparison at
	// a time, and the real token still has a way through until its first success adds the
	// fingerprint.
	legacy *abuse.Semaphore
	// sortSlots bounds the sorted queries scanning at once (sort.go).
	sortSlots *abuse.Semaphore
	// snaps are the sorted-list snapshots (sortcache.go).
	snaps *snapshots
	// users and groups serve /Users and /Groups (handler.go).
	users  *resourceHandler[scimrecord.UserRecord]
	groups *resourceHandler[scimrecord.GroupRecord]
	routes routeTables

	mu       sync.Mutex
	limiters map[string]*pluginLimiter
	// bases caches baseURL's answers (baseKey → string), at most maxCachedBases of them.
	bases      sync.Map
	basesCount atomic.Int32
}

// pluginLimiter is one plugin's token bucket and the limit and burst last set on it.
type pluginLimiter struct {
	lim          *rate.Limiter
	limit, burst int
}

// New returns the endpoint and registers its metrics.
func New(cfg Config) (*Server, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		metrics:   m,
		failures:  abuse.NewFailureLimiter(cfg.Clock, cfg.AuthFailureLimit, cfg.AuthFailureWindow, maxTrackedSources),
		legacy:    abuse.NewSemaphore(1),
		sortSlots: abuse.NewSemaphore(sortConcurrency),
		snaps:     newSnapshots(),
		limiters:  map[string]*pluginLimiter{},
	}
	s.users, s.groups = newUserHandler(s), newGroupHandler(s)
	s.routes = newRouteTables(s)
	return s, nil
}

// request is one routed SCIM request.
type request struct {
	plugin string
	op     string
	id     string
	// base is the plugin's SCIM base URL, without a trailing slash.
	base    string
	handler func(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error
}

// exchange is what ServeHTTP allocates for one request, in one allocation: the writer that
// records the status, the routed request and the source's failure gate.
type exchange struct {
	sw   statusWriter
	req  request
	gate sourceGate
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Clock.Now()
	x := &exchange{sw: statusWriter{ResponseWriter: w}}
	sw, req := &x.sw, &x.req
	routeErr := s.routeInto(r, req)
	pluginLabel := unauthenticatedPlugin
	authenticated := false
	var failure error
	defer func() {
		if v := recover(); v != nil {
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			s.log.Error("SCIM handler panicked.", "op", req.op, "panic", v)
			failure = trace.Errorf("handler panic")
			if !sw.wroteHeader {
				scimerr.Write(sw, nil, scimerr.Internal())
			} else {
				sw.status = http.StatusInternalServerError
			}
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		s.metrics.observe(pluginLabel, req.op, status, s.cfg.Clock.Since(start))
		if authenticated {
			if status < 500 {
				failure = nil
			} else if failure == nil {
				failure = trace.Errorf("SCIM request answered %d", status)
			}
			s.cfg.Status.RecordSCIMRequest(context.WithoutCancel(r.Context()), req.plugin, failure)
		}
	}()

	ctx := r.Context()
	settings, err := s.authenticate(ctx, r, req.plugin, &x.gate)
	if err != nil {
		scimerr.Write(sw, s.log, err)
		return
	}
	authenticated, pluginLabel = true, req.plugin
	// The request's start is the rate limiter's now: one clock read fewer per request.
	if err := s.allow(req.plugin, settings, start); err != nil {
		scimerr.Write(sw, s.log, err)
		return
	}
	if routeErr != nil {
		scimerr.Write(sw, s.log, routeErr)
		return
	}
	if r.ContentLength > protocol.MaxBodyBytes {
		// A client that waits for 100 Continue has sent nothing yet: the answer alone is enough.
		// A body that cannot be drained within the cap is not read at all.
		if !protocol.ExpectsContinue(r) && r.ContentLength <= protocol.MaxBodyBytes+protocol.MaxDrainBytes {
			s.drain(sw, r, req)
		}
		scimerr.Write(sw, s.log, scimerr.New(http.StatusRequestEntityTooLarge, "",
			"request body is larger than %d bytes", protocol.MaxBodyBytes))
		return
	}
	req.base = s.baseURL(r, req.plugin)
	if writeOps[req.op] {
		// Whatever the outcome (a failed group write may have written some members), and on a
		// panic too.
		defer s.snaps.wrote(req.plugin)
	}
	if err := req.handler(ctx, sw, r, req); err != nil {
		se := scimerr.From(err)
		switch {
		case se.Status >= 500:
			failure = err
		case se.Status == http.StatusRequestEntityTooLarge && !sw.wroteHeader:
			// A body without Content-Length found too large while reading it.
			s.drain(sw, r, req)
		}
		scimerr.Write(sw, s.log, err)
	}
}

// drain discards the rest of an oversized body so that the client can read the 413 (see
// protocol.DrainBody). Only authenticated requests get here: an unauthenticated caller's body is
// never read.
func (s *Server) drain(w http.ResponseWriter, r *http.Request, req *request) {
	if !protocol.DrainBody(w, r, s.cfg.BodyDrainTimeout) {
		s.log.DebugContext(r.Context(), "Left an oversized SCIM request body unread.", "plugin", req.plugin, "op", req.op)
	}
}

// unauthenticatedPlugin is the plugin label of requests that were not authenticated: the path's
// plugin name is attacker-chosen and must not create metric series.
const unauthenticatedPlugin = "-"

// maxCachedBases bounds baseURL's cache: plugins are few, and so are the Hosts an authenticated
// client sends when no PublicURL is configured.
const maxCachedBases = 64

// baseKey names one cached base URL: the request's Host counts only without a PublicURL.
type baseKey struct{ host, plugin string }

// baseURL is the plugin's SCIM base URL, built once per plugin (and Host) rather than on every
// request. Only authenticated requests get here, so the plugin exists; past maxCachedBases,
// answers are built and not kept.
func (s *Server) baseURL(r *http.Request, plugin string) string {
	k := baseKey{plugin: plugin}
	if s.cfg.PublicURL == "" {
		k.host = r.Host
	}
	if v, ok := s.bases.Load(k); ok {
		return v.(string)
	}
	origin := s.cfg.PublicURL
	if origin == "" {
		origin = "https://" + r.Host
	}
	base := origin + MountPrefix + plugin
	if s.basesCount.Load() < maxCachedBases {
		if _, loaded := s.bases.LoadOrStore(k, base); !loaded {
			s.basesCount.Add(1)
		}
	}
	return base
}

// authenticate runs the bearer check with the source's failure limiter. The only errors
// returned are 401, 429 and 500.
func (s *Server) authenticate(ctx context.Context, r *http.Request, plugin string, gate *sourceGate) (*scimrecord.SCIMSettings, error) {
	*gate = sourceGate{s: s, r: r}
	fail := func(reason string) error {
		s.log.WarnContext(ctx, "Refused a SCIM request.", "plugin_path", truncate(plugin, 64), "source", gate.Source(), "reason", reason)
		return scimerr.Unauthorized()
	}
	token, ok := bearerToken(r)
	if !ok || !validPluginName(plugin) {
		// Nothing to verify; the failure still counts.
		if err := gate.Admit(scimrecord.PrefilterMiss); err != nil {
			return nil, scimerr.TooManyRequests(gate.wait)
		}
		gate.Done(false)
		if !ok {
			return nil, fail("missing bearer token")
		}
		return nil, fail("bad bearer token or no such plugin")
	}
	settings, err := s.cfg.Tokens.AuthenticateSCIM(ctx, plugin, token, gate)
	// err != nil first: trace's Is* checks allocate even for a nil error, on every request.
	switch {
	case err != nil && trace.IsLimitExceeded(err) && gate.wait > 0:
		return nil, scimerr.TooManyRequests(gate.wait)
	case err != nil && trace.IsAccessDenied(err):
		return nil, fail("bad bearer token, no such plugin, or SCIM disabled")
	case err != nil:
		return nil, trace.Wrap(err)
	case settings == nil || !settings.Enabled:
		return nil, fail("SCIM is disabled for the plugin")
	}
	return settings, nil
}

// sourceGate is the failure limiter of one request's source, lent to the provisioner's token
// check (scimrecord.AuthGate).
type sourceGate struct {
	s *Server
	// r is the request; source, its key (Config.Sources), is worked out on first use: a
	// request with the token already verified never needs it.
	r      *http.Request
	source string
	// reserved: Admit counted a failure, to give back on success.
	reserved bool
	// legacySlot: Admit took Server.legacy, to release in Done.
	legacySlot bool
	// wait is the Retry-After of a refusal.
	wait time.Duration
}

var _ scimrecord.AuthGate = (*sourceGate)(nil)

func (g *sourceGate) Source() string {
	if g.source == "" {
		g.source = g.s.cfg.Sources.Key(g.r)
	}
	return g.source
}

// Admit reserves a failure; a throttled source goes on only with a token that may be right.
func (g *sourceGate) Admit(p scimrecord.Prefilter) error {
	wait := g.s.failures.Reserve(g.Source())
	if wait == 0 {
		g.reserved = true
		return nil
	}
	switch p {
	case scimrecord.PrefilterMatch:
		return nil
	case scimrecord.PrefilterUnknown:
		if g.s.legacy.TryAcquire() {
			g.legacySlot = true
			return nil
		}
	}
	g.wait = wait
	return trace.LimitExceeded("too many failed authentications from this source")
}

// Done gives the reservation back on success, and counts a failure that was let through
// without one.
func (g *sourceGate) Done(ok bool) {
	switch {
	case ok && g.reserved:
		g.s.failures.Refund(g.Source())
	case !ok && !g.reserved:
		g.s.failures.Add(g.Source())
	}
	if g.legacySlot {
		g.s.legacy.Release()
		g.legacySlot = false
	}
	g.reserved = false
}

// allow applies the plugin's rate limit at now.
func (s *Server) allow(plugin string, settings *scimrecord.SCIMSettings, now time.Time) error {
	limit, burst := s.cfg.DefaultRateLimit, s.cfg.DefaultRateBurst
	if settings.RateLimit > 0 {
		limit = settings.RateLimit
	}
	if settings.RateBurst > 0 {
		burst = settings.RateBurst
	}
	s.mu.Lock()
	pl, ok := s.limiters[plugin]
	if !ok {
		pl = &pluginLimiter{lim: rate.NewLimiter(rate.Limit(limit), burst), limit: limit, burst: burst}
		// A new bucket starts full at the limiter's creation time.
		pl.lim.AllowN(now, 0)
		s.limiters[plugin] = pl
	} else {
		// Compared with what was last set rather than read back from the limiter: each read
		// takes the limiter's lock.
		if pl.limit != limit {
			pl.lim.SetLimitAt(now, rate.Limit(limit))
			pl.limit = limit
		}
		if pl.burst != burst {
			pl.lim.SetBurstAt(now, burst)
			pl.burst = burst
		}
	}
	lim := pl.lim
	s.mu.Unlock()
	if !lim.AllowN(now, 1) {
		// One token comes back every 1/limit seconds; Retry-After is whole seconds, at least 1.
		return scimerr.TooManyRequests(time.Duration(float64(time.Second) / float64(limit)))
	}
	return nil
}

// bearerToken returns the token of an `Authorization: Bearer <token>` header (scheme
// case-insensitive).
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || len(token) > 4096 {
		return "", false
	}
	return token, true
}

// validPluginName accepts the names resources can have, so that junk never reaches storage.
func validPluginName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// statusWriter records the status code written.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
