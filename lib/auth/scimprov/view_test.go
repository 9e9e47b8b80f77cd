package scimprov

import (
	"context"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/pluginv1"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/lite"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func withView(c *Config) { c.SettingsCache = SettingsCacheOn }

// waitInSync waits (bounded, real time: the view syncs in its own
// goroutine) until the view is in sync.
func waitInSync(t *testing.T, p *Provisioner) {
	t.Helper()
	require.Eventually(t, p.view.inSync, 10*time.Second, time.Millisecond)
}

func setEnabled(t *testing.T, e *env, on bool) {
	t.Helper()
	_, err := e.svc.UpdateAndSwapPlugin(e.ctx, testPlugin, func(p *typesv1.Plugin) error {
		p.GetSpec().GetOkta().ScimEnabled = on
		return nil
	})
	require.NoError(t, err)
}

// TestSettingsViewFreshness shows that with the view in use, a request
// reads nothing from the backend, and that a rotation, a disable, the
// deletion of the credentials or of the plugin, and an expiry all take
// effect on the very next request after the write returned.
func TestSettingsViewFreshness(t *testing.T) {
	t.Parallel()
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, kind, withView)
			waitInSync(t, e.p)

			st, err := e.p.AuthenticateSCIM(e.ctx, testPlugin, e.token, nil)
			require.NoError(t, err)
			require.True(t, st.Enabled)
			reads := e.b.reads.Load()
			for range 5 {
				_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, e.token, nil)
				require.NoError(t, err)
				_, err = e.p.SCIMSettings(e.ctx, testPlugin)
				require.NoError(t, err)
				require.NoError(t, e.p.VerifySCIMToken(e.ctx, testPlugin, e.token))
			}
			require.Equal(t, reads, e.b.reads.Load(), "served from the view")

			// Rotation.
			newToken := rotateToken(t, e.ctx, e.svc)
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, e.token, nil)
			require.True(t, trace.IsAccessDenied(err), "old token after rotation: %v", err)
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, newToken, nil)
			require.NoError(t, err)

			// Disable, then enable.
			setEnabled(t, e, false)
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, newToken, nil)
			require.True(t, trace.IsAccessDenied(err), "disabled on the next request: %v", err)
			setEnabled(t, e, true)
			st, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, newToken, nil)
			require.NoError(t, err)
			require.True(t, st.Enabled)

			// Credentials deleted.
			require.NoError(t, e.svc.DeletePluginStaticCredentials(e.ctx, pluginv1.CredentialsName(testPlugin)))
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, newToken, nil)
			require.True(t, trace.IsAccessDenied(err), "%v", err)
			newToken = rotateToken(t, e.ctx, e.svc)
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, newToken, nil)
			require.NoError(t, err)

			// An expiring credential is refused once expired, before any
			// purge emits its Delete.
			newToken, hash, err := pluginv1.NewToken()
			require.NoError(t, err)
			_, err = e.svc.UpsertPluginStaticCredentials(e.ctx, &typesv1.PluginStaticCredentials{
				Metadata: &typesv1.Metadata{
					Name: pluginv1.CredentialsName(testPlugin), Labels: pluginv1.CredentialsLabels(testPlugin),
					Expires: timestamppb.New(e.clock.Now().Add(time.Minute)),
				},
				Spec: &typesv1.PluginStaticCredentialsSpec{ScimTokenHash: hash},
			})
			require.NoError(t, err)
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, newToken, nil)
			require.NoError(t, err)
			e.clock.Advance(time.Minute)
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, newToken, nil)
			require.True(t, trace.IsAccessDenied(err), "expired credential: %v", err)
			newToken = rotateToken(t, e.ctx, e.svc)

			// Plugin deleted.
			require.NoError(t, e.svc.DeletePlugin(e.ctx, testPlugin))
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, newToken, nil)
			require.True(t, trace.IsAccessDenied(err), "%v", err)
			require.True(t, trace.IsAccessDenied(e.p.VerifySCIMToken(e.ctx, testPlugin, newToken)))
			_, err = e.p.CreateUser(e.ctx, testPlugin, newRecord("late@example.com", "00late"))
			require.True(t, trace.IsNotFound(err), "%v", err)
		})
	}
}

