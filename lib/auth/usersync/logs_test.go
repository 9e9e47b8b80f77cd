package usersync

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/okta/oktaapi"
)

// TestUnassignSeenByNextIncrementalRun: with full passes an hour apart,
// the next incremental run reads the System Log (over several pages),
// confirms each removal with a direct read, and deletes and locks.
func TestUnassignSeenByNextIncrementalRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	e.org.PageSize = 2
	var ids []string
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		ids = append(ids, e.org.AddUser(n+"@example.com", true))
	}
	_, err := e.run(t, false)
	require.NoError(t, err)
	_, before, _ := e.org.Calls()

	e.org.Unassign(ids[0])
	e.org.Unassign(ids[1])
	e.org.DeleteUser(ids[2])
	st, err := e.run(t, false)
	require.NoError(t, err)
	require.False(t, st.GetLastRunFull())
	require.True(t, st.GetLastRunOk())
	require.Empty(t, st.GetLastError())
	require.EqualValues(t, 3, st.GetUsersLocked())
	for _, n := range []string{"a", "b", "c"} {
		require.Nil(t, e.user(t, n+"@example.com"), n)
		require.NotNil(t, e.lock(t, n+"@example.com"), n)
	}
	for _, n := range []string{"d", "e", "f"} {
		require.NotNil(t, e.user(t, n+"@example.com"), n)
	}
	_, after, _ := e.org.Calls()
	require.Equal(t, 3, after["apps.user"]-before["apps.user"], "one confirming read per candidate")
	require.GreaterOrEqual(t, after["logs"]-before["logs"], 3, "the log's pages were followed")
	require.Zero(t, after["apps.users"]-before["apps.users"]-1, "no full listing")

	// Nothing new: the next run reads the overlap again and confirms
	// nothing (the accounts are already gone).
	st, err = e.run(t, false)
	require.NoError(t, err)
	require.Zero(t, st.GetUsersLocked())
}

// TestLogEventAloneChangesNothing: an event is only a hint. A removal
// event for a user Okta still has assigned and active (a stale event, or
// one undone since: re-assigned, unsuspended) changes nothing.
func TestLogEventAloneChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100)
	a := e.org.AddUser("a@example.com", true)
	b := e.org.AddUser("b@example.com", true)
	c := e.org.AddUser("c@example.com", true)
	_, err := e.run(t, false)
	require.NoError(t, err)
	incA := e.user(t, "a@example.com").GetSpec().GetIncarnation()
	revB := e.user(t, "b@example.com").GetMetadata().GetRevision()

	e.org.AddLogEvent("application.user_membership.remove", a)
	e.org.AddLogEvent("user.lifecycle.suspend", b)
	// c is unassigned and re-assigned before the run.
	e.org.Unassign(c)
	e.org.Assign(c)
	_, before, _ := e.org.Calls()
	st, err := e.run(t, false)
	require.NoError(t, err)
	require.Zero(t, st.GetUsersLocked())
	require.Equal(t, incA, e.user(t, "a@example.com").GetSpec().GetIncarnation())
	require.Equal(t, revB, e.user(t, "b@example.com").GetMetadata().GetRevision(), "an unchanged user is not rewritten")
	require.NotNil(t, e.user(t, "c@example.com"))
	require.Nil(t, e.lock(t, "a@example.com"))
	_, after, _ := e.org.Calls()
	// c's new assignment was in the listing: no read needed for it.
	require.Equal(t, 2, after["apps.user"]-before["apps.user"])
}

