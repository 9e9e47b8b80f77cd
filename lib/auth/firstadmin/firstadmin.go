// Package firstadmin gives a new cluster its first web administrator, so
// that a newcomer is in the web UI a minute after the first start.
//
// On the first start of a cluster that holds no user, the server creates,
// in one atomic write, the local user "admin" (role editor, no password), a
// one-time password link for it, and a marker recording both. The startup
// banner prints the link (stdout only: it is a credential, so it is never
// logged). While the user still has no password, every start makes a fresh
// link and voids the previous one in the same atomic write, so that only the
// link printed last works. Once a password is set, nothing is printed again,
// and a link still outstanding is voided. The marker is never removed:
// deleting the user later does not bring it back, and a cluster that already
// had users when this first ran never gets one.
//
// "admin" is a local user: SCIM's reach rules refuse to take the name, and no
// SAML login can sign in as it. Two servers starting together on one backend
// (HA on etcd) race on the marker's condition: one creates the user, the
// other finds it made and leaves the link to the winner.
package firstadmin

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const (
	// DefaultUser is the first administrator's username.
	DefaultUser = "admin"
	// EventCreate is the audit event of the first administrator's creation.
	EventCreate = "user.first_admin.create"
	// EventLink is the audit event of a first sign-in link made at start.
	EventLink = "user.first_admin.link"
	// actor is who the audit events name: the server itself.
	actor = "gatehouse"
)

// MarkerKey is the backend key of the marker.
var MarkerKey = services.FirstAdminMarkerKey

// marker is the marker's value.
type marker struct {
	// User is the first administrator; empty when the cluster had users
	// already and none was created.
	User string `json:"user,omitempty"`
	// TokenKey is the backend key of the link made last ("" once voided).
	// Only the key (a hash of the token) is stored.
	TokenKey string `json:"token_key,omitempty"`
	// Created is when the marker was written.
	Created time.Time `json:"created"`
}

// Users is the part of the user service the package reads.
type Users interface {
	GetUser(ctx context.Context, name string, withSecrets bool) (*typesv1.User, error)
	ListUsers(ctx context.Context, pageSize int, pageToken string, withSecrets bool) ([]*typesv1.User, string, error)
}

// Recorder records audit events.
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Config configures Ensure.
type Config struct {
	Backend  backend.Backend
	Users    Users
	Recorder Recorder
	// Role is the first administrator's role (the preset editor role).
	Role string
	// User defaults to DefaultUser.
	User string
	// TokenTTL is how long a link works; websession.DefaultPasswordTokenTTL
	// if zero.
	TokenTTL time.Duration
	Clock    clockwork.Clock
	Logger   *slog.Logger
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.Backend == nil:
		return trace.BadParameter("firstadmin: missing Backend")
	case c.Users == nil:
		return trace.BadParameter("firstadmin: missing Users")
	case c.Recorder == nil:
		return trace.BadParameter("firstadmin: missing Recorder")
	case c.Role == "":
		return trace.BadParameter("firstadmin: missing Role")
	}
	defaults.IfZero(&c.User, DefaultUser)
	defaults.IfZero(&c.TokenTTL, websession.DefaultPasswordTokenTTL)
	defaults.ClockFrom(&c.Clock, c.Backend.Clock)
	defaults.Logger(&c.Logger, "firstadmin")
	return nil
}

// Link is a first sign-in link to print.
type Link struct {
	// User is the account the link sets the password of.
	User string
	// Token is the link's secret: print it, never log it.
	Token string
	// Expires ends the link.
	Expires time.Time
	// Created says the user was created by this start.
	Created bool
}

// ErrElsewhere is returned when another server sharing the backend made the
// link at the same moment: that server's banner shows the one that works.
var ErrElsewhere = trace.CompareFailed("another Gatehouse server made the first sign-in link at the same time; use the link it printed")

