package services

import (
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func TestStrippedResultAndPage(t *testing.T) {
	t.Parallel()
	withKey := func() *typesv1.CertAuthority {
		return &typesv1.CertAuthority{Spec: &typesv1.CertAuthoritySpec{SshPrivateKey: []byte("k"), SshPublicKey: []byte("p")}}
	}
	tests := []struct {
		name        string
		withSecrets bool
		err         error
		wantKey     bool
	}{
		{name: "secrets kept when asked", withSecrets: true, wantKey: true},
		{name: "secrets stripped otherwise", withSecrets: false, wantKey: false},
		{name: "error passed on, no resource", err: trace.NotFound("gone")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := strippedResult(withKey(), tt.err, tt.withSecrets, StripCertAuthoritySecrets)
			page, next, perr := strippedPage([]*typesv1.CertAuthority{withKey(), withKey()}, "tok", tt.err, tt.withSecrets, StripCertAuthoritySecrets)
			if tt.err != nil {
				require.True(t, trace.IsNotFound(err))
				require.Nil(t, got)
				require.True(t, trace.IsNotFound(perr))
				require.Nil(t, page)
				require.Empty(t, next)
				return
			}
			require.NoError(t, err)
			require.NoError(t, perr)
			require.Equal(t, "tok", next)
			require.Equal(t, tt.wantKey, len(got.GetSpec().GetSshPrivateKey()) > 0)
			require.Equal(t, []byte("p"), got.GetSpec().GetSshPublicKey())
			require.Len(t, page, 2)
			for _, ca := range page {
				require.Equal(t, tt.wantKey, len(ca.GetSpec().GetSshPrivateKey()) > 0)
			}
		})
	}
}
