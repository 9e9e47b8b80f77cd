package scimprov

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"sync"

	"github.com/gravitational/trace"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
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
}

func (c *tokenCache) init() { c.creds = make(map[string]*credVerdicts) }

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

// VerifySCIMToken checks token against the hashes in the static
// credentials that plugin's static_credentials_ref selects. It reads the
// plugin and its credentials on every call, so that a rotation or the
// deletion of the plugin or its credentials takes effect on the next
// request; bcrypt runs only for a token not yet seen with the credential's
// current revision. Any failure (no plugin, no reference, no credentials,
// no match) is trace.AccessDenied with one message that says nothing about
// which, and is audited (without the token).
func (p *Provisioner) VerifySCIMToken(ctx context.Context, plugin, token string) error {
	err := p.verifyToken(ctx, plugin, token)
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

func (p *Provisioner) verifyToken(ctx context.Context, plugin, token string) error {
	denied := trace.AccessDenied("invalid SCIM bearer token")
	if token == "" {
		return denied
	}
	pl, err := p.cfg.Plugins.GetPlugin(ctx, plugin)
	if err != nil {
		if trace.IsNotFound(err) {
			return denied
		}
		return trace.Wrap(err)
	}
	labels := pl.GetSpec().GetStaticCredentialsRef().GetLabels()
	if len(labels) == 0 {
		return denied
	}
	creds, err := p.cfg.Credentials.ListPluginStaticCredentialsByLabels(ctx, labels, true)
	if err != nil {
		return trace.Wrap(err)
	}
	digest := sha256.Sum256([]byte(token))
	for _, c := range creds {
		hash := c.GetSpec().GetScimTokenHash()
		if len(hash) == 0 {
			continue
		}
		k := credKey{name: c.GetMetadata().GetName(), revision: c.GetMetadata().GetRevision()}
		matched, known := p.tokens.lookup(k, digest)
		if !known {
			matched = bcrypt.CompareHashAndPassword(hash, []byte(token)) == nil
			p.tokens.remember(k, digest, matched)
		}
		if matched {
			return nil
		}
	}
	return denied
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
