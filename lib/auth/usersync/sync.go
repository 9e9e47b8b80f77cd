// Package usersync is Okta user sync, the pull alternative to SCIM: it
// reads the users assigned to the plugin's Okta app from Okta's management
// API and applies each one through the SCIM provisioner's own transitions
// (scimprov.ApplyPulledUser), so that pulled users follow exactly the SCIM
// rules: origin, adoption, reach, canonical names, incarnations, grant
// ceiling, and deactivation as one atomic write of record, account delete,
// lock and audit event.
//
// What a run may change, and when:
//
//   - A user in a page Okta answered completely (a 200 with a whole JSON
//     array) is applied at once: created, updated, reactivated, or deleted
//     and locked when Okta reports it suspended or deactivated. Those
//     changes are confirmed by Okta's own answer.
//   - A user who is no longer assigned is not in any page, so absence is
//     the only evidence in a listing. Absence is acted on only after a
//     full pass whose every page was answered completely; a run that fails
//     part way, an error, a truncated page or an empty listing while
//     accounts exist deactivates nobody.
//   - Between full passes, an incremental run also reads Okta's System Log
//     since its cursor for the events that end a user's access (removed
//     from the app, deactivated, suspended, deleted). An event is only a
//     hint: each such user with an active account is read directly
//     (GET /api/v1/apps/{appId}/users/{userId}), and only that answer
//     changes anything: 404 (no longer assigned, in an app this run has
//     just listed) deactivates; a 200 is applied like a listed user (so a
//     user re-assigned since the event keeps the account); any other
//     answer fails the run and changes nothing more. An org that refuses
//     the System Log (403) leaves unassignments to full passes, and the
//     status says so as a warning.
//   - The cursor (for incremental runs) moves only after a clean run.
//
// One server runs a plugin's sync at a time: see runner.go.
package usersync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/credseal"
	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/okta/oktaapi"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// cursorOverlap is how far before a run's start the next incremental run
// reads again: changes made while a run lists pages, and a small clock skew
// between Okta and this server, are read twice rather than missed.
const cursorOverlap = time.Minute

// activeStatuses are the Okta user statuses that keep an account: the user
// exists and is enabled in Okta. A locked-out user or one whose password
// expired cannot sign in to Okta until that is fixed, which already stops
// new sign-ins; SUSPENDED, DEPROVISIONED (deactivated), STAGED and
// PROVISIONED (not yet activated) users get no account.
var activeStatuses = []string{"ACTIVE", "PASSWORD_EXPIRED", "LOCKED_OUT", "RECOVERY"}

// Provisioner applies pulled users (*scimprov.Provisioner).
type Provisioner interface {
	ApplyPulledUser(ctx context.Context, plugin string, in scimprov.PulledUser) (scimprov.PullResult, error)
	ListUsers(ctx context.Context, plugin, startAfterID string, limit int) ([]*scimrecord.UserRecord, error)
}

// Plugins reads plugins (*services.PluginService).
type Plugins interface {
	GetPlugin(ctx context.Context, name string) (*typesv1.Plugin, error)
	ListAllPlugins(ctx context.Context) ([]*typesv1.Plugin, error)
}

// Credentials finds the sealed credential (*services.PluginStaticCredentialsService).
type Credentials interface {
	ListPluginStaticCredentialsByLabels(ctx context.Context, labels map[string]string, withSecrets bool) ([]*typesv1.PluginStaticCredentials, error)
}

// SAMLConnectors reads the plugin's connector, for the groups its role
// mapping names (*services.SAMLConnectorService).
type SAMLConnectors interface {
	GetSAMLConnector(ctx context.Context, name string, withSecrets bool) (*typesv1.SAMLConnector, error)
}

// Opener opens sealed credentials (*credseal.Sealer).
type Opener interface {
	Open(sealed []byte, context, keyID string) ([]byte, error)
}

var (
	_ Provisioner    = (*scimprov.Provisioner)(nil)
	_ Plugins        = (*services.PluginService)(nil)
	_ Credentials    = (*services.PluginStaticCredentialsService)(nil)
	_ SAMLConnectors = (*services.SAMLConnectorService)(nil)
)

