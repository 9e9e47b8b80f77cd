package pluginv1

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/credseal"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/okta/oktaapi"
	"github.com/gatehouse/gatehouse/lib/services"
	pluginpb "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Sealer seals and opens user sync credentials (*credseal.File).
type Sealer interface {
	Seal(plaintext []byte, context string) ([]byte, error)
	Open(sealed []byte, context, keyID string) ([]byte, error)
	KeyID() string
}

// Audit event types of user sync settings.
const (
	// EventUserSyncCredentials is a user sync credential set; the event
	// carries its kind and client ID, never the secret.
	EventUserSyncCredentials = "plugin.usersync.credentials"
	// EventUserSyncTrigger is a "sync now" request.
	EventUserSyncTrigger = "plugin.usersync.trigger"
	// EventUserSyncTest is a connection test.
	EventUserSyncTest = "plugin.usersync.test"
)

// SealContext binds a sealed Okta API secret to its plugin.
func SealContext(plugin string) string { return credseal.OktaAPIContext(plugin) }

// SetUserSyncCredentials seals and stores an Okta API credential for
// plugin's user sync, replacing any previous one. The secret is never
// returned, logged or audited.
func (s *Service) SetUserSyncCredentials(ctx context.Context, req *pluginpb.SetUserSyncCredentialsRequest) (*pluginpb.SetUserSyncCredentialsResponse, error) {
	name := req.GetName()
	actx, err := s.authorizeOn(ctx, name, services.VerbUpdate)
	if err != nil {
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
	// Written whatever is stored: a new credential replaces the old one.
	var plan services.Plan
	err = plan.PutPluginStaticCredentials(&typesv1.PluginStaticCredentials{
		Metadata: &typesv1.Metadata{
			Name:        services.UserSyncCredentialsName(name),
			Description: "Okta API credential of plugin " + name + "'s user sync (sealed)",
			Labels:      services.UserSyncCredentialsLabels(name),
		},
		Spec: &typesv1.PluginStaticCredentialsSpec{OktaApi: api},
	}, backend.Whatever())
	if err != nil {
		return trace.Wrap(err)
	}
	_, err = plan.Commit(ctx, s.cfg.Backend)
	return trace.Wrap(err)
}

// SyncUsers asks for a run of plugin's user sync now: the request is a key
// in the backend that the server holding the sync's lease picks up, so it
// works whichever server the call lands on.
func (s *Service) SyncUsers(ctx context.Context, req *pluginpb.SyncUsersRequest) (*pluginpb.SyncUsersResponse, error) {
	name := req.GetName()
	actx, err := s.authorizeOn(ctx, name, services.VerbUpdate)
	if err != nil {
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
	name := req.GetName()
	if _, err := s.authorizeOn(ctx, name, services.VerbReadNoSecrets); err != nil {
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

// TestUserSyncConnection calls Okta once (the first user of the app's
// assignments) with the plugin's user sync settings and stored credential.
// Problems with the settings or with Okta's answer are reported in the
// response, for the operator to fix; only a failure to authorize or read
// Gatehouse's own state is an error.
func (s *Service) TestUserSyncConnection(ctx context.Context, req *pluginpb.TestUserSyncConnectionRequest) (*pluginpb.TestUserSyncConnectionResponse, error) {
	name := req.GetName()
	actx, err := s.authorizeOn(ctx, name, services.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	resp, err := s.testConnection(ctx, name)
	ev := audit.Event{Type: EventUserSyncTest, User: actx.Username(), Resource: kind + "/" + name, Err: err}
	if resp != nil {
		ev.Message = resp.GetMessage()
		ev.Fields = map[string]string{"ok": fmt.Sprint(resp.GetOk())}
	}
	s.cfg.Recorder.Record(ctx, ev)
	return resp, trace.Wrap(err)
}

func (s *Service) testConnection(ctx context.Context, name string) (*pluginpb.TestUserSyncConnectionResponse, error) {
	fail := func(format string, args ...any) (*pluginpb.TestUserSyncConnectionResponse, error) {
		return &pluginpb.TestUserSyncConnectionResponse{Message: fmt.Sprintf(format, args...)}, nil
	}
	p, err := s.cfg.Plugins.GetPlugin(ctx, name)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	us := p.GetSpec().GetOkta().GetUserSync()
	if us.GetOrgUrl() == "" || us.GetAppId() == "" {
		return fail("set the Okta org URL and the app ID first")
	}
	org, err := services.ParseOktaOrgURL(us.GetOrgUrl())
	if err != nil {
		return fail("%v", trace.UserMessage(err))
	}
	creds, err := s.cfg.StaticCredentials.ListPluginStaticCredentialsByLabels(ctx, services.UserSyncCredentialsLabels(name), true)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	var api *typesv1.OktaAPICredentials
	for _, c := range creds {
		api = c.GetSpec().GetOktaApi()
	}
	if api == nil {
		return fail("no credential is stored: set an API token or a service app's client ID and private key")
	}
	if s.cfg.Sealer == nil {
		return nil, trace.NotImplemented("this server has no credentials key")
	}
	secret, err := s.cfg.Sealer.Open(api.GetSealedSecret(), SealContext(name), api.GetSealingKeyId())
	if err != nil {
		return fail("%v", trace.UserMessage(err))
	}
	var cred oktaapi.Credential = oktaapi.APIToken(string(secret))
	if api.GetKind() == services.UserSyncCredentialOAuth {
		if cred, err = oktaapi.NewOAuthApp(api.GetClientId(), api.GetKeyId(), secret); err != nil {
			return fail("%v", trace.UserMessage(err))
		}
	}
	client, err := oktaapi.New(oktaapi.Config{OrgURL: org.String(), Credential: cred, HTTPClient: &http.Client{Timeout: 20 * time.Second}, Logger: s.cfg.Logger})
	if err != nil {
		return fail("%v", trace.UserMessage(err))
	}
	switch err := client.CheckApp(ctx, us.GetAppId()); {
	case err == nil:
		return &pluginpb.TestUserSyncConnectionResponse{Ok: true, Message: fmt.Sprintf("Okta answered: the %s credential can list the users assigned to app %s", api.GetKind(), us.GetAppId())}, nil
	case trace.IsNotFound(err):
		return fail("Okta has no app %q visible to this credential: check the app ID (and that the credential may read apps)", us.GetAppId())
	default:
		return fail("%v", trace.UserMessage(err))
	}
}
