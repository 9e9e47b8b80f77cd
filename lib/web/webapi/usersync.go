package webapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/encoding/protojson"

	pluginpb "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// UserSyncAPI is the part of the plugin API behind the Okta tile's User sync
// card (lib/auth/pluginv1.Service). The card's endpoints exist when the
// configured Plugins implements it.
type UserSyncAPI interface {
	GetUserSyncStatus(ctx context.Context, req *pluginpb.GetUserSyncStatusRequest) (*pluginpb.GetUserSyncStatusResponse, error)
	SetUserSyncCredentials(ctx context.Context, req *pluginpb.SetUserSyncCredentialsRequest) (*pluginpb.SetUserSyncCredentialsResponse, error)
	TestUserSyncConnection(ctx context.Context, req *pluginpb.TestUserSyncConnectionRequest) (*pluginpb.TestUserSyncConnectionResponse, error)
	SyncUsers(ctx context.Context, req *pluginpb.SyncUsersRequest) (*pluginpb.SyncUsersResponse, error)
}

// registerUserSync adds the User sync card's endpoints:
//
//	GET  /v1/webapi/plugins/okta/usersync              settings, state, credential kind
//	PUT  /v1/webapi/plugins/okta/usersync              settings (UserSyncSettingsRequest)
//	PUT  /v1/webapi/plugins/okta/usersync/credentials  the credential (never returned)
//	POST /v1/webapi/plugins/okta/usersync/test         one call to Okta
//	POST /v1/webapi/plugins/okta/usersync/sync         sync now ({"full": bool})
func (h *Handler) registerUserSync() {
	api, ok := h.cfg.Plugins.(UserSyncAPI)
	if !ok {
		return
	}
	h.mux.Handle("GET /v1/webapi/plugins/okta/usersync", h.authed(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return h.userSyncStatus(r.Context(), api)
	}))
	h.mux.Handle("PUT /v1/webapi/plugins/okta/usersync", h.authed(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var req UserSyncSettingsRequest
		if err := readJSON(w, r, &req); err != nil {
			return nil, trace.Wrap(err)
		}
		if err := h.setUserSync(r.Context(), req); err != nil {
			return nil, trace.Wrap(err)
		}
		return h.userSyncStatus(r.Context(), api)
	}))
	h.mux.Handle("PUT /v1/webapi/plugins/okta/usersync/credentials", h.authed(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var req UserSyncCredentialsRequest
		if err := readJSON(w, r, &req); err != nil {
			return nil, trace.Wrap(err)
		}
		resp, err := api.SetUserSyncCredentials(r.Context(), &pluginpb.SetUserSyncCredentialsRequest{
			Name: OktaPlugin, ApiToken: req.APIToken, ClientId: req.ClientID, PrivateKeyPem: req.PrivateKeyPEM, KeyId: req.KeyID,
		})
		if err != nil {
			return nil, trace.Wrap(err)
		}
		return map[string]string{"credential_kind": resp.GetKind()}, nil
	}))
	h.mux.Handle("POST /v1/webapi/plugins/okta/usersync/test", h.authed(func(w http.ResponseWriter, r *http.Request) (any, error) {
		resp, err := api.TestUserSyncConnection(r.Context(), &pluginpb.TestUserSyncConnectionRequest{Name: OktaPlugin})
		if err != nil {
			return nil, trace.Wrap(err)
		}
		return map[string]any{"ok": resp.GetOk(), "message": resp.GetMessage()}, nil
	}))
	h.mux.Handle("POST /v1/webapi/plugins/okta/usersync/sync", h.authed(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var req struct {
			Full bool `json:"full"`
		}
		if r.ContentLength != 0 {
			if err := readJSON(w, r, &req); err != nil {
				return nil, trace.Wrap(err)
			}
		}
		resp, err := api.SyncUsers(r.Context(), &pluginpb.SyncUsersRequest{Name: OktaPlugin, Full: req.Full})
		if err != nil {
			return nil, trace.Wrap(err)
		}
		return map[string]string{"trigger_id": resp.GetTriggerId()}, nil
	}))
}

// UserSyncSettingsRequest is PUT /v1/webapi/plugins/okta/usersync. Empty
// strings keep the stored value.
type UserSyncSettingsRequest struct {
	Enabled          bool   `json:"enabled"`
	OrgURL           string `json:"org_url"`
	AppID            string `json:"app_id"`
	CredentialKind   string `json:"credential_kind"`
	Interval         string `json:"interval"`
	FullPassInterval string `json:"full_pass_interval"`
	// SwitchFromSCIM turns SCIM off in the same update; without it,
	// enabling user sync while SCIM is on is refused.
	SwitchFromSCIM bool `json:"switch_from_scim"`
}

// UserSyncCredentialsRequest is PUT /v1/webapi/plugins/okta/usersync/credentials:
// an API token, or a service app's client ID and private key.
type UserSyncCredentialsRequest struct {
	APIToken      string `json:"api_token,omitempty"`
	ClientID      string `json:"client_id,omitempty"`
	PrivateKeyPEM string `json:"private_key_pem,omitempty"`
	KeyID         string `json:"key_id,omitempty"`
}

// userSyncStatus is the card's state: GetUserSyncStatus in its protojson
// form (settings, state, credential_kind; never the credential).
func (h *Handler) userSyncStatus(ctx context.Context, api UserSyncAPI) (any, error) {
	resp, err := api.GetUserSyncStatus(ctx, &pluginpb.GetUserSyncStatusRequest{Name: OktaPlugin})
	if trace.IsNotFound(err) {
		return nil, trace.BadParameter("set up SSO first")
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(resp)
	return json.RawMessage(b), trace.Wrap(err)
}

// setUserSync updates the plugin's user sync settings, retrying when the
// plugin changed between read and update.
func (h *Handler) setUserSync(ctx context.Context, req UserSyncSettingsRequest) error {
	return trace.Wrap(h.updateOkta(ctx, func(okta *typesv1.OktaPluginSettings) error {
		if okta.UserSync == nil {
			okta.UserSync = &typesv1.OktaUserSyncSettings{}
		}
		us := okta.UserSync
		us.Enabled = req.Enabled
		for _, set := range []struct {
			dst *string
			v   string
		}{{&us.OrgUrl, req.OrgURL}, {&us.AppId, req.AppID}, {&us.CredentialKind, req.CredentialKind}, {&us.Interval, req.Interval}, {&us.FullPassInterval, req.FullPassInterval}} {
			if set.v != "" {
				*set.dst = set.v
			}
		}
		if req.Enabled && okta.GetScimEnabled() {
			if !req.SwitchFromSCIM {
				return trace.BadParameter("SCIM is on: a plugin runs SCIM or user sync, never both. Switch explicitly (switch_from_scim) to turn SCIM off and user sync on")
			}
			okta.ScimEnabled = false
		}
		return nil
	}))
}