// Config configures a Syncer.
type Config struct {
	Backend        backend.Backend
	Provisioner    Provisioner
	Plugins        Plugins
	Credentials    Credentials
	SAMLConnectors SAMLConnectors
	Opener         Opener
	// HTTPClient calls Okta; a default one if nil.
	HTTPClient *http.Client
	// ClientConfig tunes the Okta client (backoff, page size, and the
	// clock its waits use, Clock by default); its OrgURL, Credential,
	// Logger and OnResponse are set per run.
	ClientConfig oktaapi.Config
	// Metrics, if set, receives run metrics.
	Metrics *Metrics
	Clock   clockwork.Clock
	Logger  *slog.Logger
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.Backend == nil:
		return trace.BadParameter("usersync: missing Backend")
	case c.Provisioner == nil:
		return trace.BadParameter("usersync: missing Provisioner")
	case c.Plugins == nil:
		return trace.BadParameter("usersync: missing Plugins")
	case c.Credentials == nil:
		return trace.BadParameter("usersync: missing Credentials")
	case c.SAMLConnectors == nil:
		return trace.BadParameter("usersync: missing SAMLConnectors")
	case c.Opener == nil:
		return trace.BadParameter("usersync: missing Opener")
	}
	defaults.ClockFrom(&c.Clock, c.Backend.Clock)
	defaults.Logger(&c.Logger, "usersync")
	return nil
}

// Syncer runs user sync for any plugin.
type Syncer struct {
	cfg Config
}

// New returns a Syncer.
func New(cfg Config) (*Syncer, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &Syncer{cfg: cfg}, nil
}

// run is one run's working state.
type run struct {
	plugin    string
	settings  *typesv1.OktaUserSyncSettings
	full      bool
	state     *typesv1.OktaUserSyncState
	client    *oktaapi.Client
	apiCalls  int64
	memberOf  map[string][]scimrecord.GroupRef
	seen      map[string]bool
	refusals  []string
	warnings  []string
	lastWrite time.Time
}

// RunRequest says how to run.
type RunRequest struct {
	// Full asks for a full pass.
	Full bool
	// TriggerID is the "sync now" request the run answers, if any.
	TriggerID string
	// Holder names the server running it, for the state.
	Holder string
}

// Run runs plugin's sync once: a full pass when req.Full is set, when there
// is no cursor yet, or when the last clean full pass is older than the
// full-pass interval. It returns the state it wrote; the error is also in
// the state.
func (s *Syncer) Run(ctx context.Context, plugin string, req RunRequest) (*typesv1.OktaUserSyncState, error) {
	full, triggerID := req.Full, req.TriggerID
	start := s.cfg.Clock.Now()
	prev, err := services.GetUserSyncState(ctx, s.cfg.Backend, plugin)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	st := proto.Clone(prev).(*typesv1.OktaUserSyncState)
	st.LastRunStart = timestamppb.New(start)
	st.LastRunEnd = nil
	st.Running = true
	st.Holder = req.Holder
	st.UsersSeen, st.UsersCreated, st.UsersUpdated, st.UsersLocked, st.UsersRefused, st.ApiCalls = 0, 0, 0, 0, 0, 0
	r := &run{plugin: plugin, state: st, seen: map[string]bool{}}
	err = s.prepare(ctx, r, full)
	st.LastRunFull = r.full
	if err == nil {
		s.writeState(ctx, r, true)
		err = s.sync(ctx, r, start)
	}
	end := s.cfg.Clock.Now()
	st.Running = false
	st.LastRunEnd = timestamppb.New(end)
	st.LastRunOk = err == nil
	st.ApiCalls = r.apiCalls
	if triggerID != "" {
		st.LastTriggerId = triggerID
	}
	if err != nil {
		st.LastError = trace.UserMessage(err)
		st.LastErrorTime = timestamppb.New(end)
	} else {
		st.LastError = ""
		notes := r.warnings
		if len(r.refusals) > 0 {
			notes = append([]string{fmt.Sprintf("%d user(s) not applied: %s", len(r.refusals), r.refusals[0])}, notes...)
		}
		if len(notes) > 0 {
			st.LastError = strings.Join(notes, "; ")
			st.LastErrorTime = timestamppb.New(end)
		}
		st.Cursor = timestamppb.New(start.Add(-cursorOverlap))
		if r.full {
			st.LastFullPass = timestamppb.New(start)
		}
	}
	if r.settings != nil {
		if interval, _, ierr := services.UserSyncIntervals(r.settings); ierr == nil {
			st.NextRun = timestamppb.New(start.Add(interval))
		}
	}
	if werr := services.PutUserSyncState(context.WithoutCancel(ctx), s.cfg.Backend, plugin, st); werr != nil {
		s.cfg.Logger.WarnContext(ctx, "Failed to write the user sync state.", "plugin", plugin, "error", werr)
	}
	s.cfg.Metrics.observeRun(plugin, r.full, err, end.Sub(start), st)
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "User sync run failed; accounts not confirmed by Okta were left as they were.", "plugin", plugin, "full", r.full, "error", err)
	} else {
		s.cfg.Logger.InfoContext(ctx, "User sync run done.", "plugin", plugin, "full", r.full,
			"seen", st.UsersSeen, "created", st.UsersCreated, "updated", st.UsersUpdated, "locked", st.UsersLocked,
			"refused", st.UsersRefused, "api_calls", st.ApiCalls, "duration", end.Sub(start))
	}
	return st, trace.Wrap(err)
}

