package scimprov

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// The accounts a SCIM write may meet under a name, by owner.
const (
	ownID   = "11111111-1111-1111-1111-111111111111"
	otherID = "22222222-2222-2222-2222-222222222222"
)

var planNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func planPC() *pluginContext {
	return &pluginContext{
		name: "okta",
		okta: &typesv1.OktaPluginSettings{SamlConnector: "okta-saml", DefaultRoles: []string{"access"}},
		connector: &typesv1.SAMLConnector{Spec: &typesv1.SAMLConnectorSpec{AttributesToRoles: []*typesv1.AttributeMapping{
			{Name: "groups", Value: "Admins", Roles: []string{"editor"}},
			{Name: "groups", Value: "Eng", Roles: []string{"eng"}},
		}}},
	}
}

// account builds a stored user named name of the given owner.
func account(owner, name string) *typesv1.User {
	u := &typesv1.User{
		Kind: services.KindUser, Version: services.V1,
		Metadata: &typesv1.Metadata{Name: name, Revision: "rev-" + name, Labels: map[string]string{}},
		Spec:     &typesv1.UserSpec{Roles: []string{"editor"}, Incarnation: "inc-" + owner},
	}
	saml := func(conn string) {
		u.Spec.CreatedBy = &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: conn}}
	}
	switch owner {
	case "local":
	case "ours":
		u.Metadata.Labels[services.LabelOrigin] = "okta"
		u.Metadata.Labels[services.LabelSCIMID] = ownID
		saml("okta-saml")
	case "ours-other-id":
		u.Metadata.Labels[services.LabelOrigin] = "okta"
		u.Metadata.Labels[services.LabelSCIMID] = otherID
		saml("okta-saml")
	case "other-plugin":
		u.Metadata.Labels[services.LabelOrigin] = "azure"
		u.Metadata.Labels[services.LabelSCIMID] = ownID
		saml("azure-saml")
	case "temp-our-connector":
		saml("okta-saml")
		u.Metadata.Expires = timestamppb.New(planNow.Add(time.Hour))
	case "temp-other-connector":
		saml("other-saml")
		u.Metadata.Expires = timestamppb.New(planNow.Add(time.Hour))
	case "permanent-our-connector":
		saml("okta-saml")
	default:
		panic(owner)
	}
	return u
}

func rec(userName string, active bool, groups ...string) *scimrecord.UserRecord {
	r := &scimrecord.UserRecord{ID: ownID, UserName: userName, Active: active, Attributes: []byte("{}"), Revision: "rec-rev"}
	for _, g := range groups {
		r.Groups = append(r.Groups, scimrecord.GroupRef{ID: "g-" + g, DisplayName: g})
	}
	return r
}

func ourLock(name string) *typesv1.Lock {
	l := buildLock(planPC(), &scimrecord.UserRecord{ID: ownID, UserName: name}, false, planNow)
	l.Metadata.Revision = "lock-rev"
	return l
}

// summary lists a plan's writes outside the SCIM keyspace ("put users/x",
// "delete locks/y"), sorted, for comparison.
func summary(p *userPlan) []string {
	var out []string
	for _, a := range p.writes.Actions() {
		k := a.Key.String()
		if strings.HasPrefix(k, "scim/") {
			continue
		}
		verb := map[backend.ActionKind]string{backend.ActionPut: "put", backend.ActionDelete: "delete", backend.ActionNop: "nop"}[a.Action.Kind]
		k = strings.TrimPrefix(k, "/")
		if strings.HasPrefix(k, services.LocksPrefix+"/") {
			k = services.LocksPrefix + "/<lock>"
		}
		out = append(out, verb+" "+k)
	}
	slices.Sort(out)
	return out
}