// TestAuthenticateSCIM covers the combined check's answers, with and without
// the view.
func TestAuthenticateSCIM(t *testing.T) {
	t.Parallel()
	for _, view := range []bool{false, true} {
		t.Run(map[bool]string{false: "backend", true: "view"}[view], func(t *testing.T) {
			t.Parallel()
			var opts []func(*Config)
			if view {
				opts = append(opts, withView)
			}
			e := newEnv(t, "lite", opts...)
			if view {
				waitInSync(t, e.p)
			}
			// An unknown plugin, a junk name, a wrong token and SCIM off: one answer.
			_, err := e.p.AuthenticateSCIM(e.ctx, testPlugin, "wrong", nil)
			require.True(t, trace.IsAccessDenied(err), "%v", err)
			require.Len(t, e.events(t, EventTokenDenied), 1, "a bad token is audited")
			_, err = e.p.AuthenticateSCIM(e.ctx, "nosuch", e.token, nil)
			require.True(t, trace.IsAccessDenied(err), "%v", err)
			_, err = e.p.AuthenticateSCIM(e.ctx, "not/a/name", e.token, nil)
			require.True(t, trace.IsAccessDenied(err), "%v", err)
			setEnabled(t, e, false)
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, e.token, nil)
			require.True(t, trace.IsAccessDenied(err), "SCIM off refuses even the right token: %v", err)
			require.Equal(t, int64(3), e.p.TokenCheckStats().Decoys, "no credential to compare with: the decoy is")
			require.Len(t, e.events(t, EventTokenDenied), 1, "further refusals from the source are aggregated")
			// The window's count is recorded with the next refusal after it.
			e.clock.Advance(denialWindow)
			_, err = e.p.AuthenticateSCIM(e.ctx, "nosuch", "x", nil)
			require.True(t, trace.IsAccessDenied(err), "%v", err)
			evs := e.events(t, EventTokenDenied)
			require.Len(t, evs, 3)
			var counted bool
			for _, ev := range evs {
				counted = counted || ev.GetFields()["count"] == "3"
			}
			require.True(t, counted, "the aggregate event counts the 3 refusals not recorded alone: %v", evs)
		})
	}
}

// controlledWatches lets a test close the view's watcher and refuse new ones.
type controlledWatches struct {
	backend.Backend
	mu       sync.Mutex
	refuse   bool
	watchers []backend.Watcher
}

func (c *controlledWatches) NewWatcher(ctx context.Context, w backend.Watch) (backend.Watcher, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refuse {
		return nil, trace.ConnectionProblem(nil, "watches refused by the test")
	}
	wt, err := c.Backend.NewWatcher(ctx, w)
	if err == nil {
		c.watchers = append(c.watchers, wt)
	}
	return wt, err
}

// breakAll closes every watcher and refuses new ones until allow.
func (c *controlledWatches) breakAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refuse = true
	for _, w := range c.watchers {
		w.Close()
	}
}

func (c *controlledWatches) allow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refuse = false
}

// TestSettingsViewWatcherBreak: once the watcher closes, requests read the
// backend (so changes made meanwhile apply at once); when a watcher can be
// opened again the view reloads, including those changes, and serves again.
func TestSettingsViewWatcherBreak(t *testing.T) {
	t.Parallel()
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var cw *controlledWatches
			e := newEnv(t, kind, withView, func(c *Config) {
				cw = &controlledWatches{Backend: c.Backend}
				c.Backend = cw
			})
			waitInSync(t, e.p)
			_, err := e.p.AuthenticateSCIM(e.ctx, testPlugin, e.token, nil)
			require.NoError(t, err)

			cw.breakAll()
			// The very next request after the break reads the backend.
			reads := e.b.reads.Load()
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, e.token, nil)
			require.NoError(t, err)
			require.Greater(t, e.b.reads.Load(), reads, "fell back to the backend")
			require.False(t, e.p.view.inSync())

			// Changes while the view is out of sync apply at once.
			newToken := rotateToken(t, e.ctx, e.svc)
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, e.token, nil)
			require.True(t, trace.IsAccessDenied(err), "%v", err)
			setEnabled(t, e, false)
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, newToken, nil)
			require.True(t, trace.IsAccessDenied(err), "disabled: %v", err)

			// Watches work again: the view reloads after its backoff.
			cw.allow()
			require.Eventually(t, func() bool {
				e.clock.Advance(16 * DefaultSettingsRetry)
				return e.p.view.inSync()
			}, 10*time.Second, 5*time.Millisecond)
			// Served from the view again. Only the keys a request would read are
			// checked: the grants reconcile, woken by the clock advanced above, may
			// still be reading the connector in the background.
			e.b.keysRead()
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, newToken, nil)
			require.True(t, trace.IsAccessDenied(err), "the reload saw the change made while out of sync: %v", err)
			e.requireNotRead(t, "plugin", "in sync again, the view answers without the backend")
			setEnabled(t, e, true)
			_, err = e.p.AuthenticateSCIM(e.ctx, testPlugin, e.token, nil)
			require.True(t, trace.IsAccessDenied(err), "%v", err)
			st, err := e.p.AuthenticateSCIM(e.ctx, testPlugin, newToken, nil)
			require.NoError(t, err)
			require.True(t, st.Enabled)
		})
	}
}

