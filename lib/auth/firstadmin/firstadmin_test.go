package firstadmin_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/firstadmin"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/etcdbk"
	"github.com/gatehouse/gatehouse/lib/backend/etcdbk/etcdtest"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

type env struct {
	clock *clockwork.FakeClock
	bk    backend.Backend
	svc   *services.Services
	rec   *recorder
	links *websession.Manager
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	bk, err := memory.New(context.Background(), memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	svc, err := services.New(services.Config{Backend: bk})
	require.NoError(t, err)
	links, err := websession.New(websession.Config{Backend: bk, Clock: clock})
	require.NoError(t, err)
	return &env{clock: clock, bk: bk, svc: svc, rec: &recorder{}, links: links}
}

func (e *env) ensure(t *testing.T) (*firstadmin.Link, error) {
	t.Helper()
	return firstadmin.Ensure(context.Background(), firstadmin.Config{Backend: e.bk, Users: e.svc.UserService, Recorder: e.rec, Role: "editor", Clock: e.clock})
}

// setPassword does what the password endpoint does with a link.
func (e *env) setPassword(t *testing.T, token string) error {
	t.Helper()
	ctx := context.Background()
	pt, err := e.links.ConsumePasswordToken(ctx, token)
	if err != nil {
		return err
	}
	u, err := e.svc.UserService.GetUser(ctx, pt.User, false)
	require.NoError(t, err)
	if err := pt.CheckUser(u); err != nil {
		return err
	}
	return e.svc.UserService.SetLocalPassword(ctx, pt.User, "correct horse battery staple")
}

func TestFirstStartCreatesAdminAndLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	link, err := e.ensure(t)
	require.NoError(t, err)
	require.NotNil(t, link)
	require.True(t, link.Created)
	require.Equal(t, "admin", link.User)
	require.Equal(t, e.clock.Now().Add(websession.DefaultPasswordTokenTTL), link.Expires)
	u, err := e.svc.UserService.GetUser(ctx, "admin", true)
	require.NoError(t, err)
	require.Equal(t, []string{"editor"}, u.GetSpec().GetRoles())
	require.NoError(t, services.CheckLocalUser(u), "a local user: out of SCIM's and SAML's reach")
	require.Nil(t, u.GetSpec().GetLocalAuth())
	require.NotEmpty(t, u.GetSpec().GetIncarnation())
	require.Len(t, e.rec.events, 1)
	require.Equal(t, firstadmin.EventCreate, e.rec.events[0].Type)
	require.NotContains(t, e.rec.events[0].Message, link.Token)

	// Each start while there is no password prints a fresh link and voids
	// the previous one.
	second, err := e.ensure(t)
	require.NoError(t, err)
	require.NotNil(t, second)
	require.False(t, second.Created)
	require.NotEqual(t, link.Token, second.Token)
	require.True(t, trace.IsAccessDenied(e.setPassword(t, link.Token)), "the first link was voided")
	third, err := e.ensure(t)
	require.NoError(t, err)
	require.NoError(t, e.setPassword(t, third.Token))
	require.True(t, trace.IsAccessDenied(e.setPassword(t, second.Token)))

	// Once a password is set, no link is ever printed again.
	for range 2 {
		l, err := e.ensure(t)
		require.NoError(t, err)
		require.Nil(t, l)
	}
	// Deleting the user does not bring it back.
	require.NoError(t, e.svc.UserService.DeleteUser(ctx, "admin"))
	l, err := e.ensure(t)
	require.NoError(t, err)
	require.Nil(t, l)
	_, err = e.svc.UserService.GetUser(ctx, "admin", false)
	require.True(t, trace.IsNotFound(err))
}

// TestPasswordSetElsewhereVoidsLink: a password set another way (gatectl)
// voids the link still outstanding at the next start.
func TestPasswordSetElsewhereVoidsLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	link, err := e.ensure(t)
	require.NoError(t, err)
	require.NoError(t, e.svc.UserService.SetLocalPassword(context.Background(), "admin", "set with gatectl, not the link"))
	l, err := e.ensure(t)
	require.NoError(t, err)
	require.Nil(t, l)
	require.True(t, trace.IsAccessDenied(e.setPassword(t, link.Token)), "the outstanding link was voided")
}