func TestPlanUserReach(t *testing.T) {
	t.Parallel()
	foreign := []string{"local", "ours-other-id", "other-plugin", "temp-other-connector", "permanent-our-connector"}
	type tc struct {
		name     string
		st       userState
		want     []string // writes outside the SCIM keyspace; nil with refused
		refused  bool
		conflict bool // refused as a SCIM uniqueness conflict, without a refusal event
	}
	var cases []tc
	for _, owner := range foreign {
		victim := account(owner, "admin")
		cases = append(cases,
			tc{name: "create active onto " + owner, st: userState{next: rec("admin", true), user: victim}, refused: true},
			tc{name: "create inactive onto " + owner, st: userState{next: rec("Admin", false), user: victim}, refused: true},
			tc{name: "rename active onto " + owner, st: userState{old: rec("me", true), next: rec("ADMIN", true), oldUser: account("ours", "me"), user: victim}, refused: true},
			tc{name: "rename and deactivate onto " + owner, st: userState{old: rec("me", true), next: rec("admin", false), oldUser: account("ours", "me"), user: victim}, refused: true},
			tc{name: "rename inactive onto " + owner, st: userState{old: rec("me", false), next: rec("ａｄｍｉｎ", false), user: victim, oldLock: ourLock("me")}, refused: true},
			tc{name: "reactivate under " + owner, st: userState{old: rec("admin", false), next: rec("admin", true), user: victim}, refused: true},
			tc{name: "update active under " + owner, st: userState{old: rec("admin", true), next: rec("admin", true), user: victim}, refused: true},
			// Ours was deleted out of band and the name reused: the record
			// changes, the other account and its locks are left alone.
			tc{name: "deactivate under " + owner, st: userState{old: rec("admin", true), next: rec("admin", false), user: victim}, want: nil},
			tc{name: "delete under " + owner, st: userState{old: rec("admin", true), user: victim}, want: nil},
			tc{name: "update inactive under " + owner, st: userState{old: rec("admin", false), next: rec("admin", false), user: victim}, want: nil},
		)
	}
	cases = append(cases,
		tc{name: "create new", st: userState{next: rec("alice", true)}, want: []string{"put users/alice"}},
		tc{name: "create with a look-alike spelling of a free name", st: userState{next: rec("ＡＬＩＣＥ", true)}, want: []string{"put users/alice"}},
		tc{name: "create taken in the plugin", st: userState{next: rec("alice", true), userNameTaken: true}, conflict: true},
		tc{name: "create inactive, free name: no lock", st: userState{next: rec("alice", false)}, want: nil},
		tc{name: "create adopts temporary SAML user", st: userState{next: rec("alice", true), user: account("temp-our-connector", "alice")}, want: []string{"put users/alice"}},
		tc{name: "create inactive deletes and locks temporary SAML user", st: userState{next: rec("alice", false), user: account("temp-our-connector", "alice")},
			want: []string{"delete users/alice", "put locks/<lock>"}},
		tc{name: "update ours", st: userState{old: rec("alice", true), next: rec("alice", true), user: account("ours", "alice")}, want: []string{"put users/alice"}},
		tc{name: "deactivate ours", st: userState{old: rec("alice", true), next: rec("alice", false), user: account("ours", "alice")},
			want: []string{"delete users/alice", "put locks/<lock>"}},
		tc{name: "deactivate ours, vanished out of band", st: userState{old: rec("alice", true), next: rec("alice", false)}, want: []string{"put locks/<lock>"}},
		tc{name: "delete ours", st: userState{old: rec("alice", true), user: account("ours", "alice")}, want: []string{"delete users/alice", "put locks/<lock>"}},
		tc{name: "reactivate lifts our lock", st: userState{old: rec("alice", false), next: rec("alice", true), lock: ourLock("alice")},
			want: []string{"delete locks/<lock>", "put users/alice"}},
		tc{name: "rename ours to a free name", st: userState{old: rec("alice", true), next: rec("alicia", true), oldUser: account("ours", "alice")},
			want: []string{"delete users/alice", "put users/alicia"}},
		tc{name: "case-only rename is no rename", st: userState{old: rec("alice", true), next: rec("Alice", true), user: account("ours", "alice")},
			want: []string{"put users/alice"}},
		tc{name: "rename inactive to a free name drops our old lock", st: userState{old: rec("alice", false), next: rec("alicia", false), oldLock: ourLock("alice")},
			want: []string{"delete locks/<lock>"}},
		tc{name: "rename and deactivate ours to a free name locks the old name", st: userState{old: rec("alice", true), next: rec("alicia", false), oldUser: account("ours", "alice")},
			want: []string{"delete users/alice", "put locks/<lock>"}},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			st := c.st
			st.now, st.incarnation = planNow, "fresh"
			st.grantable = map[string]bool{"access": true, "eng": true}
			plan, err := planUser(planPC(), &st)
			var r *refusal
			switch {
			case c.refused:
				require.True(t, errors.As(err, &r), "want a refusal, got %v", err)
				require.True(t, trace.IsAlreadyExists(err))
				require.Equal(t, fmt.Sprintf("userName %q is already taken", st.next.UserName), r.err.Error(),
					"the client learns only that the name is taken")
				require.Equal(t, "admin", r.event.GetFields()["holder"], "the audit log learns who holds it")
				require.Equal(t, services.OutcomeDenied, r.event.GetOutcome())
				require.Nil(t, plan)
			case c.conflict:
				require.True(t, trace.IsAlreadyExists(err), "%v", err)
				require.False(t, errors.As(err, &r))
			default:
				require.NoError(t, err)
				require.Equal(t, c.want, summary(plan))
			}
		})
	}
}