// prepare reads the plugin and its credential and decides the pass.
func (s *Syncer) prepare(ctx context.Context, r *run, full bool) error {
	p, err := s.cfg.Plugins.GetPlugin(ctx, r.plugin)
	if err != nil {
		return trace.Wrap(err)
	}
	okta := p.GetSpec().GetOkta()
	us := okta.GetUserSync()
	if !us.GetEnabled() {
		return trace.BadParameter("plugin %q does not have user sync enabled", r.plugin)
	}
	if okta.GetScimEnabled() {
		return trace.BadParameter("plugin %q has SCIM on; user sync does not run beside it", r.plugin)
	}
	r.settings = us
	_, fullEvery, err := services.UserSyncIntervals(us)
	if err != nil {
		return trace.Wrap(err)
	}
	last := r.state.GetLastFullPass()
	r.full = full || r.state.GetCursor() == nil || last == nil || s.cfg.Clock.Now().Sub(last.AsTime()) >= fullEvery
	cred, err := s.credential(ctx, r.plugin, us.GetCredentialKind())
	if err != nil {
		return trace.Wrap(err)
	}
	org, err := services.ParseOktaOrgURL(us.GetOrgUrl())
	if err != nil {
		return trace.Wrap(err)
	}
	cc := s.cfg.ClientConfig
	cc.OrgURL = org.String()
	cc.Credential = cred
	defaults.IfZero(&cc.Clock, s.cfg.Clock)
	cc.Logger = s.cfg.Logger
	if s.cfg.HTTPClient != nil {
		cc.HTTPClient = s.cfg.HTTPClient
	}
	cc.OnResponse = func(endpoint string, status int) {
		r.apiCalls++
		s.cfg.Metrics.observeCall(r.plugin, endpoint, status)
	}
	r.client, err = oktaapi.New(cc)
	return trace.Wrap(err)
}

