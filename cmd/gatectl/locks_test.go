package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	pluginv1 "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// oktaPlugin creates the SAML connector "okta-app" and, as the web UI does,
// the plugin "okta" without gatectl.
func oktaPlugin(t *testing.T, s *authtest.Server) {
	t.Helper()
	ctx := context.Background()
	_, err := s.Auth.Services().SAMLConnectors.UpsertSAMLConnector(ctx, &typesv1.SAMLConnector{
		Metadata: &typesv1.Metadata{Name: "okta-app"},
		Spec: &typesv1.SAMLConnectorSpec{
			EntityDescriptorUrl: "https://idp.example.com/metadata",
			Acs:                 "https://gatehouse.example.com/v1/webapi/saml/acs/okta-app",
		},
	})
	require.NoError(t, err)
	_, err = s.Auth.Services().Plugins.CreatePlugin(ctx, &typesv1.Plugin{
		Metadata: &typesv1.Metadata{Name: "okta"},
		Spec: &typesv1.PluginSpec{
			Settings:             &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{SamlConnector: "okta-app", ScimEnabled: true, DefaultRoles: []string{"access"}}},
			StaticCredentialsRef: &typesv1.PluginStaticCredentialsRef{Labels: map[string]string{"gatehouse.dev/plugin": "okta"}},
		},
	})
	require.NoError(t, err)
}

