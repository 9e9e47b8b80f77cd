package lockwatch

import (
	"fmt"
	"strings"
	"time"

	"github.com/gravitational/trace"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// StaleMessage is the error message of CheckLockInForce while the watcher's
// view of the locks cannot be trusted.
const StaleMessage = "lock view is stale, refusing new sessions"

// Target describes one party that may be locked: for a session, the user,
// one of the user's roles, the OS login and the node. Build one per role with
// Targets; a session with no roles has one target.
type Target = typesv1.LockTarget

// Targets expands a session's identity into lock targets: one per role (each
// carrying the user, login and node), or a single one when roles is empty. A
// lock matches the session when it matches any of them.
func Targets(user string, roles []string, login, node string) []*Target {
	if len(roles) == 0 {
		return []*Target{{User: user, Login: login, Node: node}}
	}
	out := make([]*Target, 0, len(roles))
	for _, r := range roles {
		out = append(out, &Target{User: user, Role: r, Login: login, Node: node})
	}
	return out
}

// TargetEmpty reports whether a lock target names nothing. An empty lock
// target matches nothing: a lock must say whom it locks.
func TargetEmpty(t *typesv1.LockTarget) bool {
	return t == nil || (t.GetUser() == "" && t.GetRole() == "" && t.GetLogin() == "" && t.GetNode() == "")
}

// TargetMatches reports whether a lock target applies to a party: every field
// the lock sets must equal the party's field. A lock target that sets nothing
// matches nothing.
func TargetMatches(lock *typesv1.LockTarget, party *Target) bool {
	if TargetEmpty(lock) || party == nil {
		return false
	}
	if lock.GetUser() != "" && lock.GetUser() != party.GetUser() {
		return false
	}
	if lock.GetRole() != "" && lock.GetRole() != party.GetRole() {
		return false
	}
	if lock.GetLogin() != "" && lock.GetLogin() != party.GetLogin() {
		return false
	}
	if lock.GetNode() != "" && lock.GetNode() != party.GetNode() {
		return false
	}
	return true
}

// Matches reports whether lock applies to any of targets.
func Matches(lock *typesv1.Lock, targets ...*Target) bool {
	for _, t := range targets {
		if TargetMatches(lock.GetSpec().GetTarget(), t) {
			return true
		}
	}
	return false
}

// InForce reports whether lock is in force at now: it is until its
// metadata.expires passes (unset: until deleted). The backend purges expired
// locks later; until then they must not lock anyone.
func InForce(lock *typesv1.Lock, now time.Time) bool {
	exp := lock.GetMetadata().GetExpires()
	if exp == nil {
		return true
	}
	return now.Before(exp.AsTime())
}

// DescribeTarget renders a lock target for messages: `user "alice"`,
// `role "access", login "root"`.
func DescribeTarget(t *typesv1.LockTarget) string {
	var parts []string
	add := func(kind, v string) {
		if v != "" {
			parts = append(parts, fmt.Sprintf("%s %q", kind, v))
		}
	}
	add("user", t.GetUser())
	add("role", t.GetRole())
	add("login", t.GetLogin())
	add("node", t.GetNode())
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// LockMessage is the text shown to a locked party:
// `lock targeting user "alice" is in force: <message>`.
func LockMessage(lock *typesv1.Lock) string {
	msg := fmt.Sprintf("lock targeting %s is in force", DescribeTarget(lock.GetSpec().GetTarget()))
	if m := lock.GetSpec().GetMessage(); m != "" {
		msg += ": " + m
	}
	return msg
}

// LockInForceError is the error returned for a party under lock.
func LockInForceError(lock *typesv1.Lock) error {
	return trace.AccessDenied("%s", LockMessage(lock))
}