// credential opens the plugin's sealed credential.
func (s *Syncer) credential(ctx context.Context, plugin, kind string) (oktaapi.Credential, error) {
	creds, err := s.cfg.Credentials.ListPluginStaticCredentialsByLabels(ctx, services.UserSyncCredentialsLabels(plugin), true)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	var api *typesv1.OktaAPICredentials
	for _, c := range creds {
		if c.GetSpec().GetOktaApi() != nil {
			api = c.GetSpec().GetOktaApi()
		}
	}
	if api == nil {
		return nil, trace.NotFound("plugin %q has no user sync credential: set one with gatectl plugins usersync-credentials", plugin)
	}
	if api.GetKind() != kind {
		return nil, trace.BadParameter("plugin %q: user sync is set to use a %s credential but a %s one is stored", plugin, kind, api.GetKind())
	}
	secret, err := s.cfg.Opener.Open(api.GetSealedSecret(), credseal.OktaAPIContext(plugin), api.GetSealingKeyId())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	switch kind {
	case services.UserSyncCredentialAPIToken:
		return oktaapi.APIToken(string(secret)), nil
	case services.UserSyncCredentialOAuth:
		app, err := oktaapi.NewOAuthApp(api.GetClientId(), api.GetKeyId(), secret)
		return app, trace.Wrap(err)
	}
	return nil, trace.BadParameter("unknown credential kind %q", kind)
}

// sync reads groups and users and applies them.
func (s *Syncer) sync(ctx context.Context, r *run, start time.Time) error {
	if err := s.readGroups(ctx, r); err != nil {
		return trace.Wrap(err, "reading Okta groups")
	}
	var since time.Time
	if !r.full {
		since = r.state.GetCursor().AsTime()
	}
	list := func(since time.Time) error {
		return r.client.ListAppUsers(ctx, r.settings.GetAppId(), since, func(page []oktaapi.AppUser) error {
			for _, au := range page {
				if err := s.apply(ctx, r, au); err != nil {
					return trace.Wrap(err)
				}
			}
			s.writeState(ctx, r, false)
			return nil
		})
	}
	err := list(since)
	var serr *oktaapi.StatusError
	if !r.full && errors.As(err, &serr) && serr.Status == http.StatusBadRequest {
		// An org that refuses the lastUpdated filter is read in full: this
		// run becomes a full pass (users already applied are applied
		// again, as no-ops).
		s.cfg.Logger.WarnContext(ctx, "Okta refused the incremental filter; running a full pass instead.", "plugin", r.plugin, "error", err)
		r.full = true
		r.state.LastRunFull = true
		r.state.UsersSeen = 0
		clear(r.seen)
		err = list(time.Time{})
	}
	if err != nil {
		return trace.Wrap(err, "listing the users assigned to Okta app %q", r.settings.GetAppId())
	}
	if !r.full {
		if err := s.confirmRemovals(ctx, r); err != nil {
			return trace.Wrap(err)
		}
	}
	// Accounts Okta did not list: on a full pass they are no longer
	// assigned; on either pass, their groups may have changed.
	return trace.Wrap(s.reconcileUnlisted(ctx, r))
}

// readGroups reads the members of the groups the SAML connector's role
// mapping names (every group when it maps any value). No mapping of the
// groups attribute means no call.
func (s *Syncer) readGroups(ctx context.Context, r *run) error {
	r.memberOf = map[string][]scimrecord.GroupRef{}
	p, err := s.cfg.Plugins.GetPlugin(ctx, r.plugin)
	if err != nil {
		return trace.Wrap(err)
	}
	conn, err := s.cfg.SAMLConnectors.GetSAMLConnector(ctx, p.GetSpec().GetOkta().GetSamlConnector(), false)
	if trace.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return trace.Wrap(err)
	}
	names := map[string]bool{}
	all := false
	for _, m := range conn.GetSpec().GetAttributesToRoles() {
		if m.GetName() != scimprov.TraitGroups {
			continue
		}
		if m.GetValue() == services.AttributeWildcard {
			all = true
		}
		names[m.GetValue()] = true
	}
	if len(names) == 0 {
		return nil
	}
	var groups []oktaapi.Group
	if err := r.client.ListGroups(ctx, "", func(page []oktaapi.Group) error {
		for _, g := range page {
			if all || names[g.Profile.Name] {
				groups = append(groups, g)
			}
		}
		return nil
	}); err != nil {
		return trace.Wrap(err)
	}
	for _, g := range groups {
		ref := scimrecord.GroupRef{ID: "okta:" + g.ID, DisplayName: g.Profile.Name}
		if err := r.client.ListGroupMembers(ctx, g.ID, func(page []oktaapi.User) error {
			for _, u := range page {
				r.memberOf[u.ID] = append(r.memberOf[u.ID], ref)
			}
			return nil
		}); err != nil {
			return trace.Wrap(err)
		}
	}
	return nil
}

