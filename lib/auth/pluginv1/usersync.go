package pluginv1

import (
	"context"
	"fmt"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/okta/oktaapi"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	pluginpb "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Sealer seals user sync credentials (*credseal.Sealer).
type Sealer interface {
	Seal(plaintext []byte, context string) ([]byte, error)
	KeyID() string
}

// Audit event types of user sync settings.
const (
	// EventUserSyncCredentials is a user sync credential set; the event
	// carries its kind and client ID, never the secret.
	EventUserSyncCredentials = "plugin.usersync.credentials"
	// EventUserSyncTrigger is a "sync now" request.
	EventUserSyncTrigger = "plugin.usersync.trigger"
)

// SealContext binds a sealed Okta API secret to its plugin.
func SealContext(plugin string) string { return plugin + "/okta_api" }

// SetUserSyncCredentials seals and stores an Okta API credential for
// plugin's user sync, replacing any previous one. The secret is never
// returned, logged or audited.
func (s *Service) SetUserSyncCredentials(ctx context.Context, req *pluginpb.SetUserSyncCredentialsRequest) (*pluginpb.SetUserSyncCredentialsResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	name := req.GetName()
	if err := generic.CheckName(kind, name); err != nil {
		return nil, trace.Wrap(err)
	}
	api, secret, err := userSyncCredential(req)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	ev := audit.Event{
		Type: EventUserSyncCredentials, User: actx.Username(), Resource: kind + "/" + name,
		Message: "user sync credential set (" + api.GetKind() + ")",
		Fields:  map[string]string{"kind": api.GetKind(), "client_id": api.GetClientId()},
	}
	err = s.storeUserSyncCredential(ctx, name, api, secret)
	ev.Err = err
	s.cfg.Recorder.Record(ctx, ev)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &pluginpb.SetUserSyncCredentialsResponse{Kind: api.GetKind()}, nil
}

// userSyncCredential checks a request: an API token, or a client ID with a
// private key that parses (RSA 2048+ or EC P-256).
func userSyncCredential(req *pluginpb.SetUserSyncCredentialsRequest) (*typesv1.OktaAPICredentials, []byte, error) {
	token, clientID, key := req.GetApiToken(), req.GetClientId(), req.GetPrivateKeyPem()
	switch {
	case token != "" && (clientID != "" || key != ""):
		return nil, nil, trace.BadParameter("give either an API token or an OAuth service app (client ID and private key), not both")
	case token != "":
		if len(token) > 1024 {
			return nil, nil, trace.BadParameter("the API token is over 1024 bytes")
		}
		return &typesv1.OktaAPICredentials{Kind: services.UserSyncCredentialAPIToken}, []byte(token), nil
	case clientID == "" || key == "":
		return nil, nil, trace.BadParameter("an OAuth service app needs both its client ID and its private key (PEM)")
	}
	if len(key) > 8192 {
		return nil, nil, trace.BadParameter("the private key is over 8192 bytes")
	}
	if _, err := oktaapi.ParsePrivateKey([]byte(key)); err != nil {
		return nil, nil, trace.Wrap(err)
	}
	return &typesv1.OktaAPICredentials{Kind: services.UserSyncCredentialOAuth, ClientId: clientID, KeyId: req.GetKeyId()}, []byte(key), nil
}

func (s *Service) storeUserSyncCredential(ctx context.Context, name string, api *typesv1.OktaAPICredentials, secret []byte) error {
	if s.cfg.Sealer == nil {
		return trace.NotImplemented("this server has no credentials key to seal user sync credentials with")
	}
	if _, err := s.cfg.Plugins.GetPlugin(ctx, name); err != nil {
		return trace.Wrap(err)
	}
	sealed, err := s.cfg.Sealer.Seal(secret, SealContext(name))
	if err != nil {
		return trace.Wrap(err)
	}
	api.SealedSecret = sealed
	api.SealingKeyId = s.cfg.Sealer.KeyID()
	item, err := services.MarshalPluginStaticCredentials(&typesv1.PluginStaticCredentials{
		Metadata: &typesv1.Metadata{
			Name:        services.UserSyncCredentialsName(name),
			Description: "Okta API credential of plugin " + name + "'s user sync (sealed)",
			Labels:      services.UserSyncCredentialsLabels(name),
		},
		Spec: &typesv1.PluginStaticCredentialsSpec{OktaApi: api},
	})
	if err != nil {
		return trace.Wrap(err)
	}
	_, err = s.cfg.Backend.Put(ctx, item)
	return trace.Wrap(err)
}

// SyncUsers asks for a run of plugin's user sync now: the request is a key
// in the backend that the server holding the sync's lease picks up, so it
// works whichever server the call lands on.
func (s *Service) SyncUsers(ctx context.Context, req *pluginpb.SyncUsersRequest) (*pluginpb.SyncUsersResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	name := req.GetName()
	if err := generic.CheckName(kind, name); err != nil {
		return nil, trace.Wrap(err)
	}
	id, err := s.triggerSync(ctx, name, req.GetFull())
	s.cfg.Recorder.Record(ctx, audit.Event{
		Type: EventUserSyncTrigger, User: actx.Username(), Resource: kind + "/" + name, Err: err,
		Message: fmt.Sprintf("user sync run requested (full pass: %v)", req.GetFull()),
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &pluginpb.SyncUsersResponse{TriggerId: id}, nil
}

func (s *Service) triggerSync(ctx context.Context, name string, full bool) (string, error) {
	p, err := s.cfg.Plugins.GetPlugin(ctx, name)
	if err != nil {
		return "", trace.Wrap(err)
	}
	if !p.GetSpec().GetOkta().GetUserSync().GetEnabled() {
		return "", trace.BadParameter("plugin %q does not have user sync enabled (spec.okta.user_sync.enabled)", name)
	}
	id, err := services.PutUserSyncTrigger(ctx, s.cfg.Backend, name, full)
	return id, trace.Wrap(err)
}

// GetUserSyncStatus returns plugin's user sync settings, state and the kind
// of credential stored (never the credential).
func (s *Service) GetUserSyncStatus(ctx context.Context, req *pluginpb.GetUserSyncStatusRequest) (*pluginpb.GetUserSyncStatusResponse, error) {
	if _, err := s.authorize(ctx, authz.VerbReadNoSecrets); err != nil {
		return nil, trace.Wrap(err)
	}
	name := req.GetName()
	if err := generic.CheckName(kind, name); err != nil {
		return nil, trace.Wrap(err)
	}
	p, err := s.cfg.Plugins.GetPlugin(ctx, name)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	st, err := services.GetUserSyncState(ctx, s.cfg.Backend, name)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	resp := &pluginpb.GetUserSyncStatusResponse{State: st, Settings: p.GetSpec().GetOkta().GetUserSync()}
	creds, err := s.cfg.StaticCredentials.ListPluginStaticCredentialsByLabels(ctx, services.UserSyncCredentialsLabels(name), false)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	for _, c := range creds {
		resp.CredentialKind = c.GetSpec().GetOktaApi().GetKind()
	}
	return resp, nil
}
