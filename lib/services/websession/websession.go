// Package websession keeps web sessions and one-time password-set tokens in
// the backend. A session is stored under web_sessions/<sha256 of its ID>:
// the ID is the browser's bearer secret, so it never appears as a key (keys
// show up in logs, watch events and backups); the same goes for password
// tokens under password_tokens/<sha256 of the token>. Both expire with the
// backend item, so an ended session needs no sweeper, and every server
// sharing the backend sees the same sessions.
package websession

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/defaults"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Key prefixes.
const (
	SessionsPrefix       = "web_sessions"
	PasswordTokensPrefix = "password_tokens"
)

// Limits.
const (
	// MaxTokenLength bounds a session ID or token accepted from a client.
	MaxTokenLength = 128
	// DefaultPasswordTokenTTL is how long a password-set link works.
	DefaultPasswordTokenTTL = 24 * time.Hour
	// MaxPasswordTokenTTL caps it.
	MaxPasswordTokenTTL = 7 * 24 * time.Hour
)

// Login methods.
const (
	MethodSAML     = "saml"
	MethodPassword = "password"
)

// Session is a web session.
type Session struct {
	// ID is the session's secret, sent as the session cookie. It is not
	// stored.
	ID string `json:"-"`
	// User is the username.
	User string `json:"user"`
	// Incarnation is the incarnation of the user at login. The session is
	// valid only while the user still has it: a session of an account that
	// was deleted and created again, reactivated or renamed onto is ended.
	Incarnation string `json:"incarnation"`
	// CSRFToken must accompany state-changing requests (X-CSRF-Token).
	CSRFToken string `json:"csrf_token"`
	// Method is how the user logged in: MethodSAML or MethodPassword.
	Method string `json:"method"`
	// Connector names the SAML connector for MethodSAML.
	Connector string `json:"connector,omitempty"`
	// Created and Expires bound the session.
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Config configures a Manager.
type Config struct {
	// Backend stores sessions. Required.
	Backend backend.Backend
	// Clock defaults to the backend's.
	Clock clockwork.Clock
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	if c.Backend == nil {
		return trace.BadParameter("websession: missing Backend")
	}
	defaults.ClockFrom(&c.Clock, c.Backend.Clock)
	return nil
}

// Manager creates, reads and ends web sessions and password tokens.
type Manager struct {
	cfg Config
}

// New returns a Manager.
func New(cfg Config) (*Manager, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &Manager{cfg: cfg}, nil
}

// NewToken returns 32 random bytes, base64url without padding.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", trace.Wrap(err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func hashKey(prefix, secret string) backend.Key {
	sum := sha256.Sum256([]byte(secret))
	return backend.NewKey(prefix, hex.EncodeToString(sum[:]))
}

// SessionKey is the backend key of the session with ID id.
func SessionKey(id string) backend.Key { return hashKey(SessionsPrefix, id) }

// CreateSession starts a session lasting ttl for user, as read at login: the
// session is bound to its name and incarnation.
func (m *Manager) CreateSession(ctx context.Context, user *typesv1.User, method, connector string, ttl time.Duration) (*Session, error) {
	name, incarnation := user.GetMetadata().GetName(), user.GetSpec().GetIncarnation()
	if name == "" {
		return nil, trace.BadParameter("websession: missing user")
	}
	if incarnation == "" {
		// No check would accept the session: say so now, not at its first use.
		return nil, trace.BadParameter("websession: user %q has no incarnation", name)
	}
	if ttl <= 0 {
		return nil, trace.BadParameter("websession: session TTL must be positive")
	}
	id, err := NewToken()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	csrf, err := NewToken()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	now := m.cfg.Clock.Now()
	s := &Session{ID: id, User: name, Incarnation: incarnation, CSRFToken: csrf, Method: method, Connector: connector, Created: now, Expires: now.Add(ttl)}
	value, err := json.Marshal(s)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if _, err := m.cfg.Backend.Create(ctx, backend.Item{Key: SessionKey(id), Value: value, Expires: s.Expires}); err != nil {
		return nil, trace.Wrap(err)
	}
	return s, nil
}

// GetSession reads the session with ID id; trace.NotFound if there is none
// or it has expired.
func (m *Manager) GetSession(ctx context.Context, id string) (*Session, error) {
	if id == "" || len(id) > MaxTokenLength {
		return nil, trace.NotFound("web session not found")
	}
	item, err := m.cfg.Backend.Get(ctx, SessionKey(id))
	if err != nil {
		if trace.IsNotFound(err) {
			return nil, trace.NotFound("web session not found")
		}
		return nil, trace.Wrap(err)
	}
	var s Session
	if err := json.Unmarshal(item.Value, &s); err != nil {
		return nil, trace.BadParameter("web session record is corrupt")
	}
	if !s.Expires.After(m.cfg.Clock.Now()) {
		return nil, trace.NotFound("web session has expired")
	}
	s.ID = id
	return &s, nil
}

