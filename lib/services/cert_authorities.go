package services

import (
	"context"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Certificate authority names: the CA type.
const (
	// UserCA signs user certificates.
	UserCA = "user"
	// HostCA signs host certificates.
	HostCA = "host"
)

// ValidateCertAuthority checks a CA and sets its defaults (kind
// "cert_authority", version "v1"): the name is UserCA or HostCA, the cluster
// name is set, and there is public material (an SSH public key or a TLS
// certificate), each private key beside its public half.
func ValidateCertAuthority(ca *typesv1.CertAuthority) error {
	if ca == nil {
		return trace.BadParameter("missing cert authority")
	}
	if err := checkHeader(KindCertAuthority, &ca.Kind, &ca.Version, ca.GetMetadata()); err != nil {
		return trace.Wrap(err)
	}
	name := ca.GetMetadata().GetName()
	if name != UserCA && name != HostCA {
		return trace.BadParameter("cert_authority name must be %q or %q, got %q", UserCA, HostCA, name)
	}
	sp := ca.GetSpec()
	switch {
	case sp.GetClusterName() == "":
		return trace.BadParameter("cert_authority %q: cluster_name is required", name)
	case len(sp.GetClusterName()) > generic.MaxNameLength:
		return trace.BadParameter("cert_authority %q: cluster_name is over %d bytes", name, generic.MaxNameLength)
	case len(sp.GetSshPublicKey()) == 0 && len(sp.GetTlsCert()) == 0:
		return trace.BadParameter("cert_authority %q: needs ssh_public_key or tls_cert", name)
	case len(sp.GetSshPrivateKey()) > 0 && len(sp.GetSshPublicKey()) == 0:
		return trace.BadParameter("cert_authority %q: ssh_private_key without ssh_public_key", name)
	case len(sp.GetTlsPrivateKey()) > 0 && len(sp.GetTlsCert()) == 0:
		return trace.BadParameter("cert_authority %q: tls_private_key without tls_cert", name)
	}
	for _, b := range [][]byte{sp.GetSshPrivateKey(), sp.GetSshPublicKey(), sp.GetTlsPrivateKey(), sp.GetTlsCert()} {
		if len(b) > maxPEM {
			return trace.BadParameter("cert_authority %q: key material is over %d bytes", name, maxPEM)
		}
	}
	return nil
}

// StripCertAuthoritySecrets removes the private keys in place.
func StripCertAuthoritySecrets(ca *typesv1.CertAuthority) {
	if ca.GetSpec() != nil {
		ca.Spec.SshPrivateKey = nil
		ca.Spec.TlsPrivateKey = nil
	}
}

// MarshalCertAuthority validates ca (on a copy) and returns the backend item
// storing it at CertAuthorityKey(name).
func MarshalCertAuthority(ca *typesv1.CertAuthority) (backend.Item, error) {
	return marshalValidated(CertAuthoritiesPrefix, ca, ValidateCertAuthority)
}

// UnmarshalCertAuthority decodes a stored CA, private keys included.
func UnmarshalCertAuthority(item backend.Item) (*typesv1.CertAuthority, error) {
	return unmarshalStored[*typesv1.CertAuthority](item)
}

// CertAuthorityService stores CAs at cert_authorities/<name>. Updates write
// exactly what they are given: lib/auth, which owns the CAs, always works
// with secrets.
type CertAuthorityService struct {
	svc *generic.Service[*typesv1.CertAuthority]
}

// NewCertAuthorityService returns the CA service.
func NewCertAuthorityService(cfg Config) (*CertAuthorityService, error) {
	svc, err := newGeneric(cfg, generic.Config[*typesv1.CertAuthority]{
		Kind:      KindCertAuthority,
		KeyPrefix: CertAuthoritiesPrefix,
		Validate:  ValidateCertAuthority,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &CertAuthorityService{svc: svc}, nil
}

// GetCertAuthority reads a CA; private keys only with withSecrets.
func (s *CertAuthorityService) GetCertAuthority(ctx context.Context, name string, withSecrets bool) (*typesv1.CertAuthority, error) {
	ca, err := s.svc.Get(ctx, name)
	return strippedResult(ca, err, withSecrets, StripCertAuthoritySecrets)
}

// ListCertAuthorities returns a page of CAs in name order and the next
// page's token; private keys only with withSecrets.
func (s *CertAuthorityService) ListCertAuthorities(ctx context.Context, pageSize int, pageToken string, withSecrets bool) ([]*typesv1.CertAuthority, string, error) {
	cas, next, err := s.svc.List(ctx, pageSize, pageToken)
	return strippedPage(cas, next, err, withSecrets, StripCertAuthoritySecrets)
}

// CreateCertAuthority writes a new CA; trace.AlreadyExists if it exists. It
// returns it without private keys.
func (s *CertAuthorityService) CreateCertAuthority(ctx context.Context, ca *typesv1.CertAuthority) (*typesv1.CertAuthority, error) {
	out, err := s.svc.Create(ctx, ca)
	return strippedResult(out, err, false, StripCertAuthoritySecrets)
}