// TestSettingsCacheAuto: the view is used over lite (which acknowledges
// writes only after its watchers have the events) and not over a backend
// that does not say so.
func TestSettingsCacheAuto(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lb, err := lite.New(ctx, lite.Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
	require.NoError(t, err)
	t.Cleanup(func() { lb.Close() })
	mb, err := memory.New(ctx, memory.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { mb.Close() })
	base := Config{Plugins: nopPlugins{}, Credentials: nopCreds{}, SAMLConnectors: nopConns{}, Roles: nopRoles{}, Audit: nopAudit{}}
	for _, tc := range []struct {
		b    backend.Backend
		mode SettingsCacheMode
		want bool
	}{
		{lb, SettingsCacheAuto, true},
		{mb, SettingsCacheAuto, false},
		{lb, SettingsCacheOff, false},
		{mb, SettingsCacheOn, true},
	} {
		cfg := base
		cfg.Backend, cfg.SettingsCache = tc.b, tc.mode
		require.NoError(t, cfg.CheckAndSetDefaults())
		require.Equal(t, tc.want, useView(cfg), "%T mode %d", tc.b, tc.mode)
	}
	cfg := base
	cfg.Backend, cfg.SettingsCache = mb, SettingsCacheMode(7)
	require.Error(t, cfg.CheckAndSetDefaults())
}

type nopPlugins struct{ Plugins }
type nopCreds struct{ Credentials }
type nopConns struct{ SAMLConnectors }
type nopRoles struct{ Roles }
type nopAudit struct{}

func (nopAudit) Emit(context.Context, *typesv1.AuditEvent) error { return nil }

// TestTokenVerifySingleFlight: concurrent first requests with one token run
// bcrypt once, not once each; a rotation needs one more.
func TestTokenVerifySingleFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory", withView)
	waitInSync(t, e.p)
	run := func(token string) {
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				_, err := e.p.AuthenticateSCIM(e.ctx, testPlugin, token, nil)
				require.NoError(t, err)
			})
		}
		wg.Wait()
	}
	run(e.token)
	require.Equal(t, int64(1), e.p.tokens.compares.Load())
	run(rotateToken(t, e.ctx, e.svc))
	require.Equal(t, int64(2), e.p.tokens.compares.Load())
}

// TestSettingsViewAuthCacheMatchesUncached drives a view through random
// writes and deletions of plugins and credentials (with and without
// expiries, labels that select them or not, an undecodable item) and a
// clock that moves forward and, now and then, back, and checks after each
// step that the cached lookup answers exactly what authViewOf answers from
// the maps as they are: the plugin entry, the credentials (as a set: the
// maps' order was never fixed) and ok.
func TestSettingsViewAuthCacheMatchesUncached(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(13, 13))
	v := &settingsView{plugins: map[string]*pluginEntry{}, creds: map[string]*credEntry{}}
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	now := start
	plugins := []string{"okta", "okta-2", "bare"}
	credNames := []string{"c1", "c2", "c3", "c4"}
	expiry := func() time.Time {
		if rng.IntN(3) == 0 {
			return now.Add(time.Duration(rng.IntN(20)) * time.Second)
		}
		return time.Time{}
	}
	put := func(key backend.Key, value []byte, expires time.Time) {
		v.applyLocked(backend.Event{Type: backend.OpPut, Item: backend.Item{Key: key, Value: value, Revision: uuid.NewString(), Expires: expires}})
	}
	for step := range 3000 {
		switch op := rng.IntN(10); {
		case op < 3:
			name := plugins[rng.IntN(len(plugins))]
			pl := &typesv1.Plugin{Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.PluginSpec{
				Settings: &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{SamlConnector: testConnector, ScimEnabled: rng.IntN(2) == 0, ScimRateLimit: int32(rng.IntN(3))}},
			}}
			if name != "bare" { // "bare" selects no credentials
				pl.Spec.StaticCredentialsRef = &typesv1.PluginStaticCredentialsRef{Labels: pluginv1.CredentialsLabels(plugins[rng.IntN(2)])}
			}
			item, err := services.MarshalPlugin(pl)
			require.NoError(t, err)
			put(item.Key, item.Value, expiry())
		case op < 6:
			name := credNames[rng.IntN(len(credNames))]
			c := &typesv1.PluginStaticCredentials{
				Metadata: &typesv1.Metadata{Name: name, Labels: pluginv1.CredentialsLabels(plugins[rng.IntN(2)])},
				Spec:     &typesv1.PluginStaticCredentialsSpec{ScimTokenHash: []byte("hash-" + name)},
			}
			item, err := services.MarshalPluginStaticCredentials(c)
			require.NoError(t, err)
			value := item.Value
			if rng.IntN(20) == 0 {
				value = []byte("not a credential")
			}
			put(item.Key, value, expiry())
		case op < 7:
			key := services.PluginStaticCredentialsKey(credNames[rng.IntN(len(credNames))])
			if rng.IntN(2) == 0 {
				key = services.PluginKey(plugins[rng.IntN(len(plugins))])
			}
			v.applyLocked(backend.Event{Type: backend.OpDelete, Item: backend.Item{Key: key}})
		case op < 9:
			now = now.Add(time.Duration(rng.IntN(4)) * time.Second)
		default:
			now = now.Add(-time.Duration(rng.IntN(3)) * time.Second)
		}
		for _, name := range plugins {
			for range 2 { // the second answer is the cached one
				got, gotOK := v.lookupLocked(name, now)
				want, wantOK := authViewOf(v.plugins[name], now, maps.Values(v.creds))
				require.Equal(t, wantOK, gotOK, "step %d, plugin %s", step, name)
				require.Same(t, want.plugin, got.plugin, "step %d, plugin %s", step, name)
				require.ElementsMatch(t, want.creds, got.creds, "step %d, plugin %s", step, name)
			}
		}
	}
}