// DeleteSession ends a session; ending a missing one is not an error.
func (m *Manager) DeleteSession(ctx context.Context, id string) error {
	if id == "" || len(id) > MaxTokenLength {
		return nil
	}
	err := m.cfg.Backend.Delete(ctx, SessionKey(id))
	if trace.IsNotFound(err) {
		return nil
	}
	return trace.Wrap(err)
}

// PasswordToken is a stored password-set token: the link names the account
// it was made for by its name and its incarnation at that moment. A link is
// a credential like a session, so it dies with the account: once the name
// belongs to another account (deleted and created again, reactivated,
// renamed onto), the link sets nobody's password (CheckUser).
type PasswordToken struct {
	// User is the username as stored (canonical form for every user
	// created since names are canonical).
	User string `json:"user"`
	// Incarnation is the user's incarnation when the link was made. Empty
	// only in a token stored before links were bound to an incarnation;
	// such a token is void.
	Incarnation string `json:"incarnation,omitempty"`
	// Expires ends the token.
	Expires time.Time `json:"expires"`
}

// VoidPasswordToken is the error of a password link whose account is gone:
// the name now belongs to another account, or to none, or the link was
// made before links were bound to an account.
func VoidPasswordToken() error {
	return trace.AccessDenied("the password link is void: it was made for an earlier account of that name; ask an administrator for a new one")
}

// CheckUser refuses, with VoidPasswordToken, a user that is not the account
// the token was made for: another name, another incarnation, or a token
// without an incarnation.
func (t *PasswordToken) CheckUser(u *typesv1.User) error {
	if t.Incarnation == "" || u.GetMetadata().GetName() != t.User || u.GetSpec().GetIncarnation() != t.Incarnation {
		return VoidPasswordToken()
	}
	return nil
}

// EachSession calls visit with every stored session that names a user,
// page by page, and with end, which deletes that session (trace.NotFound if
// it is gone already). Sessions are keyed by a hash of their ID, so this is
// the only way to reach one without its ID: to end the sessions of a user
// a lock now targets. It returns the error of a failed listing.
func (m *Manager) EachSession(ctx context.Context, visit func(s *Session, end func() error)) error {
	return trace.Wrap(m.eachItem(ctx, func(key backend.Key, s *Session) {
		visit(s, func() error { return trace.Wrap(m.cfg.Backend.Delete(ctx, key)) })
	}))
}

// EndUserSessions deletes every stored session of the user named user (the
// name as stored, which sessions carry) and returns how many it ended. A
// password change calls it: whoever signed in with the old password, a thief
// included, must sign in again. It walks every session (they are keyed by a
// hash of their ID), which a password change, being rare, can afford. A
// session that is created after the walk by a login that checked the old
// password just before the change is not caught.
func (m *Manager) EndUserSessions(ctx context.Context, user string) (int, error) {
	if user == "" {
		return 0, trace.BadParameter("websession: missing user")
	}
	ended := 0
	var failed error
	err := m.eachItem(ctx, func(key backend.Key, s *Session) {
		if s.User != user {
			return
		}
		switch err := m.cfg.Backend.Delete(ctx, key); {
		case err == nil:
			ended++
		case !trace.IsNotFound(err) && failed == nil:
			failed = err
		}
	})
	if err != nil {
		return ended, trace.Wrap(err)
	}
	return ended, trace.Wrap(failed)
}

// SessionUsers returns the user of every stored session, by the session's key: what
// EachSession visits, for a view of the sessions that a watch of SessionsKeyPrefix then keeps
// current (SessionUser).
func (m *Manager) SessionUsers(ctx context.Context) (map[string]string, error) {
	users := map[string]string{}
	err := m.eachItem(ctx, func(key backend.Key, s *Session) { users[string(key)] = s.User })
	return users, trace.Wrap(err)
}

// eachItem visits every stored session that EachSession visits, with its key.
func (m *Manager) eachItem(ctx context.Context, visit func(key backend.Key, s *Session)) error {
	prefix := SessionsKeyPrefix()
	start, end := prefix, backend.RangeEnd(prefix)
	for {
		res, err := m.cfg.Backend.GetRange(ctx, start, end, backend.MaxRangeLimit)
		if err != nil {
			return trace.Wrap(err)
		}
		for _, it := range res.Items {
			var s Session
			if !decodeSession(it.Value, &s) {
				continue
			}
			visit(it.Key, &s)
		}
		if len(res.Items) < backend.MaxRangeLimit {
			return nil
		}
		start = backend.NextKey(res.Items[len(res.Items)-1].Key)
	}
}