// gatectlAgainstErr is gatectlAgainst that also returns what gatectl wrote
// to stderr besides the error (the confirmation's explanation).
func gatectlAgainstErr(t *testing.T, s *authtest.Server, idFile, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := newApp(&out)
	root := a.rootCommand()
	root.SetArgs(append([]string{"--auth-server", s.Addr, "--identity", idFile}, args...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	if err := root.ExecuteContext(context.Background()); err != nil {
		return out.String(), errOut.String() + userMessage(err), 1
	}
	return out.String(), errOut.String(), 0
}

func TestPluginsUpdate(t *testing.T) {
	t.Parallel()
	s, idFile := adminServer(t)
	oktaPlugin(t, s)
	ctx := context.Background()
	settings := func() *typesv1.OktaPluginSettings {
		p, err := s.Auth.Services().Plugins.GetPlugin(ctx, "okta")
		require.NoError(t, err)
		return p.GetSpec().GetOkta()
	}

	// install refuses an existing plugin and names the command to use.
	_, errMsg, code := gatectlAgainst(t, s, idFile, "", "plugins", "install", "okta", "--saml-connector", "okta-app")
	require.Equal(t, 1, code)
	require.Contains(t, errMsg, `gatectl plugins update okta`)

	for _, tc := range []struct {
		name    string
		args    []string
		errMsg  string
		check   func(t *testing.T, o *typesv1.OktaPluginSettings)
		outWant string
	}{
		{name: "no flag", args: nil, errMsg: "nothing to update"},
		{name: "lock TTL only", args: []string{"--lock-ttl", "720h"}, outWant: "lock TTL:         720h", check: func(t *testing.T, o *typesv1.OktaPluginSettings) {
			require.Equal(t, "720h", o.GetLockTtl())
			require.Equal(t, []string{"access"}, o.GetDefaultRoles(), "untouched")
			require.True(t, o.GetScimEnabled())
			require.Equal(t, "okta-app", o.GetSamlConnector())
		}},
		{name: "grantable roles only", args: []string{"--grantable-roles", "access,auditor"}, check: func(t *testing.T, o *typesv1.OktaPluginSettings) {
			require.Equal(t, []string{"access", "auditor"}, o.GetGrantableRoles())
			require.Equal(t, "720h", o.GetLockTtl(), "untouched")
		}},
		{name: "default roles cleared", args: []string{"--default-roles", ""}, check: func(t *testing.T, o *typesv1.OktaPluginSettings) {
			require.Empty(t, o.GetDefaultRoles())
			require.Equal(t, []string{"access", "auditor"}, o.GetGrantableRoles())
		}},
		{name: "lock TTL 0 makes locks permanent", args: []string{"--lock-ttl", "0"}, outWant: "until lifted", check: func(t *testing.T, o *typesv1.OktaPluginSettings) {
			require.Empty(t, o.GetLockTtl())
		}},
		{name: "server refuses a lock TTL shorter than a session", args: []string{"--lock-ttl", "1h"}, errMsg: "shorter than the longest session"},
		{name: "server refuses a malformed lock TTL", args: []string{"--lock-ttl", "soon"}, errMsg: "is not a duration"},
		{name: "unknown plugin", args: []string{"--lock-ttl", "720h"}, errMsg: `plugin "nosuch" is not installed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "okta"
			if tc.name == "unknown plugin" {
				name = "nosuch"
			}
			before := settings()
			out, errMsg, code := gatectlAgainst(t, s, idFile, "", append([]string{"plugins", "update", name}, tc.args...)...)
			if tc.errMsg != "" {
				require.Equal(t, 1, code, out)
				require.Contains(t, errMsg, tc.errMsg)
				require.Equal(t, before.String(), settings().String(), "a refused update changes nothing")
				return
			}
			require.Equal(t, 0, code, errMsg)
			require.Contains(t, out, `Plugin "okta" updated.`)
			require.Contains(t, out, tc.outWant)
			tc.check(t, settings())
		})
	}

	out, errMsg, code := gatectlAgainst(t, s, idFile, "", "--format", "json", "plugins", "update", "okta", "--default-roles", "access")
	require.Equal(t, 0, code, errMsg)
	var got pluginSettingsOutput
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	require.Equal(t, pluginSettingsOutput{Name: "okta", SAMLConnector: "okta-app", SCIMEnabled: true, DefaultRoles: []string{"access"}, GrantableRoles: []string{"access", "auditor"}}, got)
}

func TestLocks(t *testing.T) {
	t.Parallel()
	s, idFile := adminServer(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	put := func(l *typesv1.Lock) {
		_, err := s.Auth.Services().Locks.CreateLock(ctx, l)
		require.NoError(t, err)
	}
	// As SCIM writes them.
	put(&typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "scim-okta-1", Labels: map[string]string{services.LabelOrigin: "okta", services.LabelPlugin: "okta", scimrecord.LabelReason: "scim-deactivation"}},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "alice@example.com"}, Message: "deactivated in Okta", CreatedBy: "plugin:okta", CreatedAt: timestamppb.New(now)},
	})
	put(&typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "alice-hold", Expires: timestamppb.New(now.Add(48 * time.Hour))},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "alice@example.com"}, Message: "legal hold", CreatedBy: "carol", CreatedAt: timestamppb.New(now)},
	})
	put(&typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "no-prod"},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{Role: "prod"}, Message: "freeze"},
	})

	out, errMsg, code := gatectlAgainst(t, s, idFile, "", "locks", "ls")
	require.Equal(t, 0, code, errMsg)
	for _, want := range []string{"NAME", "scim-okta-1", "alice-hold", "no-prod", "role=prod", "plugin:okta", "never", "legal hold", now.Format(time.RFC3339)} {
		require.Contains(t, out, want)
	}

	// --user compares canonical names.
	out, errMsg, code = gatectlAgainst(t, s, idFile, "", "--format", "json", "locks", "ls", "--user", "Alice@Example.COM")
	require.Equal(t, 0, code, errMsg)
	var listed []lockOutput
	require.NoError(t, json.Unmarshal([]byte(out), &listed), out)
	require.Len(t, listed, 2)
	require.Equal(t, "alice-hold", listed[0].Name)
	require.Equal(t, now.Add(48*time.Hour).Format(time.RFC3339), listed[0].Expires)
	require.Equal(t, lockOutput{Name: "scim-okta-1", Target: "user=alice@example.com", Message: "deactivated in Okta", CreatedBy: "plugin:okta", CreatedAt: now.Format(time.RFC3339), Plugin: "okta", Reason: "scim-deactivation"}, listed[1])

	// Not confirmed: nothing is lifted, and the SCIM lock is explained.
	var stderr string
	out, stderr, code = gatectlAgainstErr(t, s, idFile, "no\n", "locks", "rm", "--user", "alice@example.com")
	require.Equal(t, 1, code, out)
	require.Contains(t, stderr, "not confirmed")
	require.Contains(t, stderr, "Lifting it does not restore the account: it stays deleted")
	require.Contains(t, stderr, "Assigning the person")
	require.Contains(t, stderr, "stays void")
	_, err := s.Auth.Services().Locks.GetLock(ctx, "scim-okta-1")
	require.NoError(t, err)

	// Confirmed: both of alice's locks are lifted, the role lock stays, and
	// each lift is audited under the admin who lifted it.
	out, stderr, code = gatectlAgainstErr(t, s, idFile, "yes\n", "locks", "rm", "--user", "ALICE@example.com")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `Lock "scim-okta-1" on user=alice@example.com lifted.`)
	require.Contains(t, out, `Lock "alice-hold" on user=alice@example.com lifted.`)
	for _, name := range []string{"scim-okta-1", "alice-hold"} {
		_, err := s.Auth.Services().Locks.GetLock(ctx, name)
		require.True(t, trace.IsNotFound(err), "%v", err)
	}
	events, err := s.Auth.Services().Events.Search(ctx, time.Time{}, time.Now().Add(24*time.Hour), []string{audit.EventLockDelete}, 0)
	require.NoError(t, err)
	require.Len(t, events, 2)
	for _, e := range events {
		require.Equal(t, services.BuiltinAdmin, e.GetUser(), "the event names who lifted the lock")
	}

	// By name, with --yes; a missing lock is a clear error.
	out, errMsg, code = gatectlAgainst(t, s, idFile, "", "locks", "rm", "no-prod", "--yes")
	require.Equal(t, 0, code, errMsg)
	require.Contains(t, out, `Lock "no-prod" on role=prod lifted.`)
	_, errMsg, code = gatectlAgainst(t, s, idFile, "", "locks", "rm", "no-prod", "--yes")
	require.Equal(t, 1, code)
	require.Contains(t, errMsg, `lock "no-prod" not found`)
	_, errMsg, code = gatectlAgainst(t, s, idFile, "", "locks", "rm", "--user", "nobody", "--yes")
	require.Equal(t, 1, code)
	require.Contains(t, errMsg, `no lock targets user "nobody"`)
	_, errMsg, code = gatectlAgainst(t, s, idFile, "", "locks", "rm")
	require.Equal(t, 1, code)
	require.Contains(t, errMsg, "needs a LOCKNAME or --user NAME")
	out, errMsg, code = gatectlAgainst(t, s, idFile, "", "locks", "ls")
	require.Equal(t, 0, code, errMsg)
	require.Equal(t, "No locks.\n", out)
}

// conflictingPlugins is a plugin API whose first updates fail with a
// revision conflict, as when SCIM's status counters are written between
// the read and the write.
type conflictingPlugins struct {
	pluginv1.PluginServiceClient
	stored    *typesv1.Plugin
	conflicts int
	reads     int
}

func (f *conflictingPlugins) GetPlugin(context.Context, *pluginv1.GetPluginRequest, ...grpc.CallOption) (*pluginv1.GetPluginResponse, error) {
	f.reads++
	return &pluginv1.GetPluginResponse{Plugin: proto.CloneOf(f.stored)}, nil
}

func (f *conflictingPlugins) UpdatePlugin(_ context.Context, req *pluginv1.UpdatePluginRequest, _ ...grpc.CallOption) (*pluginv1.UpdatePluginResponse, error) {
	if f.conflicts > 0 {
		f.conflicts--
		// Someone else changed another setting meanwhile.
		f.stored.Spec.GetOkta().GrantableRoles = []string{"access"}
		return nil, trace.CompareFailed("revision mismatch")
	}
	f.stored = req.GetPlugin()
	return &pluginv1.UpdatePluginResponse{Plugin: f.stored}, nil
}

func TestUpdateOktaSettingsRetriesConflicts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		conflicts int
		errMsg    string
	}{
		{conflicts: 0},
		{conflicts: 2},
		{conflicts: 3, errMsg: "kept changing"},
	} {
		f := &conflictingPlugins{conflicts: tc.conflicts, stored: &typesv1.Plugin{
			Metadata: &typesv1.Metadata{Name: "okta"},
			Spec:     &typesv1.PluginSpec{Settings: &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{SamlConnector: "okta"}}},
		}}
		p, err := updateOktaSettings(context.Background(), &apis{plugins: f}, "okta", func(o *typesv1.OktaPluginSettings) { o.LockTtl = "720h" })
		if tc.errMsg != "" {
			require.ErrorContains(t, err, tc.errMsg)
			require.Empty(t, f.stored.GetSpec().GetOkta().GetLockTtl())
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.conflicts+1, f.reads, "each conflict reads again")
		require.Equal(t, "720h", p.GetSpec().GetOkta().GetLockTtl())
		if tc.conflicts > 0 {
			require.Equal(t, []string{"access"}, p.GetSpec().GetOkta().GetGrantableRoles(), "the other change is kept")
		}
	}
}