// userPut returns the user a plan writes.
func userPut(t *testing.T, p *userPlan) *typesv1.User {
	t.Helper()
	for _, a := range p.writes.Actions() {
		if a.Action.Kind == backend.ActionPut && strings.HasPrefix(a.Key.String(), services.UsersPrefix+"/") {
			item := a.Action.Item
			item.Key = a.Key
			u, err := services.UnmarshalUser(item)
			require.NoError(t, err)
			return u
		}
	}
	t.Fatal("the plan writes no user")
	return nil
}

func TestPlanUserIncarnation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		st   userState
		want string
	}{
		{"create", userState{next: rec("alice", true)}, "fresh"},
		{"update in place keeps it", userState{old: rec("alice", true), next: rec("alice", true), user: account("ours", "alice")}, "inc-ours"},
		{"reactivation is a new life", userState{old: rec("alice", false), next: rec("alice", true)}, "fresh"},
		{"reactivation over a stale account of ours", userState{old: rec("alice", false), next: rec("alice", true), user: account("ours", "alice")}, "fresh"},
		{"rename is a new life", userState{old: rec("alice", true), next: rec("alicia", true), oldUser: account("ours", "alice")}, "fresh"},
		{"adoption keeps the SAML user's", userState{next: rec("alice", true), user: account("temp-our-connector", "alice")}, "inc-temp-our-connector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := tc.st
			st.now, st.incarnation = planNow, "fresh"
			plan, err := planUser(planPC(), &st)
			require.NoError(t, err)
			require.Equal(t, tc.want, userPut(t, plan).GetSpec().GetIncarnation())
		})
	}
}

func TestPlanUserRoleCeiling(t *testing.T) {
	t.Parallel()
	st := userState{next: rec("alice", true, "Admins", "Eng"), now: planNow, incarnation: "fresh",
		grantable: map[string]bool{"access": true, "eng": true, "editor": false}}
	plan, err := planUser(planPC(), &st)
	require.NoError(t, err)
	require.Equal(t, []string{"access", "eng"}, userPut(t, plan).GetSpec().GetRoles())
	require.Equal(t, []string{"editor"}, plan.dropped)
	var dropped *typesv1.AuditEvent
	for _, e := range plan.events {
		if e.GetType() == EventRolesDropped {
			dropped = e
		}
	}
	require.NotNil(t, dropped, "the drop is audited")
	require.Contains(t, dropped.GetFields()["dropped_roles"], "editor")

	// The same ceiling holds on group membership changes.
	mst := &memberState{old: rec("alice", true), next: rec("alice", true, "Admins"), user: account("ours", "alice"),
		grantable: st.grantable, now: planNow}
	mplan, err := planMember(planPC(), mst)
	require.NoError(t, err)
	require.Equal(t, []string{"access"}, userPut(t, mplan).GetSpec().GetRoles())
	require.Equal(t, []string{"editor"}, mplan.dropped)
}

