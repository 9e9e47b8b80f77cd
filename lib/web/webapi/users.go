package webapi

import (
	"context"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/crud"
	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// AdminPrefix is where the Users and Locks endpoints are mounted on the
// web listener (beside PluginsPrefix; the same handler serves both).
// /v1/webapi/users/ is not used: the one-time password link lives there.
const AdminPrefix = "/v1/webapi/admin/"

// UserDirectory pages through users by name prefix
// (services.UserService.ListUsersWithPrefix). The handler authorizes the
// caller before it calls it (see listUsers).
type UserDirectory interface {
	ListUsersWithPrefix(ctx context.Context, namePrefix string, pageSize int, pageToken string, withSecrets bool) ([]*typesv1.User, string, error)
}

// LockView is the process's live view of the locks in force
// (lockwatch.Watcher): the Users page marks locked users from it without
// reading every lock from the backend on each request.
type LockView interface {
	LocksInForce() []*typesv1.Lock
}

// SCIMRecords reads the SCIM record a provisioned user came from
// (scimstore.Store): one key read per SCIM user on the page.
type SCIMRecords interface {
	GetUser(ctx context.Context, plugin, id string) (*scimrecord.UserRecord, error)
}

// Paging bounds of the Users and Locks pages.
const (
	defaultAdminPageSize = 50
	maxAdminPageSize     = 200
	// maxSearchBytes bounds the search text (a username is at most 253 bytes).
	maxSearchBytes = 253
)

// UserOrigin says where a user on the Users page comes from.
type UserOrigin string

// User origins.
const (
	OriginLocal UserOrigin = "local"
	OriginSAML  UserOrigin = "saml"
	OriginSCIM  UserOrigin = "scim"
)

// UserState is the state of a user on the Users page.
type UserState string

// User states.
const (
	UserActive   UserState = "active"
	UserLocked   UserState = "locked"
	UserExpiring UserState = "expiring"
)

// UserRow is one user on the Users page.
type UserRow struct {
	Name string `json:"name"`
	// Origin is OriginLocal, OriginSAML (a temporary user a SAML login
	// created) or OriginSCIM (provisioned by Plugin).
	Origin UserOrigin `json:"origin"`
	// Plugin is the SCIM plugin that manages the user.
	Plugin string `json:"plugin,omitempty"`
	// Connector is the SAML connector a temporary user signed in through.
	Connector string `json:"connector,omitempty"`
	// State is UserActive, UserLocked or UserExpiring (a temporary user).
	State   UserState `json:"state"`
	Roles   []string  `json:"roles"`
	Expires string    `json:"expires,omitempty"`
	Created string    `json:"created,omitempty"`
	// Lock is the lock in force on the user, if any (and if the caller may
	// read locks).
	Lock *LockRef `json:"lock,omitempty"`
	// SCIM is the last SCIM event for a SCIM user: its record's state.
	SCIM *SCIMEvent `json:"scim,omitempty"`
}

// LockRef names the lock that locks a user.
type LockRef struct {
	Name    string `json:"name"`
	Message string `json:"message,omitempty"`
}

// SCIMEvent is what the SCIM record says of a user.
type SCIMEvent struct {
	ID           string `json:"id"`
	ExternalID   string `json:"external_id,omitempty"`
	Active       bool   `json:"active"`
	LastModified string `json:"last_modified,omitempty"`
	// Missing is set when the user names a SCIM record that does not exist.
	Missing bool `json:"missing,omitempty"`
}

// UsersResponse is GET /v1/webapi/admin/users.
type UsersResponse struct {
	Users []UserRow `json:"users"`
	// NextCursor fetches the next page; empty after the last.
	NextCursor string `json:"next_cursor,omitempty"`
	// LocksVisible is false when the caller may not read locks: State then
	// never says locked.
	LocksVisible bool `json:"locks_visible"`
}

// pageParams reads ?limit= and ?cursor=.
func pageParams(r *http.Request) (int, string, error) {
	q := r.URL.Query()
	limit := defaultAdminPageSize
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxAdminPageSize {
			return 0, "", trace.BadParameter("limit must be a number from 1 to %d", maxAdminPageSize)
		}
		limit = n
	}
	cursor := q.Get("cursor")
	if len(cursor) > 1024 {
		return 0, "", trace.BadParameter("invalid cursor")
	}
	return limit, cursor, nil
}