// apply applies one listed user. A user the provisioner refuses (a name
// outside the plugin's reach, an invalid login) is counted and reported,
// and the run goes on; any other failure ends the run.
func (s *Syncer) apply(ctx context.Context, r *run, au oktaapi.AppUser) error {
	u := au.Embedded.User
	if u == nil || u.ID == "" {
		return trace.BadParameter("Okta listed an app user without its user object (expand=user): the listing cannot be trusted")
	}
	r.state.UsersSeen++
	r.seen[u.ID] = true
	in := scimprov.PulledUser{
		ExternalID: u.ID,
		UserName:   u.Login(),
		Active:     slices.Contains(activeStatuses, u.Status),
		Attributes: profileAttributes(u.Profile),
		Groups:     r.memberOf[u.ID],
	}
	return s.applyOne(ctx, r, in)
}

func (s *Syncer) applyOne(ctx context.Context, r *run, in scimprov.PulledUser) error {
	res, err := s.cfg.Provisioner.ApplyPulledUser(ctx, r.plugin, in)
	switch {
	case err == nil:
	case trace.IsAlreadyExists(err) || trace.IsBadParameter(err):
		r.state.UsersRefused++
		if len(r.refusals) < 10 {
			r.refusals = append(r.refusals, fmt.Sprintf("Okta user %s (%q): %v", in.ExternalID, in.UserName, trace.UserMessage(err)))
		}
		s.cfg.Logger.WarnContext(ctx, "User sync could not apply an Okta user.", "plugin", r.plugin, "okta_id", in.ExternalID, "error", err)
		return nil
	default:
		return trace.Wrap(err)
	}
	switch res {
	case scimprov.PullCreated:
		r.state.UsersCreated++
	case scimprov.PullUpdated, scimprov.PullReactivated:
		r.state.UsersUpdated++
	case scimprov.PullDeactivated:
		r.state.UsersLocked++
	}
	s.cfg.Metrics.observeChange(r.plugin, res)
	return nil
}

// membershipRemove is the System Log event of a user removed from an app.
const membershipRemove = "application.user_membership.remove"

// lifecycleRemovals are the System Log events of a user whose access ends
// in every app: deactivated, suspended, deleted.
var lifecycleRemovals = []string{"user.lifecycle.deactivate", "user.lifecycle.suspend", "user.lifecycle.delete.initiated"}

// removalFilter is the System Log filter for the events that may end a
// user's access to appID.
func removalFilter(appID string) string {
	var parts []string
	for _, t := range lifecycleRemovals {
		parts = append(parts, fmt.Sprintf("eventType eq %q", t))
	}
	parts = append(parts, fmt.Sprintf("(eventType eq %q and target.id eq %q)", membershipRemove, appID))
	return strings.Join(parts, " or ")
}

// removalCandidates adds the users an event may have taken access from:
// ids by Okta user id, logins by the app user's login (a membership event
// names both the User and the AppUser). Events about another app are
// ignored whatever the filter let through.
func removalCandidates(ev oktaapi.LogEvent, appID string, ids, logins map[string]bool) {
	if ev.Outcome.Result != "" && ev.Outcome.Result != "SUCCESS" {
		return
	}
	if ev.EventType == membershipRemove {
		forApp := false
		for _, t := range ev.Target {
			if t.Type == "AppInstance" && t.ID == appID {
				forApp = true
			}
		}
		if !forApp {
			return
		}
	} else if !slices.Contains(lifecycleRemovals, ev.EventType) {
		return
	}
	for _, t := range ev.Target {
		switch t.Type {
		case "User":
			ids[t.ID] = true
		case "AppUser":
			if t.AlternateID != "" {
				logins[strings.ToLower(t.AlternateID)] = true
			}
		}
	}
}

