package scimprov

// Bearer token checks, in this order (AuthenticateSCIM):
//
//  1. Remembered: the token's SHA-256 is compared, in constant time, with
//     the digest of the token already verified for each credential
//     version. A match is accepted at once, and no failure limiter is
//     consulted: a valid token is never refused because others sent bad
//     ones from the same address.
//  2. Prefilter: the token's fingerprint (services.SCIMTokenFingerprint,
//     8 bytes of a SHA-256 of the token) is compared with the one stored
//     beside each bcrypt hash. A wrong token stops here, without bcrypt.
//     An unknown plugin, a plugin with SCIM off and a plugin without
//     credentials do the same work against a decoy fingerprint (and, when
//     the settings are read from the backend, the same credentials read),
//     and are answered the same: nobody learns which plugins exist.
//  3. Gate: the SCIM endpoint's failure limiter (scimrecord.AuthGate)
//     reserves one failure for the source, atomically, before anything is
//     verified. A throttled source is refused, unless its token passed the
//     prefilter: then only bcrypt can say no, and the right token must
//     still get through.
//  4. Hash: bcrypt runs only for a token that passed the prefilter, or for a
//     credential written before fingerprints existed (which gets its
//     fingerprint on its first successful check, since the plaintext is at
//     hand then). At most hashSlots comparisons run at once, and
//     concurrent checks of the same token and credential version share one
//     comparison. Success gives the reservation back and remembers the
//     token's digest.
//
// Refusals are audited, aggregated per source: the first of a minute is an
// event of its own, the others one event with their count (each would
// otherwise be a backend write that any unauthenticated client can cause).

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gravitational/trace"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/lib/abuse"
	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxRejected bounds the digests of refused tokens remembered per
// credential: enough to spare bcrypt for a client retrying a stale token,
// too few to matter for memory.
const maxRejected = 256

// Refusal aggregation: one window per source, bounded in memory.
const (
	denialWindow     = time.Minute
	maxDenialSources = 10_000
)

// EventTokenDenied is the audit event of a refused SCIM bearer token.
const EventTokenDenied = "scim.token.denied"

// decoyFingerprint is what the prefilter compares a token with when there
// is no credential to compare it with, so that the work is the same.
var decoyFingerprint = services.SCIMTokenFingerprint("gatehouse: no such credential")

// decoyLabels select no credential; reading them costs what reading a real
// plugin's credentials costs.
var decoyLabels = map[string]string{"gatehouse.dev/scim-decoy": "none"}

// credKey names one version of a credential: a rotation writes a new
// revision, so remembered verdicts of the old one are never consulted.
type credKey struct {
	name, revision string
}

// credVerdicts are the verdicts remembered for one credential version.
type credVerdicts struct {
	revision string
	// good is the SHA-256 digest of the token that matched the hash; a
	// bcrypt hash matches one token, so one digest is enough.
	good    [sha256.Size]byte
	hasGood bool
	// bad are digests of tokens that did not match.
	bad map[[sha256.Size]byte]struct{}
}

// tokenCache remembers bcrypt verdicts per credential name, tied to the
// credential's revision. Only SHA-256 digests of tokens are kept.
type tokenCache struct {
	mu    sync.Mutex
	creds map[string]*credVerdicts
	// flights are the bcrypt comparisons running now: concurrent requests
	// with the same token and credential version wait for the one running
	// instead of each spending ~50-100 ms of CPU on the same answer (Okta
	// opens dozens of connections at once after a rotation or a restart).
	flights map[flightKey]*flight
	// hashes bounds concurrent bcrypt comparisons (abuse.HashSlots).
	hashes *abuse.Semaphore

	denialsOnce sync.Once
	denials     *abuse.Aggregator

	// compares counts bcrypt comparisons, hashing the peak number running
	// at once, decoys the prefilter runs against the decoy (tests).
	compares, hashing, peakHashing, decoys atomic.Int64
}

type flightKey struct {
	cred   credKey
	digest [sha256.Size]byte
}

type flight struct {
	done    chan struct{}
	matched bool
	err     error
}

func (c *tokenCache) init() {
	c.creds = make(map[string]*credVerdicts)
	c.flights = make(map[flightKey]*flight)
	c.hashes = abuse.NewSemaphore(abuse.HashSlots())
}