// listUsers is GET /v1/webapi/admin/users?q=&limit=&cursor=: one page of
// users whose canonical name starts with the canonical form of q. It costs
// one key-range read of limit+1 users, one SCIM record read per SCIM user on
// the page, and one pass over the locks in force in memory; never a read of
// all users.
//
// It authorizes exactly as the user API's ListUsers does (list and
// readnosecrets on kind user), and reads users without secrets.
func (h *Handler) listUsers(_ http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	actx, err := crud.Authorize(ctx, h.cfg.Authorizer, services.KindUser, services.VerbList, services.VerbReadNoSecrets)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	limit, cursor, err := pageParams(r)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	q := r.URL.Query().Get("q")
	switch {
	case len(q) > maxSearchBytes:
		return nil, trace.BadParameter("the search text is over %d bytes", maxSearchBytes)
	case !utf8.ValidString(q):
		return nil, trace.BadParameter("the search text is not valid UTF-8")
	}
	if err := services.CheckUserNamePrefix(q); err != nil {
		return nil, trace.Wrap(err)
	}
	prefix := canonical.Username(q)
	users, next, err := h.cfg.Users.ListUsersWithPrefix(ctx, prefix, limit, cursor, false)
	if err != nil {
		if trace.IsBadParameter(err) && cursor != "" {
			return nil, trace.BadParameter("invalid cursor; start the search again")
		}
		return nil, trace.Wrap(err)
	}
	out := UsersResponse{Users: make([]UserRow, 0, len(users)), NextCursor: next}
	var locks *userLocks
	if actx.Checker.CheckAccess(services.KindLock, services.VerbList) == nil && actx.Checker.CheckAccess(services.KindLock, services.VerbReadNoSecrets) == nil {
		out.LocksVisible = true
		locks = newUserLocks(h.cfg.LockView.LocksInForce(), h.cfg.Clock.Now())
	}
	for _, u := range users {
		row, err := h.userRow(ctx, u, locks)
		if err != nil {
			return nil, trace.Wrap(err)
		}
		out.Users = append(out.Users, row)
	}
	return out, nil
}

func (h *Handler) userRow(ctx context.Context, u *typesv1.User, locks *userLocks) (UserRow, error) {
	md, spec := u.GetMetadata(), u.GetSpec()
	row := UserRow{
		Name:    md.GetName(),
		Origin:  OriginLocal,
		State:   UserActive,
		Roles:   spec.GetRoles(),
		Expires: formatTime(md.GetExpires()),
		Created: formatTime(spec.GetCreatedBy().GetTime()),
	}
	if row.Roles == nil {
		row.Roles = []string{}
	}
	if plugin := services.SCIMOrigin(u); plugin != "" {
		row.Origin, row.Plugin = OriginSCIM, plugin
		ev, err := h.scimEvent(ctx, plugin, md.GetLabels()[services.LabelSCIMID])
		if err != nil {
			return UserRow{}, trace.Wrap(err)
		}
		row.SCIM = ev
	} else if c := spec.GetCreatedBy().GetConnector(); c.GetType() == "saml" {
		row.Origin, row.Connector = OriginSAML, c.GetId()
	}
	if md.GetExpires() != nil {
		row.State = UserExpiring
	}
	if l := locks.find(u); l != nil {
		row.State = UserLocked
		row.Lock = &LockRef{Name: l.GetMetadata().GetName(), Message: l.GetSpec().GetMessage()}
	}
	return row, nil
}

// scimEvent reads the SCIM record of a SCIM user.
func (h *Handler) scimEvent(ctx context.Context, plugin, id string) (*SCIMEvent, error) {
	if id == "" {
		return &SCIMEvent{Missing: true}, nil
	}
	rec, err := h.cfg.SCIM.GetUser(ctx, plugin, id)
	switch {
	case trace.IsNotFound(err), trace.IsBadParameter(err):
		return &SCIMEvent{ID: id, Missing: true}, nil
	case err != nil:
		return nil, trace.Wrap(err)
	}
	ev := &SCIMEvent{ID: rec.ID, ExternalID: rec.ExternalID, Active: rec.Active}
	if !rec.LastModified.IsZero() {
		ev.LastModified = rec.LastModified.UTC().Format(time.RFC3339)
	}
	return ev, nil
}

// userLocks indexes the locks in force for the users of one page: locks
// by target user, and the locks whose target names no user (a role, login
// or node), which are matched against each user in turn.
type userLocks struct {
	byUser map[string][]*typesv1.Lock
	other  []*typesv1.Lock
}

func newUserLocks(locks []*typesv1.Lock, now time.Time) *userLocks {
	ul := &userLocks{byUser: map[string][]*typesv1.Lock{}}
	for _, l := range locks {
		if !services.IsLockInForce(l, now) {
			continue
		}
		if u := l.GetSpec().GetTarget().GetUser(); u != "" {
			c := canonical.Username(u)
			ul.byUser[c] = append(ul.byUser[c], l)
		} else {
			ul.other = append(ul.other, l)
		}
	}
	return ul
}

// find returns the first lock (by name) that locks u out entirely: a lock
// on the user or one of their roles. A lock on a login or node only is no
// lock on the account, and a lock combining the user with a login or node
// applies to those only; services.LockTargetMatches decides, with the
// subject being the user and their roles.
func (ul *userLocks) find(u *typesv1.User) *typesv1.Lock {
	if ul == nil {
		return nil
	}
	subject := services.LockSubject{User: u.GetMetadata().GetName(), Roles: u.GetSpec().GetRoles()}
	var found *typesv1.Lock
	for _, list := range [][]*typesv1.Lock{ul.byUser[u.GetMetadata().GetName()], ul.other} {
		for _, l := range list {
			if !services.LockTargetMatches(l.GetSpec().GetTarget(), subject) {
				continue
			}
			if found == nil || l.GetMetadata().GetName() < found.GetMetadata().GetName() {
				found = l
			}
		}
	}
	return found
}