// confirmRemovals reads the System Log since the cursor and confirms, user
// by user, each removal it hints at (see the package comment). It runs
// after the incremental listing, which proved the app exists: a 404 for
// one of its assignments then means that user is not assigned.
func (s *Syncer) confirmRemovals(ctx context.Context, r *run) error {
	appID := r.settings.GetAppId()
	ids, logins := map[string]bool{}, map[string]bool{}
	err := r.client.ListLogEvents(ctx, r.state.GetCursor().AsTime(), removalFilter(appID), func(page []oktaapi.LogEvent) error {
		for _, ev := range page {
			removalCandidates(ev, appID, ids, logins)
		}
		return nil
	})
	var serr *oktaapi.StatusError
	refusedQuery := errors.As(err, &serr) && serr.Status == http.StatusBadRequest
	if trace.IsAccessDenied(err) || refusedQuery {
		// Not a failure: the listing and full passes still work. A 400
		// (an org that does not take this filter) would otherwise fail
		// every incremental run from now on.
		_, fullEvery, _ := services.UserSyncIntervals(r.settings)
		why := fmt.Sprintf("grant the API client %s", oktaapi.LogsScope)
		if refusedQuery {
			why = fmt.Sprintf("it refused the query: %v", serr)
		}
		msg := fmt.Sprintf("warning: Okta refused the System Log (%s): unassignments are seen only by full passes, every %v", why, fullEvery)
		r.warnings = append(r.warnings, msg)
		s.cfg.Logger.WarnContext(ctx, "Okta refused the System Log; unassignments are left to full passes.", "plugin", r.plugin, "error", err)
		return nil
	}
	if err != nil {
		return trace.Wrap(err, "reading Okta's System Log")
	}
	if len(ids) == 0 && len(logins) == 0 {
		return nil
	}
	// The active accounts of the plugin the events name and this run's
	// listing did not (a listed user's assignment was just read).
	var recs []*scimrecord.UserRecord
	after := ""
	for {
		page, err := s.cfg.Provisioner.ListUsers(ctx, r.plugin, after, listPage)
		if err != nil {
			return trace.Wrap(err)
		}
		for _, rec := range page {
			if rec.Active && rec.ExternalID != "" && !r.seen[rec.ExternalID] &&
				(ids[rec.ExternalID] || logins[strings.ToLower(rec.UserName)]) {
				recs = append(recs, rec)
			}
		}
		if len(page) < listPage {
			break
		}
		after = page[len(page)-1].ID
	}
	for _, rec := range recs {
		if err := s.confirmRemoval(ctx, r, rec); err != nil {
			return trace.Wrap(err)
		}
	}
	return nil
}

// confirmRemoval reads rec's Okta assignment and applies only what Okta
// answers.
func (s *Syncer) confirmRemoval(ctx context.Context, r *run, rec *scimrecord.UserRecord) error {
	appID := r.settings.GetAppId()
	au, err := r.client.GetAppUser(ctx, appID, rec.ExternalID)
	if trace.IsNotFound(err) {
		s.cfg.Logger.InfoContext(ctx, "Okta confirms a user is no longer assigned to the app.", "plugin", r.plugin, "okta_id", rec.ExternalID)
		return trace.Wrap(s.applyOne(ctx, r, scimprov.PulledUser{
			ExternalID: rec.ExternalID,
			UserName:   rec.UserName,
			Active:     false,
			Attributes: rec.Attributes,
			Groups:     rec.Groups,
		}))
	}
	if err != nil {
		return trace.Wrap(err, "confirming the System Log's removal of Okta user %s", rec.ExternalID)
	}
	if au.Embedded.User == nil {
		u, err := r.client.GetUser(ctx, rec.ExternalID)
		if err != nil {
			return trace.Wrap(err, "confirming the System Log's removal of Okta user %s", rec.ExternalID)
		}
		au.Embedded.User = u
	}
	if au.Embedded.User.ID != rec.ExternalID {
		return trace.BadParameter("Okta answered the read of app user %s with user %q: not applying an ambiguous answer", rec.ExternalID, au.Embedded.User.ID)
	}
	return trace.Wrap(s.apply(ctx, r, *au))
}