// verify returns whether token (whose SHA-256 is digest) matches hash, the
// hash of credential version k: from a remembered verdict, from a bcrypt
// comparison of the same token and version already running, or by running
// bcrypt (once a hash slot is free) and remembering the verdict.
func (c *tokenCache) verify(ctx context.Context, k credKey, hash []byte, token string, digest [sha256.Size]byte) (bool, error) {
	if matched, known := c.lookup(k, digest); known {
		return matched, nil
	}
	fk := flightKey{cred: k, digest: digest}
	c.mu.Lock()
	if f, ok := c.flights[fk]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.matched, trace.Wrap(f.err)
		case <-ctx.Done():
			return false, trace.Wrap(ctx.Err())
		}
	}
	f := &flight{done: make(chan struct{})}
	c.flights[fk] = f
	c.mu.Unlock()
	if f.err = c.hashes.Acquire(ctx); f.err == nil {
		n := c.hashing.Add(1)
		for peak := c.peakHashing.Load(); n > peak && !c.peakHashing.CompareAndSwap(peak, n); peak = c.peakHashing.Load() {
		}
		c.compares.Add(1)
		f.matched = bcrypt.CompareHashAndPassword(hash, []byte(token)) == nil
		c.hashing.Add(-1)
		c.hashes.Release()
		c.remember(k, digest, f.matched)
	}
	c.mu.Lock()
	delete(c.flights, fk)
	c.mu.Unlock()
	close(f.done)
	return f.matched, trace.Wrap(f.err)
}

// lookup returns the remembered verdict for digest under k: matched, and
// known (false when bcrypt must decide).
func (c *tokenCache) lookup(k credKey, digest [sha256.Size]byte) (matched, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.creds[k.name]
	if v == nil || v.revision != k.revision {
		return false, false
	}
	if v.hasGood && subtle.ConstantTimeCompare(v.good[:], digest[:]) == 1 {
		return true, true
	}
	if _, bad := v.bad[digest]; bad {
		return false, true
	}
	return false, false
}

// remember stores bcrypt's verdict for digest under k, dropping verdicts of
// other revisions of the same credential.
func (c *tokenCache) remember(k credKey, digest [sha256.Size]byte, matched bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.creds[k.name]
	if v == nil || v.revision != k.revision {
		v = &credVerdicts{revision: k.revision, bad: make(map[[sha256.Size]byte]struct{})}
		c.creds[k.name] = v
	}
	if matched {
		v.good, v.hasGood = digest, true
		return
	}
	if len(v.bad) >= maxRejected {
		clear(v.bad)
	}
	v.bad[digest] = struct{}{}
}

// pluginState is a plugin as one request sees it: from the settings view
// when it is in sync, from the backend otherwise.
type pluginState struct {
	okta       *typesv1.OktaPluginSettings
	credLabels map[string]string
	// scim is okta's SCIM settings made once per decoded plugin (view and
	// fenced reads), shared and read-only; nil when read from the backend.
	scim *scimrecord.SCIMSettings
	// creds are the credentials credLabels selects; valid when credsKnown
	// (always from the view; from the backend only once loaded).
	creds      []*credEntry
	credsKnown bool
}

// scimSettingsOf returns the SCIM settings of an Okta plugin; nil for
// another kind of plugin.
func scimSettingsOf(okta *typesv1.OktaPluginSettings) *scimrecord.SCIMSettings {
	if okta == nil {
		return nil
	}
	return &scimrecord.SCIMSettings{
		Enabled:   okta.GetScimEnabled(),
		RateLimit: int(okta.GetScimRateLimit()),
		RateBurst: int(okta.GetScimRateBurst()),
	}
}

// settings returns the SCIM settings of an Okta plugin, the caller's own
// copy; trace.NotFound for another kind of plugin.
func (ps *pluginState) settings(plugin string) (*scimrecord.SCIMSettings, error) {
	s, err := ps.sharedSettings(plugin)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if s == ps.scim {
		c := *s
		s = &c
	}
	return s, nil
}

// sharedSettings is settings without the copy: what it returns may be
// shared with other requests and must only be read.
func (ps *pluginState) sharedSettings(plugin string) (*scimrecord.SCIMSettings, error) {
	if ps.okta == nil {
		return nil, trace.NotFound("plugin %q is not a SCIM provisioning plugin", plugin)
	}
	if ps.scim != nil {
		return ps.scim, nil
	}
	return scimSettingsOf(ps.okta), nil
}

// pluginState resolves plugin once per request. trace.NotFound if there is
// no such plugin.
func (p *Provisioner) pluginState(ctx context.Context, plugin string) (*pluginState, error) {
	ps := new(pluginState)
	if _, err := p.resolveInto(ctx, plugin, ps); err != nil {
		return nil, trace.Wrap(err)
	}
	return ps, nil
}

