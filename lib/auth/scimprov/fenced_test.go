package scimprov

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/pluginv1"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/etcdbk"
	"github.com/gatehouse/gatehouse/lib/backend/etcdbk/etcdtest"
	"github.com/gatehouse/gatehouse/lib/services"
)

// TestFencedTokenCheckOnEtcd attacks the token check of two servers on one
// etcd, each answering reads from its read cache: a token rotated through
// server A, and then its credentials deleted, are refused by the very next
// request on server B, whose token check reads the credentials from memory
// (fenced reads, no etcd read per request).
func TestFencedTokenCheckOnEtcd(t *testing.T) {
	t.Parallel()
	endpoints := etcdtest.Start(t, 1)
	prefix := "/scimprov-" + rand.Text() + "/"
	clock := clockwork.NewFakeClockAt(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	open := func() *etcdbk.Backend {
		b, err := etcdbk.New(t.Context(), etcdbk.Config{Endpoints: endpoints, Prefix: prefix, Clock: clock})
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		return b
	}
	ba, bb := open(), open()
	a := newEnvOn(t, clock, ba)
	svcB, err := services.New(services.Config{Backend: bb})
	require.NoError(t, err)
	alB, err := services.NewAuditLog(services.AuditLogConfig{Backend: bb, Clock: clock})
	require.NoError(t, err)
	pb, err := New(Config{
		Backend: bb, Plugins: svcB.PluginService, Credentials: svcB.PluginStaticCredentialsService,
		SAMLConnectors: svcB.SAMLConnectorService, Roles: svcB.RoleService, Audit: alB, Clock: clock,
	})
	require.NoError(t, err)
	t.Cleanup(func() { pb.Close() })
	require.True(t, a.p.fenced)
	require.True(t, pb.fenced, "over etcd with the read cache, the token check reads fenced credentials")
	for _, b := range []*etcdbk.Backend{ba, bb} {
		require.Eventually(t, func() bool { return b.CacheStats().Fenced }, 15*time.Second, 10*time.Millisecond)
	}

	token := a.token
	_, err = pb.AuthenticateSCIM(a.ctx, testPlugin, token, nil)
	require.NoError(t, err)
	for i := range 10 {
		next := rotateToken(t, a.ctx, a.svc)
		misses := bb.CacheStats().Misses
		_, err = pb.AuthenticateSCIM(a.ctx, testPlugin, token, nil)
		require.True(t, trace.IsAccessDenied(err), "rotation %d: server B accepted the old token: %v", i, err)
		_, err = pb.AuthenticateSCIM(a.ctx, testPlugin, next, nil)
		require.NoError(t, err, "rotation %d", i)
		require.Equal(t, misses, bb.CacheStats().Misses, "rotation %d: server B read etcd for the token check", i)
		token = next
	}
	// Items are decoded once per revision: two requests share the entries.
	ps1, err := pb.pluginState(a.ctx, testPlugin)
	require.NoError(t, err)
	ps2, err := pb.pluginState(a.ctx, testPlugin)
	require.NoError(t, err)
	require.Len(t, ps1.creds, 1)
	require.Same(t, ps1.creds[0], ps2.creds[0])
	require.Same(t, ps1.okta, ps2.okta)

	// A credential the check cannot decode fails it closed, with the
	// services' error.
	_, err = ba.Put(a.ctx, backend.Item{Key: services.PluginStaticCredentialsKey("junk"), Value: []byte("{not json")})
	require.NoError(t, err)
	_, err = pb.AuthenticateSCIM(a.ctx, testPlugin, token, nil)
	require.Error(t, err)
	require.False(t, trace.IsAccessDenied(err), "a corrupt credential is a failure to read, not a refused token: %v", err)
	require.NoError(t, ba.Delete(a.ctx, services.PluginStaticCredentialsKey("junk")))
	_, err = pb.AuthenticateSCIM(a.ctx, testPlugin, token, nil)
	require.NoError(t, err)

	require.NoError(t, a.svc.DeletePluginStaticCredentials(a.ctx, pluginv1.CredentialsName(testPlugin)))
	_, err = pb.AuthenticateSCIM(a.ctx, testPlugin, token, nil)
	require.True(t, trace.IsAccessDenied(err), "server B accepted a token whose credentials were deleted: %v", err)
	setEnabled(t, a, true) // a plugin write is fenced too: B reads it at once
	require.NoError(t, a.svc.DeletePlugin(a.ctx, testPlugin))
	_, err = pb.SCIMSettings(a.ctx, testPlugin)
	require.True(t, trace.IsNotFound(err), "server B still sees the deleted plugin: %v", err)
}
