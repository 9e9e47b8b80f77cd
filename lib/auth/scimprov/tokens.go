package scimprov

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"sync"
	"sync/atomic"

	"github.com/gravitational/trace"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxRejected bounds the digests of refused tokens remembered per
// credential: enough to spare bcrypt for a client retrying a stale token,
// too few to matter for memory.
const maxRejected = 256

// EventTokenDenied is the audit event of a refused SCIM bearer token.
const EventTokenDenied = "scim.token.denied"

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
	// compares counts bcrypt comparisons (tests).
	compares atomic.Int64
}

type flightKey struct {
	cred   credKey
	digest [sha256.Size]byte
}

type flight struct {
	done    chan struct{}
	matched bool
}

func (c *tokenCache) init() {
	c.creds = make(map[string]*credVerdicts)
	c.flights = make(map[flightKey]*flight)
}

// verify returns whether token (whose SHA-256 is digest) matches hash, the
// hash of credential version k: from a remembered verdict, from a bcrypt
// comparison of the same token and version already running, or by running
// bcrypt and remembering the verdict.
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
			return f.matched, nil
		case <-ctx.Done():
			return false, trace.Wrap(ctx.Err())
		}
	}
	f := &flight{done: make(chan struct{})}
	c.flights[fk] = f
	c.mu.Unlock()
	c.compares.Add(1)
	f.matched = bcrypt.CompareHashAndPassword(hash, []byte(token)) == nil
	c.remember(k, digest, f.matched)
	c.mu.Lock()
	delete(c.flights, fk)
	c.mu.Unlock()
	close(f.done)
	return f.matched, nil
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
	// creds are the credentials credLabels selects; valid when credsKnown
	// (always from the view; from the backend only once loaded).
	creds      []*credEntry
	credsKnown bool
}

// settings returns the SCIM settings of an Okta plugin; trace.NotFound for
// another kind of plugin.
func (ps *pluginState) settings(plugin string) (*scimstore.SCIMSettings, error) {
	if ps.okta == nil {
		return nil, trace.NotFound("plugin %q is not a SCIM provisioning plugin", plugin)
	}
	return &scimstore.SCIMSettings{
		Enabled:   ps.okta.GetScimEnabled(),
		RateLimit: int(ps.okta.GetScimRateLimit()),
		RateBurst: int(ps.okta.GetScimRateBurst()),
	}, nil
}

// pluginState resolves plugin once per request. trace.NotFound if there is
// no such plugin.
func (p *Provisioner) pluginState(ctx context.Context, plugin string) (*pluginState, error) {
	if err := scimstore.CheckPlugin(plugin); err != nil {
		return nil, trace.NotFound("plugin %q not found", plugin)
	}
	if p.view != nil {
		if av, ok := p.view.get(plugin, p.cfg.Clock.Now()); ok {
			if av.plugin == nil {
				return nil, trace.NotFound("plugin %q not found", plugin)
			}
			return &pluginState{okta: av.plugin.okta, credLabels: av.plugin.credLabels, creds: av.creds, credsKnown: true}, nil
		}
	}
	pl, err := p.cfg.Plugins.GetPlugin(ctx, plugin)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &pluginState{okta: pl.GetSpec().GetOkta(), credLabels: pl.GetSpec().GetStaticCredentialsRef().GetLabels()}, nil
}

// credentials returns the credentials ps's reference selects, reading them
// from the backend if the view did not provide them.
func (p *Provisioner) credentials(ctx context.Context, ps *pluginState) ([]*credEntry, error) {
	if ps.credsKnown {
		return ps.creds, nil
	}
	creds, err := p.cfg.Credentials.ListPluginStaticCredentialsByLabels(ctx, ps.credLabels, true)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	out := make([]*credEntry, 0, len(creds))
	for _, c := range creds {
		out = append(out, &credEntry{
			key:  credKey{name: c.GetMetadata().GetName(), revision: c.GetMetadata().GetRevision()},
			hash: c.GetSpec().GetScimTokenHash(),
		})
	}
	ps.creds, ps.credsKnown = out, true
	return out, nil
}