// resolveInto resolves plugin into the caller's ps (the token check keeps
// it on its stack), which it leaves zero on an error, and says whether the
// answer came from the view (no backend read).
func (p *Provisioner) resolveInto(ctx context.Context, plugin string, ps *pluginState) (fromView bool, err error) {
	if err := scimstore.CheckPlugin(plugin); err != nil {
		return false, trace.NotFound("plugin %q not found", plugin)
	}
	if p.view != nil {
		if av, ok := p.view.get(plugin, p.cfg.Clock.Now()); ok {
			if av.plugin == nil {
				return true, trace.NotFound("plugin %q not found", plugin)
			}
			*ps = pluginState{okta: av.plugin.okta, credLabels: av.plugin.credLabels, scim: av.plugin.scim, creds: av.creds, credsKnown: true}
			return true, nil
		}
	}
	if p.fenced {
		av, ok, err := p.fencedReads.get(ctx, p.cfg.Plugins, p.cfg.Backend, plugin, p.cfg.Clock.Now())
		if err != nil {
			return false, trace.Wrap(err)
		}
		if ok {
			if av.plugin == nil {
				return false, trace.NotFound("plugin %q not found", plugin)
			}
			// fromView false: a refusal still makes the decoy's read.
			*ps = pluginState{okta: av.plugin.okta, credLabels: av.plugin.credLabels, scim: av.plugin.scim, creds: av.creds, credsKnown: true}
			return false, nil
		}
	}
	pl, err := p.cfg.Plugins.GetPlugin(ctx, plugin)
	if err != nil {
		return false, trace.Wrap(err)
	}
	*ps = pluginState{okta: pl.GetSpec().GetOkta(), credLabels: pl.GetSpec().GetStaticCredentialsRef().GetLabels()}
	return false, nil
}

// freshCredentials reads the credentials labels selects, as of a read that
// started after this call did: directly when the backend fences these reads
// (every write acknowledged before is in its memory), else through the
// shared reads of freshReads.
func (p *Provisioner) freshCredentials(ctx context.Context, labels map[string]string) ([]*typesv1.PluginStaticCredentials, error) {
	if p.fenced {
		creds, err := p.cfg.Credentials.ListPluginStaticCredentialsByLabels(ctx, labels, true)
		return creds, trace.Wrap(err)
	}
	creds, err := p.creds.list(ctx, p.cfg.Credentials.ListPluginStaticCredentialsByLabels, labels)
	return creds, trace.Wrap(err)
}

// credentials returns the credentials ps's reference selects, reading them
// from the backend if the view did not provide them.
func (p *Provisioner) credentials(ctx context.Context, ps *pluginState) ([]*credEntry, error) {
	if ps.credsKnown {
		return ps.creds, nil
	}
	creds, err := p.freshCredentials(ctx, ps.credLabels)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	out := make([]*credEntry, 0, len(creds))
	for _, c := range creds {
		out = append(out, &credEntry{
			key:         credKey{name: c.GetMetadata().GetName(), revision: c.GetMetadata().GetRevision()},
			hash:        c.GetSpec().GetScimTokenHash(),
			fingerprint: c.GetSpec().GetScimTokenFingerprint(),
		})
	}
	ps.creds, ps.credsKnown = out, true
	return out, nil
}

// AuthenticateSCIM is the SCIM endpoint's per-request check (see the
// order at the top of this file). It returns the plugin's settings when
// the token is accepted; trace.AccessDenied, audited, for every refusal
// (bad token, unknown plugin, SCIM off: one answer, one cost);
// trace.LimitExceeded from the gate when the source is throttled; any
// other error is a failure to read the plugin or its credentials. gate may
// be nil (no failure limiter).
func (p *Provisioner) AuthenticateSCIM(ctx context.Context, plugin, token string, gate scimrecord.AuthGate) (*scimrecord.SCIMSettings, error) {
	var ps pluginState
	fromView, err := p.resolveInto(ctx, plugin, &ps)
	// err != nil first: trace's Is* checks allocate even for a nil error.
	if err != nil && !trace.IsNotFound(err) {
		return nil, trace.Wrap(err)
	}
	var settings *scimrecord.SCIMSettings
	if err == nil {
		// Shared when it comes from the view or the fenced reads: the
		// endpoint only reads it (seam.go).
		if settings, err = ps.sharedSettings(plugin); err != nil && !trace.IsNotFound(err) {
			return nil, trace.Wrap(err)
		}
	}
	var creds []*credEntry
	if settings != nil && settings.Enabled && len(ps.credLabels) > 0 {
		if creds, err = p.credentials(ctx, &ps); err != nil {
			return nil, trace.Wrap(err)
		}
	} else {
		settings = nil
		if !fromView {
			// The read a real plugin's check makes.
			if _, err := p.freshCredentials(ctx, decoyLabels); err != nil {
				return nil, trace.Wrap(err)
			}
		}
	}
	if err := p.checkToken(ctx, plugin, creds, token, gate); err != nil {
		return nil, trace.Wrap(err)
	}
	return settings, nil
}

