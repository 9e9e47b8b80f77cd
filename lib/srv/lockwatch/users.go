package lockwatch

// The user view. Credentials die with the account they were issued to: a
// live session must end when its user is deleted, created again (a new
// incarnation), or loses a role its certificate was issued with, and a new
// one must not start. The watcher follows the users prefix on the same
// backend stream as the locks, so that one notion of staleness covers both
// (a stale view refuses new sessions and, past the live-session bound, ends
// live ones) and a user change and a lock are seen in the order they were
// written.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services"
)

// UsersPrefix is the key prefix user resources are stored under.
var UsersPrefix = services.PrefixKey(services.UsersPrefix)

// Credential is what a certificate says about the account it was issued
// to.
type Credential struct {
	// User is the username.
	User string
	// Incarnation is the user's incarnation at issue; empty matches nothing.
	Incarnation string
	// Roles are the roles the credential was issued with: it is void once
	// the user no longer holds one of them.
	Roles []string
}

// userState is what the view keeps of a user: enough to tell whether a
// credential still belongs to it.
type userState struct {
	incarnation string
	roles       []string
	// corrupt marks a stored user that cannot be decoded. It matches no
	// credential: a record nobody can read must not keep sessions alive.
	corrupt bool
}

// credentialVoided returns why cred no longer belongs to the user as the
// view holds it (u, present or not), or "" if it still does.
func credentialVoided(cred Credential, u userState, present bool) string {
	switch {
	case !present:
		return fmt.Sprintf("user %q no longer exists", cred.User)
	case u.corrupt:
		return fmt.Sprintf("the record of user %q cannot be read", cred.User)
	case cred.Incarnation == "" || u.incarnation == "" || cred.Incarnation != u.incarnation:
		return fmt.Sprintf("credentials were issued to an earlier incarnation of user %q", cred.User)
	}
	for _, r := range cred.Roles {
		if !slices.Contains(u.roles, r) {
			return fmt.Sprintf("user %q no longer holds role %q", cred.User, r)
		}
	}
	return ""
}

// CredentialSubscription follows one credential: it is voided, once, when
// the credential no longer belongs to its user.
type CredentialSubscription struct {
	w      *Watcher
	cred   Credential
	fn     func(reason string)
	voided chan struct{}
	once   sync.Once
	reason string
}

// Voided is closed when the credential is void; Reason then says why.
func (s *CredentialSubscription) Voided() <-chan struct{} { return s.voided }

// Reason says why the credential is void ("" until Voided is closed).
func (s *CredentialSubscription) Reason() string {
	select {
	case <-s.voided:
		return s.reason
	default:
		return ""
	}
}

// Close ends the subscription without voiding it.
func (s *CredentialSubscription) Close() {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.w.removeCredentialLocked(s)
}

// WatchCredential checks cred against the view and follows it: fn (if not
// nil) is called once, synchronously in the watcher's goroutine, and
// Voided closed, the moment the credential no longer belongs to its user.
// fn must be quick and must not block or call back into the watcher. The
// check and the subscription are one step, so no change falls between
// them. It refuses (trace.AccessDenied) a credential that is void already,
// and, failing closed like CheckLockInForce, any credential while the view
// is stale (StaleMessage).
func (w *Watcher) WatchCredential(cred Credential, fn func(reason string)) (*CredentialSubscription, error) {
	if cred.User == "" {
		return nil, trace.BadParameter("a credential subscription needs a user")
	}
	// A certificate can be issued a moment after its user was written, and
	// reach a node before the node's view has applied that write: a
	// credential the view does not admit yet gets credentialCatchUp for the
	// view to catch up before it is refused. Only a user that is missing or
	// of another incarnation waits; the view never admits a credential the
	// backend has not confirmed.
	deadline := time.NewTimer(credentialCatchUp)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return nil, trace.ConnectionProblem(nil, "lock watcher closed")
		}
		if w.staleLocked(w.cfg.Clock.Now()) {
			w.mu.Unlock()
			return nil, trace.AccessDenied(StaleMessage)
		}
		u, ok := w.users[cred.User]
		reason := credentialVoided(cred, u, ok)
		if reason == "" {
			s := &CredentialSubscription{w: w, cred: cred, fn: fn, voided: make(chan struct{})}
			if w.credSubs == nil {
				w.credSubs = make(map[string]map[*CredentialSubscription]struct{})
			}
			if w.credSubs[cred.User] == nil {
				w.credSubs[cred.User] = make(map[*CredentialSubscription]struct{})
			}
			w.credSubs[cred.User][s] = struct{}{}
			w.mu.Unlock()
			return s, nil
		}
		mayCatchUp := !ok || (!u.corrupt && u.incarnation != cred.Incarnation && cred.Incarnation != "")
		changed := w.usersChangedLocked()
		w.mu.Unlock()
		if !mayCatchUp {
			return nil, trace.AccessDenied("%s", reason)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, trace.AccessDenied("%s", reason)
		}
	}
}

// credentialCatchUp bounds how long WatchCredential waits for the view to
// apply a user write it has not seen yet. It is wall-clock time, not the
// configured clock: it bounds a delay, it measures nothing.
const credentialCatchUp = time.Second

