package lockwatch

import (
	"fmt"
	"strings"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/safetext"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// StaleMessage is the error message of CheckLockInForce while the watcher's
// view of the locks cannot be trusted.
const StaleMessage = "lock view is stale, refusing new sessions"

// IsStale reports whether err is CheckLockInForce's refusal for a stale
// view, as opposed to a lock in force: the first is temporary (refuse and
// let the caller retry), the second ends the caller's session.
func IsStale(err error) bool {
	return err != nil && trace.Unwrap(err).Error() == StaleMessage
}

// LiveStaleMessage is why a live session ends once the view has been stale
// for longer than bound (a session monitor prefixes "session terminated: ").
func LiveStaleMessage(bound time.Duration) string {
	return fmt.Sprintf("the lock view has been unavailable for more than %v; reconnect when the cluster is healthy", bound)
}

// Subject is who is asking for access, as lock targets see it: the user,
// the user's roles, the OS logins in play and the node. Matching is
// services.LockTargetMatches, the one definition every enforcement point
// shares.
type Subject = services.LockSubject

// Matches reports whether lock applies to subject.
func Matches(lock *typesv1.Lock, subject Subject) bool {
	return services.LockTargetMatches(lock.GetSpec().GetTarget(), subject)
}

// InForce reports whether lock is in force at now: until its expiry
// (metadata.expires, which is the backend item's expiry) passes; the backend
// purges expired locks later, and until then they must not lock anyone.
func InForce(lock *typesv1.Lock, now time.Time) bool {
	return services.IsLockInForce(lock, now)
}

// TargetEmpty reports whether a lock target names nothing. Such a lock
// matches nothing (and never passes services.ValidateLock).
func TargetEmpty(t *typesv1.LockTarget) bool {
	return t == nil || (t.GetUser() == "" && t.GetRole() == "" && t.GetLogin() == "" && t.GetNode() == "")
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
// `lock targeting user "alice" is in force: <message>`. It goes to the
// party's terminal (an SSH session): a control character or bidi override
// in the message (a lock written before ValidateLock refused them) is
// shown as an escape, and the message is one line.
func LockMessage(lock *typesv1.Lock) string {
	msg := fmt.Sprintf("lock targeting %s is in force", DescribeTarget(lock.GetSpec().GetTarget()))
	if m := lock.GetSpec().GetMessage(); m != "" {
		msg += ": " + strings.Join(strings.Fields(safetext.Escape(m)), " ")
	}
	return msg
}

// LockInForceError is the error returned for a party under lock.
func LockInForceError(lock *typesv1.Lock) error {
	return trace.AccessDenied("%s", LockMessage(lock))
}