func TestPlanMemberReach(t *testing.T) {
	t.Parallel()
	for _, owner := range []string{"local", "ours-other-id", "other-plugin", "temp-our-connector", "permanent-our-connector"} {
		t.Run(owner, func(t *testing.T) {
			t.Parallel()
			st := &memberState{old: rec("admin", true), next: rec("admin", true, "Eng"), user: account(owner, "admin"),
				grantable: map[string]bool{"access": true, "eng": true}, now: planNow}
			plan, err := planMember(planPC(), st)
			require.NoError(t, err)
			require.Empty(t, summary(plan), "a group change never writes an account the plugin does not own")
		})
	}
	st := &memberState{old: rec("alice", true), next: rec("alice", true, "Eng"), user: account("ours", "alice"),
		grantable: map[string]bool{"access": true, "eng": true}, now: planNow}
	plan, err := planMember(planPC(), st)
	require.NoError(t, err)
	require.Equal(t, []string{"put users/alice"}, summary(plan))
	require.Equal(t, "inc-ours", userPut(t, plan).GetSpec().GetIncarnation(), "membership keeps the incarnation")
}

// TestPlanRenameAndDeactivateLocksTheOldName: a record renamed and deactivated at once loses the
// account under its old name, so the lock targets that name, not the new one that no account holds.
func TestPlanRenameAndDeactivateLocksTheOldName(t *testing.T) {
	t.Parallel()
	st := userState{old: rec("alice", true), next: rec("alicia", false), oldUser: account("ours", "alice"), now: planNow, incarnation: "fresh"}
	plan, err := planUser(planPC(), &st)
	require.NoError(t, err)
	var targets []string
	for _, a := range plan.writes.Actions() {
		if a.Action.Kind == backend.ActionPut && strings.HasPrefix(a.Key.String(), services.LocksPrefix+"/") {
			item := a.Action.Item
			item.Key = a.Key
			l, err := services.UnmarshalLock(item)
			require.NoError(t, err)
			targets = append(targets, l.GetSpec().GetTarget().GetUser())
		}
	}
	require.Equal(t, []string{"alice"}, targets)
	require.Equal(t, 1, plan.out.locks)
}

// TestGrantedRoles is the rule of where a SCIM user's roles come from:
// default_roles ∪ the roles its groups map to through the connector, cut
// to what the plugin may grant, sorted and without duplicates.
func TestGrantedRoles(t *testing.T) {
	t.Parallel()
	all := map[string]bool{"access": true, "eng": true, "editor": true}
	for _, tc := range []struct {
		name       string
		defaults   []string
		groups     []string
		grantable  map[string]bool
		roles, cut []string
	}{
		{name: "no group: default roles", defaults: []string{"access"}, grantable: all, roles: []string{"access"}},
		{name: "a mapped group adds its roles", defaults: []string{"access"}, groups: []string{"Eng"}, grantable: all, roles: []string{"access", "eng"}},
		{name: "an unmapped group adds nothing", defaults: []string{"access"}, groups: []string{"Sales"}, grantable: all, roles: []string{"access"}},
		{name: "a role from both sources once", defaults: []string{"eng", "access"}, groups: []string{"Eng"}, grantable: all, roles: []string{"access", "eng"}},
		{name: "several groups", defaults: []string{"access"}, groups: []string{"Eng", "Admins"}, grantable: all, roles: []string{"access", "editor", "eng"}},
		{name: "the ceiling cuts a group's role", defaults: []string{"access"}, groups: []string{"Admins", "Eng"}, grantable: map[string]bool{"access": true, "eng": true}, roles: []string{"access", "eng"}, cut: []string{"editor"}},
		{name: "the ceiling cuts a default role", defaults: []string{"access", "editor"}, grantable: map[string]bool{"access": true}, roles: []string{"access"}, cut: []string{"editor"}},
		{name: "no default role, no group: none", grantable: all},
		{name: "no default role: the groups' roles only", groups: []string{"Eng"}, grantable: all, roles: []string{"eng"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pc := planPC()
			pc.okta.DefaultRoles = tc.defaults
			roles, cut := grantedRoles(pc, rec("alice", true, tc.groups...), tc.grantable)
			require.Equal(t, tc.roles, roles)
			require.Equal(t, tc.cut, cut)
		})
	}
}
