package services

import (
	"context"
	"fmt"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func scimCred(name string) *typesv1.PluginStaticCredentials {
	return &typesv1.PluginStaticCredentials{
		Metadata: &typesv1.Metadata{Name: name, Labels: map[string]string{"gatehouse.dev/plugin": "okta"}},
		Spec:     &typesv1.PluginStaticCredentialsSpec{ScimTokenHash: []byte("hash-" + name)},
	}
}

func TestPluginWithCredentialsWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := newServices(t)
	link := map[string]string{"gatehouse.dev/plugin": "okta"}
	listed := func() []*typesv1.PluginStaticCredentials {
		creds, err := s.ListPluginStaticCredentialsByLabels(ctx, link, false)
		require.NoError(t, err)
		return creds
	}

	// ReplacePluginCredentials links an unlinked plugin, deletes the other
	// credentials and overwrites the one of its name.
	p := validPlugin()
	p.Spec.StaticCredentialsRef = nil
	p, err := s.CreatePlugin(ctx, p)
	require.NoError(t, err)
	for _, n := range []string{"okta-scim-token", "old"} {
		_, err := s.CreatePluginStaticCredentials(ctx, scimCred(n))
		require.NoError(t, err)
	}
	next := scimCred("okta-scim-token")
	next.Spec.ScimTokenHash = []byte("new")
	require.NoError(t, s.ReplacePluginCredentials(ctx, p, link, listed(), next))
	got, err := s.GetPlugin(ctx, "okta")
	require.NoError(t, err)
	require.Equal(t, link, got.GetSpec().GetStaticCredentialsRef().GetLabels())
	creds := listed()
	require.Len(t, creds, 1)
	stored, err := s.GetPluginStaticCredentials(ctx, "okta-scim-token", true)
	require.NoError(t, err)
	require.Equal(t, []byte("new"), stored.GetSpec().GetScimTokenHash())
	// The plugin as read before is stale now.
	err = s.ReplacePluginCredentials(ctx, p, link, creds, next)
	require.True(t, trace.IsCompareFailed(err), "%v", err)

	// UpdatePluginDeletingCredentials writes the plugin and deletes the
	// credentials in one write, conditioned on both.
	update := got
	okta(update).ScimEnabled = false
	out, err := s.UpdatePluginDeletingCredentials(ctx, update, creds)
	require.NoError(t, err)
	require.NotEqual(t, got.GetMetadata().GetRevision(), out.GetMetadata().GetRevision())
	require.False(t, okta(out).GetScimEnabled())
	require.Empty(t, listed())
	_, err = s.UpdatePluginDeletingCredentials(ctx, update, nil)
	require.True(t, trace.IsCompareFailed(err), "%v", err)

	// DeletePluginWithCredentials refuses more deletions than one write
	// takes, and deletes the plugin with its credentials.
	var many []*typesv1.PluginStaticCredentials
	for i := range backend.MaxAtomicWriteActions {
		many = append(many, scimCred(fmt.Sprintf("c%d", i)))
	}
	err = s.DeletePluginWithCredentials(ctx, out, many)
	require.True(t, trace.IsLimitExceeded(err), "%v", err)
	c, err := s.CreatePluginStaticCredentials(ctx, scimCred("okta-scim-token"))
	require.NoError(t, err)
	require.NoError(t, s.DeletePluginWithCredentials(ctx, out, []*typesv1.PluginStaticCredentials{c}))
	_, err = s.GetPlugin(ctx, "okta")
	require.True(t, trace.IsNotFound(err))
	require.Empty(t, listed())
}

func TestAddSCIMTokenFingerprint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, b, _ := newServices(t)
	c, err := s.CreatePluginStaticCredentials(ctx, scimCred("okta-scim-token"))
	require.NoError(t, err)
	rev := c.GetMetadata().GetRevision()

	for name, r := range map[string]string{"missing": rev, "okta-scim-token": "stale"} {
		got, err := AddSCIMTokenFingerprint(ctx, b, name, r, "tok")
		require.NoError(t, err)
		require.Empty(t, got, "nothing written for %s at %s", name, r)
	}
	got, err := AddSCIMTokenFingerprint(ctx, b, "okta-scim-token", rev, "tok")
	require.NoError(t, err)
	require.NotEmpty(t, got)
	stored, err := s.GetPluginStaticCredentials(ctx, "okta-scim-token", true)
	require.NoError(t, err)
	require.Equal(t, got, stored.GetMetadata().GetRevision())
	require.Equal(t, SCIMTokenFingerprint("tok"), stored.GetSpec().GetScimTokenFingerprint())
	require.Equal(t, []byte("hash-okta-scim-token"), stored.GetSpec().GetScimTokenHash())

	// A fingerprint already there is kept.
	again, err := AddSCIMTokenFingerprint(ctx, b, "okta-scim-token", got, "other")
	require.NoError(t, err)
	require.Empty(t, again)
}