// usersChangedLocked returns a channel closed at the next change of the
// user view.
func (w *Watcher) usersChangedLocked() <-chan struct{} {
	if w.usersChanged == nil {
		w.usersChanged = make(chan struct{})
	}
	return w.usersChanged
}

// notifyUsersChangedLocked wakes the WatchCredential calls waiting for the
// view to change.
func (w *Watcher) notifyUsersChangedLocked() {
	if w.usersChanged != nil {
		close(w.usersChanged)
		w.usersChanged = nil
	}
}

func (w *Watcher) removeCredentialLocked(s *CredentialSubscription) {
	subs := w.credSubs[s.cred.User]
	delete(subs, s)
	if len(subs) == 0 {
		delete(w.credSubs, s.cred.User)
	}
}

// voidLocked voids s with reason and forgets it.
func (w *Watcher) voidLocked(s *CredentialSubscription, reason string) {
	s.once.Do(func() {
		s.reason = reason
		if s.fn != nil {
			s.fn(reason)
		}
		close(s.voided)
	})
	w.removeCredentialLocked(s)
}

// checkCredentialsLocked voids the subscriptions of user that its state
// in the view no longer admits.
func (w *Watcher) checkCredentialsLocked(user string) {
	u, ok := w.users[user]
	for s := range w.credSubs[user] {
		if reason := credentialVoided(s.cred, u, ok); reason != "" {
			w.voidLocked(s, reason)
		}
	}
}

// voidAllLocked voids every credential subscription (the watcher closes).
func (w *Watcher) voidAllLocked(reason string) {
	for _, subs := range w.credSubs {
		for s := range subs {
			w.voidLocked(s, reason)
		}
	}
}

// isUserKey reports whether key is a user's.
func (w *Watcher) isUserKey(key backend.Key) bool {
	return len(key) > len(w.cfg.UsersPrefix) && string(key[:len(w.cfg.UsersPrefix)]) == string(w.cfg.UsersPrefix)
}

// parseUser decodes a stored user into its state in the view.
func (w *Watcher) parseUser(it backend.Item) (string, userState) {
	name := string(it.Key[len(w.cfg.UsersPrefix):])
	u, err := services.UnmarshalUser(it)
	if err != nil {
		w.cfg.Logger.Error("A stored user cannot be decoded; no credential of it is accepted.", "key", it.Key.String(), "error", err)
		return name, userState{corrupt: true}
	}
	return name, userState{incarnation: u.GetSpec().GetIncarnation(), roles: w.roleSets.intern(u.GetSpec().GetRoles())}
}

// maxRoleSets bounds the distinct role lists roleSets keeps. Past it the
// table starts over: the lists already handed out stay valid, only their
// sharing with later users is lost.
const maxRoleSets = 4096

// roleSets interns role lists. Thousands of users hold one of a few lists
// (a SCIM plugin's default roles plus what their groups map to), so the
// view keeps one copy of each list instead of one per user: at 100,000
// users that is several MiB of the node's heap. The lists it returns are
// shared and must never be modified.
type roleSets struct {
	mu   sync.Mutex
	sets map[string][]string
}

// intern returns a shared copy of roles (nil for none).
func (r *roleSets) intern(roles []string) []string {
	if len(roles) == 0 {
		return nil
	}
	key := strings.Join(roles, "\x00")
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sets[key]; ok {
		return s
	}
	if r.sets == nil || len(r.sets) >= maxRoleSets {
		r.sets = make(map[string][]string)
	}
	s := slices.Clip(slices.Clone(roles))
	r.sets[key] = s
	return s
}

// loadUsers reads every user.
func (w *Watcher) loadUsers(ctx context.Context) (map[string]userState, error) {
	fresh := make(map[string]userState)
	start, end := w.cfg.UsersPrefix, backend.RangeEnd(w.cfg.UsersPrefix)
	for {
		res, err := w.cfg.Backend.GetRange(ctx, start, end, backend.MaxRangeLimit)
		if err != nil {
			return nil, trace.Wrap(err, "loading users")
		}
		for _, it := range res.Items {
			name, u := w.parseUser(it)
			fresh[name] = u
		}
		if len(res.Items) < backend.MaxRangeLimit {
			return fresh, nil
		}
		start = backend.NextKey(res.Items[len(res.Items)-1].Key)
	}
}

// replaceUsersLocked installs a freshly loaded user view and voids the
// credentials it no longer admits (changes missed while the stream was
// down).
func (w *Watcher) replaceUsersLocked(fresh map[string]userState) {
	w.users = fresh
	for user := range w.credSubs {
		w.checkCredentialsLocked(user)
	}
	w.notifyUsersChangedLocked()
}

func (w *Watcher) applyUserPut(it backend.Item) {
	name, u := w.parseUser(it)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.users == nil {
		w.users = make(map[string]userState)
	}
	w.users[name] = u
	w.checkCredentialsLocked(name)
	w.notifyUsersChangedLocked()
}

func (w *Watcher) applyUserDelete(key backend.Key) {
	name := string(key[len(w.cfg.UsersPrefix):])
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.users, name)
	w.checkCredentialsLocked(name)
	w.notifyUsersChangedLocked()
}