// VerifySCIMToken checks token against the hashes in the static
// credentials that plugin's static_credentials_ref selects, with no
// failure limiter. The plugin and its credentials come from the settings
// view, which a watcher keeps current and which is consulted only while in
// sync (view.go), or else from the backend: either way a rotation or the
// deletion of the plugin or its credentials takes effect on the next
// request. Any failure (no plugin, no reference, no credentials, no match)
// is trace.AccessDenied with one message that says nothing about which, and
// is audited (without the token).
func (p *Provisioner) VerifySCIMToken(ctx context.Context, plugin, token string) error {
	ps, err := p.pluginState(ctx, plugin)
	switch {
	case trace.IsNotFound(err):
		ps = nil // refused and audited below, like a bad token
	case err != nil:
		p.cfg.Logger.WarnContext(ctx, "Could not verify SCIM token.", "plugin", plugin, "error", err)
		return trace.AccessDenied("invalid SCIM bearer token")
	}
	var creds []*credEntry
	if ps != nil && len(ps.credLabels) > 0 {
		if creds, err = p.credentials(ctx, ps); err != nil {
			p.cfg.Logger.WarnContext(ctx, "Could not verify SCIM token.", "plugin", plugin, "error", err)
			return trace.AccessDenied("invalid SCIM bearer token")
		}
	}
	return trace.Wrap(p.checkToken(ctx, plugin, creds, token, nil))
}

// checkToken runs steps 1 to 4 for token against creds (none: a decoy
// check that refuses), and audits a refusal.
func (p *Provisioner) checkToken(ctx context.Context, plugin string, creds []*credEntry, token string, gate scimrecord.AuthGate) error {
	digest := tokenDigest(token)
	// 1. The remembered verified token, before any limiter.
	for _, c := range creds {
		if matched, known := p.tokens.lookup(c.key, digest); known && matched {
			return nil
		}
	}
	// 2. The prefilter.
	fp := services.SCIMTokenFingerprint(token)
	pre := scimrecord.PrefilterMiss
	var candidates []*credEntry
	for _, c := range creds {
		if len(c.hash) == 0 {
			continue
		}
		switch {
		case len(c.fingerprint) == 0:
			// A legacy credential: only bcrypt can tell, unless the
			// token was already refused for this version.
			if _, known := p.tokens.lookup(c.key, digest); !known {
				candidates = append(candidates, c)
				if pre == scimrecord.PrefilterMiss {
					pre = scimrecord.PrefilterUnknown
				}
			}
		case subtle.ConstantTimeCompare(fp, c.fingerprint) == 1:
			candidates = append(candidates, c)
			pre = scimrecord.PrefilterMatch
		}
	}
	if len(creds) == 0 {
		p.tokens.decoys.Add(1)
		subtle.ConstantTimeCompare(fp, decoyFingerprint)
	}
	if token == "" {
		pre, candidates = scimrecord.PrefilterMiss, nil
	}
	// 3. The gate: a failure is reserved before bcrypt.
	if gate != nil {
		if err := gate.Admit(pre); err != nil {
			return trace.Wrap(err)
		}
	}
	// 4. bcrypt, for candidates only.
	ok, err := p.hashCheck(ctx, candidates, token, digest)
	if gate != nil {
		gate.Done(ok)
	}
	if err != nil {
		// A cancelled request or a backend failure: not the client's
		// fault, not audited as a refused token, but still no access.
		p.cfg.Logger.WarnContext(ctx, "Could not verify SCIM token.", "plugin", plugin, "error", err)
		return trace.AccessDenied("invalid SCIM bearer token")
	}
	if ok {
		return nil
	}
	source := ""
	if gate != nil {
		source = gate.Source()
	}
	p.auditDenied(ctx, plugin, source)
	return trace.AccessDenied("invalid SCIM bearer token")
}

// tokenDigest is sha256.Sum256([]byte(token)) with the token copied into
// a buffer on the stack: the conversion's own buffer holds 32 bytes, and
// generated tokens are longer, so every request allocated a copy.
func tokenDigest(token string) [sha256.Size]byte {
	var buf [256]byte
	return sha256.Sum256(append(buf[:0], token...))
}

