package services

import (
	"context"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend/memory"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func TestValidateUserSync(t *testing.T) {
	t.Parallel()
	good := func() *typesv1.OktaPluginSettings {
		return &typesv1.OktaPluginSettings{SamlConnector: "okta", UserSync: &typesv1.OktaUserSyncSettings{
			Enabled: true, OrgUrl: "https://example.okta.com", AppId: "0oa123", CredentialKind: UserSyncCredentialAPIToken,
		}}
	}
	for name, tc := range map[string]struct {
		edit    func(o *typesv1.OktaPluginSettings)
		wantErr string
	}{
		"valid":               {edit: func(o *typesv1.OktaPluginSettings) {}},
		"with SCIM":           {edit: func(o *typesv1.OktaPluginSettings) { o.ScimEnabled = true }, wantErr: "SCIM or user sync"},
		"SCIM, sync disabled": {edit: func(o *typesv1.OktaPluginSettings) { o.ScimEnabled = true; o.UserSync.Enabled = false }},
		"interval too short":  {edit: func(o *typesv1.OktaPluginSettings) { o.UserSync.Interval = "30s" }, wantErr: "under the minimum"},
		"interval garbage":    {edit: func(o *typesv1.OktaPluginSettings) { o.UserSync.Interval = "soon" }, wantErr: "not a duration"},
		"full pass too short": {edit: func(o *typesv1.OktaPluginSettings) { o.UserSync.Interval = "5m"; o.UserSync.FullPassInterval = "2m" }, wantErr: "shorter than interval"},
		"http org":            {edit: func(o *typesv1.OktaPluginSettings) { o.UserSync.OrgUrl = "http://example.okta.com" }, wantErr: "https"},
		"http loopback":       {edit: func(o *typesv1.OktaPluginSettings) { o.UserSync.OrgUrl = "http://127.0.0.1:8080" }},
		"org with path":       {edit: func(o *typesv1.OktaPluginSettings) { o.UserSync.OrgUrl = "https://example.okta.com/api" }, wantErr: "origin only"},
		"missing app":         {edit: func(o *typesv1.OktaPluginSettings) { o.UserSync.AppId = "" }, wantErr: "app_id is required"},
		"bad app":             {edit: func(o *typesv1.OktaPluginSettings) { o.UserSync.AppId = "../x" }, wantErr: "not an Okta app ID"},
		"missing kind":        {edit: func(o *typesv1.OktaPluginSettings) { o.UserSync.CredentialKind = "" }, wantErr: "credential_kind is required"},
		"unknown kind":        {edit: func(o *typesv1.OktaPluginSettings) { o.UserSync.CredentialKind = "password" }, wantErr: "credential_kind must be"},
		"disabled, partial":   {edit: func(o *typesv1.OktaPluginSettings) { o.UserSync.Enabled = false; o.UserSync.AppId = "" }},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := good()
			tc.edit(o)
			err := ValidateUserSync("okta", o)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	iv, full, err := UserSyncIntervals(&typesv1.OktaUserSyncSettings{})
	require.NoError(t, err)
	require.Equal(t, DefaultUserSyncInterval, iv)
	require.Equal(t, DefaultUserSyncFullPassInterval, full)
	iv, full, err = UserSyncIntervals(&typesv1.OktaUserSyncSettings{Interval: "2h"})
	require.NoError(t, err)
	require.Equal(t, 2*time.Hour, iv)
	require.Equal(t, 2*time.Hour, full, "the default full pass is never shorter than the interval")
}

func TestUserSyncCredentialsValidation(t *testing.T) {
	t.Parallel()
	cred := func(api *typesv1.OktaAPICredentials) *typesv1.PluginStaticCredentials {
		return &typesv1.PluginStaticCredentials{
			Metadata: &typesv1.Metadata{Name: "okta-okta-api"},
			Spec:     &typesv1.PluginStaticCredentialsSpec{OktaApi: api},
		}
	}
	require.NoError(t, ValidatePluginStaticCredentials(cred(&typesv1.OktaAPICredentials{Kind: UserSyncCredentialAPIToken, SealedSecret: []byte("x")})))
	require.NoError(t, ValidatePluginStaticCredentials(cred(&typesv1.OktaAPICredentials{Kind: UserSyncCredentialOAuth, ClientId: "0oa", SealedSecret: []byte("x")})))
	require.Error(t, ValidatePluginStaticCredentials(cred(&typesv1.OktaAPICredentials{Kind: UserSyncCredentialOAuth, SealedSecret: []byte("x")})))
	require.Error(t, ValidatePluginStaticCredentials(cred(&typesv1.OktaAPICredentials{Kind: UserSyncCredentialAPIToken})))
	require.Error(t, ValidatePluginStaticCredentials(cred(&typesv1.OktaAPICredentials{Kind: "x", SealedSecret: []byte("x")})))
	mixed := cred(&typesv1.OktaAPICredentials{Kind: UserSyncCredentialAPIToken, SealedSecret: []byte("x")})
	mixed.Spec.ScimTokenHash = []byte("hash")
	require.ErrorContains(t, ValidatePluginStaticCredentials(mixed), "cannot be stored with a SCIM token")

	c := cred(&typesv1.OktaAPICredentials{Kind: UserSyncCredentialAPIToken, SealedSecret: []byte("x")})
	StripPluginStaticCredentialsSecrets(c)
	require.Empty(t, c.GetSpec().GetOktaApi().GetSealedSecret())
	require.Equal(t, UserSyncCredentialAPIToken, c.GetSpec().GetOktaApi().GetKind())
}

func TestUserSyncStateAndTrigger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := memory.New(ctx, memory.Config{})
	require.NoError(t, err)
	st, err := GetUserSyncState(ctx, b, "okta")
	require.NoError(t, err)
	require.Zero(t, st.GetUsersSeen())
	require.NoError(t, PutUserSyncState(ctx, b, "okta", &typesv1.OktaUserSyncState{UsersSeen: 7}))
	st, err = GetUserSyncState(ctx, b, "okta")
	require.NoError(t, err)
	require.EqualValues(t, 7, st.GetUsersSeen())

	tr, err := TakeUserSyncTrigger(ctx, b, "okta")
	require.NoError(t, err)
	require.Nil(t, tr)
	id, err := PutUserSyncTrigger(ctx, b, "okta", true)
	require.NoError(t, err)
	tr, err = TakeUserSyncTrigger(ctx, b, "okta")
	require.NoError(t, err)
	require.Equal(t, id, tr.ID)
	require.True(t, tr.Full)
	tr, err = TakeUserSyncTrigger(ctx, b, "okta")
	require.NoError(t, err)
	require.Nil(t, tr, "a request is answered once")
}

func TestHoldUserSyncLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, b, clock := newServices(t)
	l, err := HoldUserSyncLease(ctx, b, "okta", "server-a", clock.Now().Add(time.Minute), nil)
	require.NoError(t, err)
	_, err = HoldUserSyncLease(ctx, b, "okta", "server-b", clock.Now().Add(time.Minute), nil)
	require.True(t, trace.IsAlreadyExists(err), "held by server-a: %v", err)
	renewed, err := HoldUserSyncLease(ctx, b, "okta", "server-a", clock.Now().Add(2*time.Minute), l)
	require.NoError(t, err)
	item, err := b.Get(ctx, UserSyncLeaseKey("okta"))
	require.NoError(t, err)
	require.Equal(t, "server-a", string(item.Value))
	require.Equal(t, clock.Now().Add(2*time.Minute), item.Expires)
	_, err = HoldUserSyncLease(ctx, b, "okta", "server-a", clock.Now().Add(time.Minute), l)
	require.Error(t, err, "a stale lease cannot be renewed")
	require.NotEqual(t, l.Revision, renewed.Revision)
}