// SessionsKeyPrefix is the start of the key range holding the sessions.
func SessionsKeyPrefix() backend.Key { return backend.NewKey(SessionsPrefix, "") }

// SessionUser returns the user of a stored session's value, as EachSession reads it; false for
// a value EachSession skips.
func SessionUser(value []byte) (string, bool) {
	var s Session
	if !decodeSession(value, &s) {
		return "", false
	}
	return s.User, true
}

// decodeSession decodes a stored session; false if it is unreadable or has no user.
func decodeSession(value []byte, s *Session) bool {
	return json.Unmarshal(value, s) == nil && s.User != ""
}

// CreatePasswordToken returns a one-time token that sets the password of
// user, as just read: the token is bound to its stored name and its
// incarnation. It is valid for ttl (DefaultPasswordTokenTTL if zero, at
// most MaxPasswordTokenTTL).
func (m *Manager) CreatePasswordToken(ctx context.Context, user *typesv1.User, ttl time.Duration) (string, time.Time, error) {
	token, item, err := NewPasswordTokenItem(user, ttl, m.cfg.Clock.Now())
	if err != nil {
		return "", time.Time{}, trace.Wrap(err)
	}
	if _, err := m.cfg.Backend.Create(ctx, item); err != nil {
		return "", time.Time{}, trace.Wrap(err)
	}
	return token, item.Expires, nil
}

// NewPasswordTokenItem makes a password-set token for user, as just read,
// valid for ttl from now (as CreatePasswordToken), and the backend item
// that stores it, without writing it: for a caller that writes the token
// in one AtomicWrite with other changes.
func NewPasswordTokenItem(user *typesv1.User, ttl time.Duration, now time.Time) (string, backend.Item, error) {
	name, incarnation := user.GetMetadata().GetName(), user.GetSpec().GetIncarnation()
	switch {
	case name == "":
		return "", backend.Item{}, trace.BadParameter("missing user")
	case incarnation == "":
		// No use of the token would accept it: say so now.
		return "", backend.Item{}, trace.BadParameter("user %q has no incarnation", name)
	case ttl < 0:
		return "", backend.Item{}, trace.BadParameter("token TTL must not be negative")
	case ttl == 0:
		ttl = DefaultPasswordTokenTTL
	case ttl > MaxPasswordTokenTTL:
		return "", backend.Item{}, trace.BadParameter("token TTL %s is over the maximum of %s", ttl, MaxPasswordTokenTTL)
	}
	token, err := NewToken()
	if err != nil {
		return "", backend.Item{}, trace.Wrap(err)
	}
	expires := now.Add(ttl)
	value, err := json.Marshal(PasswordToken{User: name, Incarnation: incarnation, Expires: expires})
	if err != nil {
		return "", backend.Item{}, trace.Wrap(err)
	}
	return token, backend.Item{Key: PasswordTokenKey(token), Value: value, Expires: expires}, nil
}

// PasswordTokenKey is the backend key of a password token.
func PasswordTokenKey(token string) backend.Key { return hashKey(PasswordTokensPrefix, token) }

// ConsumePasswordToken checks a password-set token and deletes it, so it
// works once, and returns what it was made for. The caller must still check
// the user with CheckUser, in the same conditional write that sets the
// password. A missing, used or expired token is trace.AccessDenied; a token
// stored without an incarnation is deleted and refused with
// VoidPasswordToken.
func (m *Manager) ConsumePasswordToken(ctx context.Context, token string) (*PasswordToken, error) {
	denied := trace.AccessDenied("the password link is invalid, used or expired; ask an administrator for a new one")
	if token == "" || len(token) > MaxTokenLength {
		return nil, denied
	}
	key := PasswordTokenKey(token)
	item, err := m.cfg.Backend.Get(ctx, key)
	if err != nil {
		if trace.IsNotFound(err) {
			return nil, denied
		}
		return nil, trace.Wrap(err)
	}
	var pt PasswordToken
	if err := json.Unmarshal(item.Value, &pt); err != nil || !pt.Expires.After(m.cfg.Clock.Now()) {
		return nil, denied
	}
	// Only one consumer wins the conditional delete. A void token is
	// deleted too: it can never become valid again.
	if err := m.cfg.Backend.ConditionalDelete(ctx, key, item.Revision); err != nil {
		if trace.IsCompareFailed(err) || trace.IsNotFound(err) {
			return nil, denied
		}
		return nil, trace.Wrap(err)
	}
	if pt.Incarnation == "" || pt.User == "" {
		return nil, VoidPasswordToken()
	}
	return &pt, nil
}