// TestClusterWithUsersGetsNoAdmin: a cluster that already has users (an
// upgrade) gets no first administrator, then or later.
func TestClusterWithUsersGetsNoAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.svc.UserService.CreateUser(ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "alice"}, Spec: &typesv1.UserSpec{Roles: []string{"editor"}}})
	require.NoError(t, err)
	l, err := e.ensure(t)
	require.NoError(t, err)
	require.Nil(t, l)
	require.NoError(t, e.svc.UserService.DeleteUser(ctx, "alice"))
	l, err = e.ensure(t)
	require.NoError(t, err)
	require.Nil(t, l)
	_, err = e.svc.UserService.GetUser(ctx, "admin", false)
	require.True(t, trace.IsNotFound(err))
	require.Empty(t, e.rec.events)
}

// TestConcurrentStarts: servers starting together on one backend make one
// user, and exactly one of them prints a link, which works.
func TestConcurrentStarts(t *testing.T) {
	t.Parallel()
	for _, round := range []string{"first start", "restart"} {
		t.Run(round, func(t *testing.T) {
			e := newEnv(t)
			if round == "restart" {
				_, err := e.ensure(t)
				require.NoError(t, err)
			}
			const n = 8
			var wg sync.WaitGroup
			links := make([]*firstadmin.Link, n)
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					links[i], errs[i] = e.ensure(t)
				})
			}
			close(start)
			wg.Wait()
			var printed []*firstadmin.Link
			for i := range n {
				if errs[i] != nil {
					require.ErrorIs(t, errs[i], firstadmin.ErrElsewhere)
					continue
				}
				require.NotNil(t, links[i])
				printed = append(printed, links[i])
			}
			require.NotEmpty(t, printed)
			users, _, err := e.svc.UserService.ListUsers(context.Background(), 0, "", false)
			require.NoError(t, err)
			require.Len(t, users, 1)
			// The link written last is the one that works; any other
			// printed meanwhile was voided by it.
			works := 0
			for _, l := range printed {
				if e.setPassword(t, l.Token) == nil {
					works++
				}
			}
			require.Equal(t, 1, works)
		})
	}
}

// TestLinkWorksForItsUserOnly: the link is bound to the user's incarnation,
// so an "admin" deleted and created again does not take it.
func TestLinkWorksForItsUserOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	link, err := e.ensure(t)
	require.NoError(t, err)
	require.NoError(t, e.svc.UserService.DeleteUser(ctx, "admin"))
	_, err = e.svc.UserService.CreateUser(ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "admin"}, Spec: &typesv1.UserSpec{Roles: []string{"editor"}}})
	require.NoError(t, err)
	require.ErrorContains(t, e.setPassword(t, link.Token), "earlier account")
}

// TestConcurrentStartsOnEtcd: two servers, each with its own client of one
// etcd (HA), start together on an empty cluster: one user, and the one link
// printed works.
func TestConcurrentStartsOnEtcd(t *testing.T) {
	t.Parallel()
	endpoints := etcdtest.Start(t, 1)
	prefix := "/gatehouse-firstadmin-" + services.NewIncarnation()[:12] + "/"
	type server struct {
		bk  backend.Backend
		svc *services.Services
	}
	var servers []server
	for range 2 {
		bk, err := etcdbk.New(t.Context(), etcdbk.Config{Endpoints: endpoints, Prefix: prefix})
		require.NoError(t, err)
		t.Cleanup(func() { bk.Close() })
		svc, err := services.New(services.Config{Backend: bk})
		require.NoError(t, err)
		servers = append(servers, server{bk: bk, svc: svc})
	}
	links := make([]*firstadmin.Link, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, s := range servers {
		wg.Go(func() {
			<-start
			links[i], errs[i] = firstadmin.Ensure(t.Context(), firstadmin.Config{Backend: s.bk, Users: s.svc.UserService, Recorder: &recorder{}, Role: "editor"})
		})
	}
	close(start)
	wg.Wait()
	var printed []*firstadmin.Link
	for i := range servers {
		if errs[i] != nil {
			require.ErrorIs(t, errs[i], firstadmin.ErrElsewhere)
			continue
		}
		require.NotNil(t, links[i])
		printed = append(printed, links[i])
	}
	require.NotEmpty(t, printed)
	users, _, err := servers[0].svc.ListUsers(t.Context(), 0, "", false)
	require.NoError(t, err)
	require.Len(t, users, 1, "one user")
	// A server that found the user made already (rather than racing its
	// creation) printed a new link and voided the first: the link printed
	// last works, on either server, and only it.
	sessions, err := websession.New(websession.Config{Backend: servers[1].bk})
	require.NoError(t, err)
	works := 0
	for _, l := range printed {
		if pt, err := sessions.ConsumePasswordToken(t.Context(), l.Token); err == nil {
			require.NoError(t, pt.CheckUser(users[0]))
			works++
		}
	}
	require.Equal(t, 1, works)
}