// hashCheck runs bcrypt for the candidates until one matches; a legacy
// credential that matched gets its fingerprint.
func (p *Provisioner) hashCheck(ctx context.Context, candidates []*credEntry, token string, digest [sha256.Size]byte) (bool, error) {
	for _, c := range candidates {
		matched, err := p.tokens.verify(ctx, c.key, c.hash, token, digest)
		if err != nil {
			return false, trace.Wrap(err)
		}
		if matched {
			if len(c.fingerprint) == 0 {
				p.addFingerprint(ctx, c, token, digest)
			}
			return true, nil
		}
	}
	return false, nil
}

// addFingerprint stores the fingerprint of token beside the hash of legacy
// credential c, if c is still at the version just verified (a rotation
// meanwhile wins), and remembers the token as verified for the version it
// writes. A failure is logged: the next successful check tries again.
func (p *Provisioner) addFingerprint(ctx context.Context, c *credEntry, token string, digest [sha256.Size]byte) {
	ctx = context.WithoutCancel(ctx)
	fail := func(err error) {
		p.cfg.Logger.WarnContext(ctx, "Could not add the fingerprint of a verified SCIM token to its credential.", "credential", c.key.name, "error", err)
	}
	rev, err := services.AddSCIMTokenFingerprint(ctx, p.cfg.Backend, c.key.name, c.key.revision, token)
	if err != nil {
		fail(err)
		return
	}
	if rev == "" {
		return
	}
	p.tokens.remember(credKey{name: c.key.name, revision: rev}, digest, true)
	p.cfg.Logger.InfoContext(ctx, "Added a fingerprint to a SCIM token credential written before fingerprints existed.", "credential", c.key.name)
}

// auditDenied records a refused token: the first refusal of a source in a
// window on its own, the others as one event with their count once the
// window is over (at the next refusal).
func (p *Provisioner) auditDenied(ctx context.Context, plugin, source string) {
	p.tokens.denialsOnce.Do(func() {
		p.tokens.denials = abuse.NewAggregator(p.cfg.Clock, denialWindow, maxDenialSources)
	})
	record, flush := p.tokens.denials.Note(source)
	for _, s := range flush {
		p.emitStandalone(ctx, &typesv1.AuditEvent{
			Type:    EventTokenDenied,
			Outcome: audit.OutcomeDenied,
			Message: strconv.Itoa(s.Count) + " more SCIM requests with an invalid bearer token refused from this source in the minute after window_start",
			Fields: map[string]string{
				"source":       s.Key,
				"count":        strconv.Itoa(s.Count),
				"window_start": s.Start.UTC().Format(time.RFC3339),
			},
		})
	}
	if !record {
		return
	}
	p.emitStandalone(ctx, &typesv1.AuditEvent{
		Type:     EventTokenDenied,
		User:     actor(plugin),
		Outcome:  audit.OutcomeDenied,
		Resource: "plugin/" + plugin,
		Message:  "SCIM request with an invalid bearer token refused (further refusals from this source within a minute are counted in one event)",
		Fields:   map[string]string{"plugin": plugin, "source": source},
	})
}

// emitStandalone stores an event that is not part of a state change; a
// failure is logged, never returned.
func (p *Provisioner) emitStandalone(ctx context.Context, e *typesv1.AuditEvent) {
	e.Id = uuid.NewString()
	e.Time = timestamppb.New(p.cfg.Clock.Now())
	if err := p.cfg.Audit.Emit(context.WithoutCancel(ctx), e); err != nil {
		p.cfg.Logger.WarnContext(ctx, "Failed to record audit event.", "type", e.GetType(), "error", err)
	}
}

// TokenCheckStats are counters of the bearer token check since the
// provisioner started.
type TokenCheckStats struct {
	// Compares is the number of bcrypt comparisons run.
	Compares int64
	// PeakConcurrent is the most bcrypt comparisons that ran at once.
	PeakConcurrent int64
	// Decoys is the number of checks made against the decoy fingerprint
	// (unknown plugin, SCIM off, no credentials).
	Decoys int64
}

// TokenCheckStats returns the token check's counters (tests, diagnostics).
func (p *Provisioner) TokenCheckStats() TokenCheckStats {
	return TokenCheckStats{
		Compares:       p.tokens.compares.Load(),
		PeakConcurrent: p.tokens.peakHashing.Load(),
		Decoys:         p.tokens.decoys.Load(),
	}
}