// Ensure creates the first administrator on a cluster's first start and
// returns the link to print, or nil when there is none to print (the user
// has a password, was deleted, or the cluster had users before). It returns
// ErrElsewhere when another server won the race to make the link.
func Ensure(ctx context.Context, cfg Config) (*Link, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	item, err := services.GetFirstAdminMarker(ctx, cfg.Backend)
	if trace.IsNotFound(err) {
		return create(ctx, cfg, 3)
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return renew(ctx, cfg, item)
}

// create runs on a backend without a marker; it decides again, at most
// attempts times in all, when the backend changed under it.
func create(ctx context.Context, cfg Config, attempts int) (*Link, error) {
	now := cfg.Clock.Now()
	users, _, err := cfg.Users.ListUsers(ctx, 1, "", false)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if len(users) > 0 {
		// Not a new cluster: its operators have their own accounts.
		value, err := json.Marshal(marker{Created: now})
		if err != nil {
			return nil, trace.Wrap(err)
		}
		err = services.CreateFirstAdminMarker(ctx, cfg.Backend, value)
		if trace.IsAlreadyExists(err) {
			// Another server wrote the marker since this one looked: the
			// users seen may be the administrator it just created, whose
			// link is that server's to print.
			return elsewhere(ctx, cfg)
		}
		if err != nil {
			return nil, trace.Wrap(err)
		}
		return nil, nil
	}
	u := &typesv1.User{
		Kind:     services.KindUser,
		Version:  services.V1,
		Metadata: &typesv1.Metadata{Name: cfg.User, Description: "first administrator, created at the cluster's first start"},
		Spec: &typesv1.UserSpec{
			Roles:       []string{cfg.Role},
			Incarnation: services.NewIncarnation(),
			CreatedBy:   &typesv1.CreatedBy{User: &typesv1.UserRef{Name: actor}, Time: timestamppb.New(now)},
		},
	}
	var userPlan, tokenPlan services.Plan
	if err := userPlan.PutUser(u, backend.NotExists()); err != nil {
		return nil, trace.Wrap(err)
	}
	token, tokenRef, tokenExpires, err := tokenPlan.CreatePasswordToken(u, cfg.TokenTTL, now)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	value, err := json.Marshal(marker{User: cfg.User, TokenKey: tokenRef, Created: now})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	var plan services.Plan
	plan.PutFirstAdminMarker(value, backend.NotExists())
	plan.Add(&userPlan)
	plan.Add(&tokenPlan)
	_, err = plan.Commit(ctx, cfg.Backend)
	if trace.IsCompareFailed(err) {
		// Another server wrote the marker, or someone created the user
		// between the list and the write: decide again from what is there.
		if _, gerr := services.GetFirstAdminMarker(ctx, cfg.Backend); gerr == nil {
			return nil, ErrElsewhere
		}
		if attempts > 1 {
			return create(ctx, cfg, attempts-1)
		}
		return nil, trace.CompareFailed("the users kept changing while the first administrator was being created")
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	cfg.Recorder.Record(ctx, audit.Event{
		Type: EventCreate, User: actor, Resource: services.KindUser + "/" + cfg.User,
		Message: "first administrator created with role " + cfg.Role + "; its one-time password link was printed on the server's stdout",
	})
	cfg.Logger.InfoContext(ctx, "Created the first administrator; its one-time password link is in the startup banner on stdout.", "user", cfg.User, "role", cfg.Role, "link_expires", tokenExpires)
	return &Link{User: cfg.User, Token: token, Expires: tokenExpires, Created: true}, nil
}

// elsewhere reports what another server's marker says: ErrElsewhere when it
// created the first administrator, nothing when it found users already.
func elsewhere(ctx context.Context, cfg Config) (*Link, error) {
	item, err := services.GetFirstAdminMarker(ctx, cfg.Backend)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	var m marker
	if err := json.Unmarshal(item.Value, &m); err != nil {
		return nil, trace.BadParameter("the first-administrator marker at %s is unreadable: %v", MarkerKey, err)
	}
	if m.User != "" {
		return nil, ErrElsewhere
	}
	return nil, nil
}

// renew runs on a backend with a marker.
func renew(ctx context.Context, cfg Config, item *backend.Item) (*Link, error) {
	var m marker
	if err := json.Unmarshal(item.Value, &m); err != nil {
		return nil, trace.BadParameter("the first-administrator marker at %s is unreadable: %v", MarkerKey, err)
	}
	if m.User == "" {
		return nil, nil
	}
	u, err := cfg.Users.GetUser(ctx, m.User, true)
	switch {
	case trace.IsNotFound(err):
		return nil, trace.Wrap(retire(ctx, cfg, item, m))
	case err != nil:
		return nil, trace.Wrap(err)
	case len(u.GetSpec().GetLocalAuth().GetPasswordHash()) > 0 || services.CheckLocalUser(u) != nil:
		// Signed in already (or no longer a local user): never print a
		// link again, and void one still outstanding.
		return nil, trace.Wrap(retire(ctx, cfg, item, m))
	}
	now := cfg.Clock.Now()
	var tokenPlan services.Plan
	token, tokenRef, tokenExpires, err := tokenPlan.CreatePasswordToken(u, cfg.TokenTTL, now)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	next := m
	next.TokenKey = tokenRef
	value, err := json.Marshal(next)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	var plan services.Plan
	plan.PutFirstAdminMarker(value, backend.Revision(item.Revision))
	// Still the user read, still without a password.
	plan.RequireUser(m.User, u.GetMetadata().GetRevision())
	plan.Add(&tokenPlan)
	if m.TokenKey != "" {
		plan.DeletePasswordToken(m.TokenKey)
	}
	if _, err := plan.Commit(ctx, cfg.Backend); err != nil {
		if trace.IsCompareFailed(err) {
			return nil, ErrElsewhere
		}
		return nil, trace.Wrap(err)
	}
	cfg.Recorder.Record(ctx, audit.Event{
		Type: EventLink, User: actor, Resource: services.KindUser + "/" + m.User,
		Message: "the first administrator has no password yet: a new one-time password link was printed on the server's stdout and the previous one voided",
	})
	cfg.Logger.InfoContext(ctx, "The first administrator has no password yet; a new one-time password link is in the startup banner on stdout.", "user", m.User, "link_expires", tokenExpires)
	return &Link{User: m.User, Token: token, Expires: tokenExpires}, nil
}

// retire voids the outstanding link, if any, and records that in the marker.
// Losing a race here is harmless: whoever won did the same or more.
func retire(ctx context.Context, cfg Config, item *backend.Item, m marker) error {
	if m.TokenKey == "" {
		return nil
	}
	next := m
	next.TokenKey = ""
	value, err := json.Marshal(next)
	if err != nil {
		return trace.Wrap(err)
	}
	var plan services.Plan
	plan.PutFirstAdminMarker(value, backend.Revision(item.Revision))
	plan.DeletePasswordToken(m.TokenKey)
	_, err = plan.Commit(ctx, cfg.Backend)
	if trace.IsCompareFailed(err) {
		return nil
	}
	return trace.Wrap(err)
}
