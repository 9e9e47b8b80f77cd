package services

import (
	"context"
	"crypto/sha256"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const maxTokenHashLen = 1024

// ValidatePluginStaticCredentials checks static credentials and sets their
// defaults (kind "plugin_static_credentials", version "v1"): a bounded,
// non-empty scim_token_hash is required. Only the hash is ever stored; the
// caller hashes the token.
func ValidatePluginStaticCredentials(c *typesv1.PluginStaticCredentials) error {
	if c == nil {
		return trace.BadParameter("missing plugin static credentials")
	}
	if err := checkHeader(KindPluginStaticCredentials, &c.Kind, &c.Version, c.GetMetadata()); err != nil {
		return trace.Wrap(err)
	}
	name := c.GetMetadata().GetName()
	if api := c.GetSpec().GetOktaApi(); api != nil {
		// A user sync credential stands alone: it is never mixed with a
		// SCIM token, whose lifecycle (rotation, deletion when SCIM is
		// turned off) is different.
		if len(c.GetSpec().GetScimTokenHash()) != 0 || len(c.GetSpec().GetScimTokenFingerprint()) != 0 {
			return trace.BadParameter("plugin_static_credentials %q: okta_api cannot be stored with a SCIM token", name)
		}
		return trace.Wrap(validateOktaAPICredentials(name, api))
	}
	switch h := c.GetSpec().GetScimTokenHash(); {
	case len(h) == 0:
		return trace.BadParameter("plugin_static_credentials %q: spec.scim_token_hash is required", name)
	case len(h) > maxTokenHashLen:
		return trace.BadParameter("plugin_static_credentials %q: spec.scim_token_hash is over %d bytes", name, maxTokenHashLen)
	}
	if fp := c.GetSpec().GetScimTokenFingerprint(); len(fp) != 0 && len(fp) != SCIMTokenFingerprintLen {
		return trace.BadParameter("plugin_static_credentials %q: spec.scim_token_fingerprint must be %d bytes (or empty)", name, SCIMTokenFingerprintLen)
	}
	return nil
}

// SCIMTokenFingerprintLen is the length of a SCIM token fingerprint.
const SCIMTokenFingerprintLen = 8

// scimFingerprintPrefix separates the fingerprint from any other SHA-256
// of the token (the verified-token cache keeps one in memory).
const scimFingerprintPrefix = "gatehouse scim token fingerprint v1\x00"

// SCIMTokenFingerprint returns the fingerprint stored beside a SCIM
// token's bcrypt hash: the first SCIMTokenFingerprintLen bytes of
// SHA-256(prefix || token). It refuses a wrong token without bcrypt; it
// does not replace the hash (64 bits say nothing usable about a 256-bit
// random token, and the hash still decides).
func SCIMTokenFingerprint(token string) []byte {
	sum := sha256.Sum256([]byte(scimFingerprintPrefix + token))
	return sum[:SCIMTokenFingerprintLen]
}

// StripPluginStaticCredentialsSecrets removes the token hash, its
// fingerprint and a sealed Okta API secret in place.
func StripPluginStaticCredentialsSecrets(c *typesv1.PluginStaticCredentials) {
	if c.GetSpec() != nil {
		c.Spec.ScimTokenHash = nil
		c.Spec.ScimTokenFingerprint = nil
		if c.Spec.OktaApi != nil {
			c.Spec.OktaApi.SealedSecret = nil
		}
	}
}

// MarshalPluginStaticCredentials validates c (on a copy) and returns the
// backend item storing it at PluginStaticCredentialsKey(name).
func MarshalPluginStaticCredentials(c *typesv1.PluginStaticCredentials) (backend.Item, error) {
	return marshalValidated(PluginStaticCredentialsPrefix, c, ValidatePluginStaticCredentials)
}

// UnmarshalPluginStaticCredentials decodes stored credentials, secrets
// included.
func UnmarshalPluginStaticCredentials(item backend.Item) (*typesv1.PluginStaticCredentials, error) {
	return unmarshalStored[*typesv1.PluginStaticCredentials](item)
}

// PluginStaticCredentialsService stores credentials at
// plugin_static_credentials/<name>.
type PluginStaticCredentialsService struct {
	svc *generic.Service[*typesv1.PluginStaticCredentials]
}

// NewPluginStaticCredentialsService returns the static credentials service.
func NewPluginStaticCredentialsService(cfg Config) (*PluginStaticCredentialsService, error) {
	svc, err := newGeneric(cfg, generic.Config[*typesv1.PluginStaticCredentials]{
		Kind:      KindPluginStaticCredentials,
		KeyPrefix: PluginStaticCredentialsPrefix,
		Validate:  ValidatePluginStaticCredentials,
		// Over etcd the SCIM token check lists a plugin's credentials for
		// every wave of requests (scimprov's fresh reads); they are few, and
		// change only on a rotation.
		CacheDecoded: true,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &PluginStaticCredentialsService{svc: svc}, nil
}

// GetPluginStaticCredentials reads credentials; the token hash only with
// withSecrets.
func (s *PluginStaticCredentialsService) GetPluginStaticCredentials(ctx context.Context, name string, withSecrets bool) (*typesv1.PluginStaticCredentials, error) {
	c, err := s.svc.Get(ctx, name)
	return strippedResult(c, err, withSecrets, StripPluginStaticCredentialsSecrets)
}

// ListPluginStaticCredentials returns a page of credentials in name order
// and the next page's token; the token hashes only with withSecrets.
func (s *PluginStaticCredentialsService) ListPluginStaticCredentials(ctx context.Context, pageSize int, pageToken string, withSecrets bool) ([]*typesv1.PluginStaticCredentials, string, error) {
	cs, next, err := s.svc.List(ctx, pageSize, pageToken)
	return strippedPage(cs, next, err, withSecrets, StripPluginStaticCredentialsSecrets)
}

// ListPluginStaticCredentialsByLabels returns every credential carrying all
// of labels (a plugin's static_credentials_ref), in name order; the token
// hashes only with withSecrets. No labels is refused: it would select every
// credential.
func (s *PluginStaticCredentialsService) ListPluginStaticCredentialsByLabels(ctx context.Context, labels map[string]string, withSecrets bool) ([]*typesv1.PluginStaticCredentials, error) {
	if len(labels) == 0 {
		return nil, trace.BadParameter("listing plugin static credentials by labels needs at least one label")
	}
	cs, err := s.svc.ListAll(ctx, func(c *typesv1.PluginStaticCredentials) bool {
		return MatchLabels(c.GetMetadata().GetLabels(), labels)
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	for _, c := range cs {
		stripped(c, withSecrets, StripPluginStaticCredentialsSecrets)
	}
	return cs, nil
}

// MatchLabels reports whether have carries every key of want with the same
// value.
func MatchLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// CreatePluginStaticCredentials writes new credentials; trace.AlreadyExists
// if the name is taken. It returns them without the hash.
func (s *PluginStaticCredentialsService) CreatePluginStaticCredentials(ctx context.Context, c *typesv1.PluginStaticCredentials) (*typesv1.PluginStaticCredentials, error) {
	out, err := s.svc.Create(ctx, c)
	return strippedResult(out, err, false, StripPluginStaticCredentialsSecrets)
}

// UpdatePluginStaticCredentials overwrites credentials still at
// c.metadata.revision (required); the hash is required as on create.
func (s *PluginStaticCredentialsService) UpdatePluginStaticCredentials(ctx context.Context, c *typesv1.PluginStaticCredentials) (*typesv1.PluginStaticCredentials, error) {
	out, err := s.svc.Update(ctx, c)
	return strippedResult(out, err, false, StripPluginStaticCredentialsSecrets)
}

// UpsertPluginStaticCredentials writes credentials whether or not they exist.
func (s *PluginStaticCredentialsService) UpsertPluginStaticCredentials(ctx context.Context, c *typesv1.PluginStaticCredentials) (*typesv1.PluginStaticCredentials, error) {
	out, err := s.svc.Upsert(ctx, c)
	return strippedResult(out, err, false, StripPluginStaticCredentialsSecrets)
}

// DeletePluginStaticCredentials removes credentials; trace.NotFound if
// missing.
func (s *PluginStaticCredentialsService) DeletePluginStaticCredentials(ctx context.Context, name string) error {
	return trace.Wrap(s.svc.Delete(ctx, name))
}