// profileAttributes keeps the Okta profile as the record's attributes, in
// the SCIM shape where one exists (userName, name, emails, displayName).
func profileAttributes(raw json.RawMessage) json.RawMessage {
	var p struct {
		Login     string `json:"login"`
		Email     string `json:"email"`
		FirstName string `json:"firstName"`
		LastName  string `json:"lastName"`
		Display   string `json:"displayName"`
	}
	_ = json.Unmarshal(raw, &p)
	attrs := map[string]any{"userName": p.Login}
	if p.FirstName != "" || p.LastName != "" {
		attrs["name"] = map[string]string{"givenName": p.FirstName, "familyName": p.LastName}
	}
	if p.Email != "" {
		attrs["emails"] = []map[string]any{{"value": p.Email, "primary": true, "type": "work"}}
	}
	if p.Display != "" {
		attrs["displayName"] = p.Display
	}
	out, _ := json.Marshal(attrs)
	return out
}

// listPage is how many records reconcileUnlisted reads at a time.
const listPage = 500

// reconcileUnlisted walks the plugin's active records that this run did
// not list. After a clean full pass such a record's user is no longer
// assigned (or no longer exists): it is deactivated (account deleted and
// locked). After an incremental run it is only brought in step with its
// groups. A full pass that listed nobody while accounts exist stops here:
// an empty answer is not evidence enough to take every account away.
func (s *Syncer) reconcileUnlisted(ctx context.Context, r *run) error {
	var unlisted []*scimrecord.UserRecord
	after := ""
	for {
		recs, err := s.cfg.Provisioner.ListUsers(ctx, r.plugin, after, listPage)
		if err != nil {
			return trace.Wrap(err)
		}
		for _, rec := range recs {
			// A record without an Okta id (written by another SCIM
			// client before a switch) is never listed and is left alone.
			if rec.Active && rec.ExternalID != "" && !r.seen[rec.ExternalID] {
				unlisted = append(unlisted, rec)
			}
		}
		if len(recs) < listPage {
			break
		}
		after = recs[len(recs)-1].ID
	}
	if r.full && len(r.seen) == 0 && len(unlisted) > 0 {
		return trace.BadParameter("Okta listed no users assigned to app %q while %d accounts of plugin %q are active: refusing to deactivate them all on an empty answer (check the app ID and the credential's scopes; to remove every account, unassign users in smaller steps or turn user sync off and delete them)",
			r.settings.GetAppId(), len(unlisted), r.plugin)
	}
	for _, rec := range unlisted {
		in := scimprov.PulledUser{
			ExternalID: rec.ExternalID,
			UserName:   rec.UserName,
			Active:     !r.full,
			Attributes: rec.Attributes,
			Groups:     rec.Groups,
		}
		if !r.full {
			groups := r.memberOf[rec.ExternalID]
			if sameGroups(groups, rec.Groups) {
				continue
			}
			in.Groups = groups
		}
		if err := s.applyOne(ctx, r, in); err != nil {
			return trace.Wrap(err)
		}
	}
	return nil
}

func sameGroups(a, b []scimrecord.GroupRef) bool {
	if len(a) != len(b) {
		return false
	}
	for _, g := range a {
		if !slices.Contains(b, g) {
			return false
		}
	}
	return true
}

// stateWriteInterval bounds progress writes of the state during a run.
const stateWriteInterval = time.Second

// writeState writes the state in progress (at most every
// stateWriteInterval unless force).
func (s *Syncer) writeState(ctx context.Context, r *run, force bool) {
	now := s.cfg.Clock.Now()
	if !force && now.Sub(r.lastWrite) < stateWriteInterval {
		return
	}
	r.lastWrite = now
	r.state.ApiCalls = r.apiCalls
	if err := services.PutUserSyncState(ctx, s.cfg.Backend, r.plugin, r.state); err != nil {
		s.cfg.Logger.DebugContext(ctx, "Failed to write user sync progress.", "plugin", r.plugin, "error", err)
	}
}