// TestRemovalCandidates: which events name candidates. A membership event
// of another app, a failed one or an unrelated one names none, whatever
// the filter let through.
func TestRemovalCandidates(t *testing.T) {
	t.Parallel()
	const app = "0oaapp"
	user := oktaapi.LogTarget{ID: "00u1", Type: "User"}
	appUser := oktaapi.LogTarget{ID: "0ua1", Type: "AppUser", AlternateID: "A@example.com"}
	for _, tc := range []struct {
		name        string
		ev          oktaapi.LogEvent
		ids, logins []string
	}{
		{"removed from the app", oktaapi.LogEvent{EventType: membershipRemove, Outcome: oktaapi.LogOutcome{Result: "SUCCESS"},
			Target: []oktaapi.LogTarget{appUser, {ID: app, Type: "AppInstance"}, user}}, []string{"00u1"}, []string{"a@example.com"}},
		{"removed from another app", oktaapi.LogEvent{EventType: membershipRemove,
			Target: []oktaapi.LogTarget{appUser, {ID: "0oaother", Type: "AppInstance"}, user}}, nil, nil},
		{"suspended", oktaapi.LogEvent{EventType: "user.lifecycle.suspend", Target: []oktaapi.LogTarget{user}}, []string{"00u1"}, nil},
		{"failed deactivation", oktaapi.LogEvent{EventType: "user.lifecycle.deactivate", Outcome: oktaapi.LogOutcome{Result: "FAILURE"},
			Target: []oktaapi.LogTarget{user}}, nil, nil},
		{"another event", oktaapi.LogEvent{EventType: "user.lifecycle.activate", Target: []oktaapi.LogTarget{user}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, logins := map[string]bool{}, map[string]bool{}
			removalCandidates(tc.ev, app, ids, logins)
			require.ElementsMatch(t, tc.ids, keys(ids))
			require.ElementsMatch(t, tc.logins, keys(logins))
		})
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestConfirmationErrorChangesNothing: when the confirming read fails the
// run fails, nobody is deactivated on the event alone, and the cursor
// stays, so the next run reads the event again.
func TestConfirmationErrorChangesNothing(t *testing.T) {
	t.Parallel()
	for name, status := range map[string]int{"5xx": 503, "401": 401, "400": 400} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 100)
			a := e.org.AddUser("a@example.com", true)
			e.org.AddUser("b@example.com", true)
			first, err := e.run(t, false)
			require.NoError(t, err)
			e.org.Unassign(a)
			e.org.FailKind("apps.user", status)
			st, err := e.run(t, false)
			require.Error(t, err)
			require.False(t, st.GetLastRunOk())
			require.Contains(t, st.GetLastError(), "confirming")
			require.Zero(t, st.GetUsersLocked())
			require.NotNil(t, e.user(t, "a@example.com"))
			require.Nil(t, e.lock(t, "a@example.com"))
			require.Equal(t, first.GetCursor().AsTime(), st.GetCursor().AsTime())

			e.org.FailKind("apps.user", 0)
			st, err = e.run(t, false)
			require.NoError(t, err)
			require.False(t, st.GetLastRunFull())
			require.EqualValues(t, 1, st.GetUsersLocked())
			require.Nil(t, e.user(t, "a@example.com"))
		})
	}
}

// TestLogQueryRefusedFallsBack: a 400 for the System Log query is a
// warning too, not a failure of every incremental run; a 5xx that outlasts
// the retries fails the run and changes nothing.
func TestLogQueryRefusedFallsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100)
	a := e.org.AddUser("a@example.com", true)
	e.org.AddUser("b@example.com", true)
	first, err := e.run(t, false)
	require.NoError(t, err)
	e.org.Unassign(a)

	e.org.FailKind("logs", 503)
	st, err := e.run(t, false)
	require.ErrorContains(t, err, "System Log")
	require.False(t, st.GetLastRunOk())
	require.Equal(t, first.GetCursor().AsTime(), st.GetCursor().AsTime())
	require.NotNil(t, e.user(t, "a@example.com"))

	e.org.FailKind("logs", 400)
	st, err = e.run(t, false)
	require.NoError(t, err)
	require.True(t, st.GetLastRunOk())
	require.Contains(t, st.GetLastError(), "warning: Okta refused the System Log (it refused the query")
	require.NotNil(t, e.user(t, "a@example.com"))
}

// TestLogsForbiddenFallsBack: an org that refuses the System Log (403)
// leaves unassignments to full passes; the run is ok and the status
// carries a warning.
func TestLogsForbiddenFallsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100)
	a := e.org.AddUser("a@example.com", true)
	b := e.org.AddUser("b@example.com", true)
	_, err := e.run(t, false)
	require.NoError(t, err)
	e.org.LogsForbidden = true
	e.org.Unassign(a)
	e.org.SetStatus(b, "SUSPENDED")
	st, err := e.run(t, false)
	require.NoError(t, err)
	require.True(t, st.GetLastRunOk())
	require.False(t, st.GetLastRunFull())
	require.Contains(t, st.GetLastError(), "warning: Okta refused the System Log")
	require.Contains(t, st.GetLastError(), "okta.logs.read")
	require.EqualValues(t, 1, st.GetUsersLocked(), "the suspension is still seen by the listing")
	require.NotNil(t, e.user(t, "a@example.com"), "the unassignment waits for a full pass")
	require.Nil(t, e.user(t, "b@example.com"))

	st, err = e.run(t, true)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.GetUsersLocked())
	require.Nil(t, e.user(t, "a@example.com"))
	require.Empty(t, st.GetLastError(), "a full pass reads no log: no warning")
}