// AuthenticateSCIM is the SCIM endpoint's per-request check, resolving the
// plugin once: trace.NotFound if there is no such SCIM plugin; the settings
// with Enabled false, without looking at the token, if SCIM is disabled;
// trace.AccessDenied (audited, as VerifySCIMToken) if the token does not
// match; the settings otherwise. Any other error is a failure to read the
// plugin.
func (p *Provisioner) AuthenticateSCIM(ctx context.Context, plugin, token string) (*scimstore.SCIMSettings, error) {
	ps, err := p.pluginState(ctx, plugin)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	settings, err := ps.settings(plugin)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if !settings.Enabled {
		return settings, nil
	}
	if err := p.checkToken(ctx, plugin, ps, token); err != nil {
		return nil, trace.Wrap(err)
	}
	return settings, nil
}

// VerifySCIMToken checks token against the hashes in the static
// credentials that plugin's static_credentials_ref selects. The plugin and
// its credentials come from the settings view, which a watcher keeps
// current and which is consulted only while in sync (view.go), or else from
// the backend: either way a rotation or the deletion of the plugin or its
// credentials takes effect on the next request. bcrypt runs only for a
// token not yet seen with the credential's current revision. Any failure
// (no plugin, no reference, no credentials, no match) is trace.AccessDenied
// with one message that says nothing about which, and is audited (without
// the token).
func (p *Provisioner) VerifySCIMToken(ctx context.Context, plugin, token string) error {
	ps, err := p.pluginState(ctx, plugin)
	switch {
	case trace.IsNotFound(err):
		ps = nil // refused and audited below, like a bad token
	case err != nil:
		p.cfg.Logger.WarnContext(ctx, "Could not verify SCIM token.", "plugin", plugin, "error", err)
		return trace.AccessDenied("invalid SCIM bearer token")
	}
	return trace.Wrap(p.checkToken(ctx, plugin, ps, token))
}

// checkToken verifies token for ps (nil: no such plugin) and audits a
// refusal. A backend failure is logged and refused without an audit event.
func (p *Provisioner) checkToken(ctx context.Context, plugin string, ps *pluginState, token string) error {
	err := p.verifyToken(ctx, ps, token)
	if err == nil {
		return nil
	}
	if !trace.IsAccessDenied(err) {
		// A backend failure: not the client's fault, not audited as a
		// refused token, but still no access.
		p.cfg.Logger.WarnContext(ctx, "Could not verify SCIM token.", "plugin", plugin, "error", err)
		return trace.AccessDenied("invalid SCIM bearer token")
	}
	p.emitStandalone(ctx, &typesv1.AuditEvent{
		Type:     EventTokenDenied,
		User:     actor(plugin),
		Outcome:  audit.OutcomeDenied,
		Resource: "plugin/" + plugin,
		Message:  "SCIM request with an invalid bearer token refused",
		Fields:   map[string]string{"plugin": plugin},
	})
	return trace.Wrap(err)
}

func (p *Provisioner) verifyToken(ctx context.Context, ps *pluginState, token string) error {
	// Built only when refusing: a trace error captures the stack, which
	// was ~8% of a lookup's CPU when made on every request.
	denied := func() error { return trace.AccessDenied("invalid SCIM bearer token") }
	if token == "" || ps == nil || len(ps.credLabels) == 0 {
		return denied()
	}
	creds, err := p.credentials(ctx, ps)
	if err != nil {
		return trace.Wrap(err)
	}
	digest := sha256.Sum256([]byte(token))
	for _, c := range creds {
		if len(c.hash) == 0 {
			continue
		}
		matched, err := p.tokens.verify(ctx, c.key, c.hash, token, digest)
		if err != nil {
			return trace.Wrap(err)
		}
		if matched {
			return nil
		}
	}
	return denied()
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
