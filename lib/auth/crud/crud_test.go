package crud_test

import (
	"context"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/crud"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const kind = "widget"

// caller authorizes every call as "alice" holding the given verbs on kind.
type caller []string

func (c caller) Authorize(context.Context) (*authz.Context, error) {
	role := &typesv1.Role{Metadata: &typesv1.Metadata{Name: "r"}, Spec: &typesv1.RoleSpec{Allow: &typesv1.RoleConditions{
		Rules: []*typesv1.Rule{{Resources: []string{kind}, Verbs: c}},
	}}}
	return &authz.Context{User: &typesv1.User{Metadata: &typesv1.Metadata{Name: "alice"}}, Checker: authz.NewChecker([]*typesv1.Role{role})}, nil
}

type recorder struct{ events []audit.Event }

func (r *recorder) Record(_ context.Context, e audit.Event) { r.events = append(r.events, e) }

// store is an in-memory Store that remembers what it was last given.
type store struct {
	items       map[string]*typesv1.Lock
	written     *typesv1.Lock
	withSecrets []bool
	err         error
}

func (s *store) funcs() crud.Store[*typesv1.Lock] {
	put := func(_ context.Context, l *typesv1.Lock) (*typesv1.Lock, error) {
		if s.err != nil {
			return nil, s.err
		}
		s.written = l
		s.items[l.GetMetadata().GetName()] = l
		return l, nil
	}
	return crud.Store[*typesv1.Lock]{
		Get: func(_ context.Context, name string, withSecrets bool) (*typesv1.Lock, error) {
			s.withSecrets = append(s.withSecrets, withSecrets)
			if l, ok := s.items[name]; ok {
				return l, nil
			}
			return nil, trace.NotFound("widget %q not found", name)
		},
		List: func(_ context.Context, _ int, _ string, withSecrets bool) ([]*typesv1.Lock, string, error) {
			s.withSecrets = append(s.withSecrets, withSecrets)
			var out []*typesv1.Lock
			for _, l := range s.items {
				out = append(out, l)
			}
			return out, "", nil
		},
		Create: put, Update: put, Upsert: put,
		Delete: func(_ context.Context, name string) error {
			delete(s.items, name)
			return s.err
		},
	}
}

type fixture struct {
	store    *store
	recorder *recorder
	clock    *clockwork.FakeClock
}

func newHandler(t *testing.T, verbs []string, edit func(*crud.Config[*typesv1.Lock])) (*crud.Handler[*typesv1.Lock], *fixture) {
	t.Helper()
	f := &fixture{store: &store{items: map[string]*typesv1.Lock{}}, recorder: &recorder{}, clock: clockwork.NewFakeClock()}
	cfg := crud.Config[*typesv1.Lock]{
		Kind: kind, Noun: "blue widget",
		Deps: crud.Deps{Authorizer: caller(verbs), Recorder: f.recorder, Clock: f.clock}, Store: f.store.funcs(),
		Events: crud.Events{Create: "widget.create", Update: "widget.update", Delete: "widget.delete"},
	}
	if edit != nil {
		edit(&cfg)
	}
	h, err := crud.New(cfg)
	require.NoError(t, err)
	return h, f
}

func widget(name string) *typesv1.Lock {
	return &typesv1.Lock{Metadata: &typesv1.Metadata{Name: name, Revision: "1"}, Spec: &typesv1.LockSpec{Message: "m"}}
}

// TestVerbs checks that each call passes with exactly its verbs and is
// refused when any one of them is missing.
func TestVerbs(t *testing.T) {
	t.Parallel()
	calls := map[string]struct {
		verbs []string
		call  func(ctx context.Context, h *crud.Handler[*typesv1.Lock]) error
	}{
		"get": {[]string{services.VerbReadNoSecrets}, func(ctx context.Context, h *crud.Handler[*typesv1.Lock]) error {
			_, err := h.Get(ctx, "w", false)
			return err
		}},
		"get with secrets": {[]string{services.VerbRead}, func(ctx context.Context, h *crud.Handler[*typesv1.Lock]) error {
			_, err := h.Get(ctx, "w", true)
			return err
		}},
		"list": {[]string{services.VerbList, services.VerbReadNoSecrets}, func(ctx context.Context, h *crud.Handler[*typesv1.Lock]) error {
			_, _, err := h.List(ctx, 0, "")
			return err
		}},
		"create": {[]string{services.VerbCreate}, func(ctx context.Context, h *crud.Handler[*typesv1.Lock]) error {
			_, err := h.Create(ctx, widget("new"))
			return err
		}},
		"update": {[]string{services.VerbUpdate}, func(ctx context.Context, h *crud.Handler[*typesv1.Lock]) error {
			_, err := h.Update(ctx, widget("w"))
			return err
		}},
		"upsert": {[]string{services.VerbCreate, services.VerbUpdate}, func(ctx context.Context, h *crud.Handler[*typesv1.Lock]) error {
			_, err := h.Upsert(ctx, widget("w"))
			return err
		}},
		"delete": {[]string{services.VerbDelete}, func(ctx context.Context, h *crud.Handler[*typesv1.Lock]) error {
			return h.Delete(ctx, "w")
		}},
	}
	for name, tc := range calls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			h, f := newHandler(t, tc.verbs, nil)
			f.store.items["w"] = widget("w")
			require.NoError(t, tc.call(ctx, h))
			for i := range tc.verbs {
				others := append(append([]string{}, tc.verbs[:i]...), tc.verbs[i+1:]...)
				h, f := newHandler(t, others, nil)
				f.store.items["w"] = widget("w")
				err := tc.call(ctx, h)
				require.True(t, trace.IsAccessDenied(err), "without %q: %v", tc.verbs[i], err)
				require.Empty(t, f.recorder.events, "a refused call records no change")
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h, f := newHandler(t, []string{services.VerbRead, services.VerbList}, nil)
	f.store.items["w"] = widget("w")
	_, err := h.Get(ctx, "w", true)
	require.NoError(t, err)
	_, err = h.Get(ctx, "w", false)
	require.NoError(t, err)
	_, _, err = h.List(ctx, 10, "")
	require.NoError(t, err)
	require.Equal(t, []bool{true, false, false}, f.store.withSecrets, "list never asks for secrets")
}

func TestValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	all := []string{services.VerbList, services.VerbRead, services.VerbCreate, services.VerbUpdate, services.VerbDelete}
	h, f := newHandler(t, all, nil)

	_, err := h.Create(ctx, nil)
	require.True(t, trace.IsBadParameter(err), "%v", err)
	require.Contains(t, err.Error(), "missing blue widget")
	_, err = h.Upsert(ctx, &typesv1.Lock{})
	require.True(t, trace.IsBadParameter(err), "%v", err)
	_, err = h.Get(ctx, "", false)
	require.True(t, trace.IsBadParameter(err), "%v", err)
	require.True(t, trace.IsBadParameter(h.Delete(ctx, "")))
	_, _, err = h.List(ctx, -1, "")
	require.True(t, trace.IsBadParameter(err), "%v", err)

	noRev := widget("w")
	noRev.Metadata.Revision = ""
	_, err = h.Update(ctx, noRev)
	require.True(t, trace.IsBadParameter(err), "%v", err)
	require.Contains(t, err.Error(), `blue widget "w": metadata.revision is required to update; read the blue widget first`)
	require.Empty(t, f.recorder.events, "invalid requests record nothing")
	require.Nil(t, f.store.written)
}

func TestAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h, f := newHandler(t, []string{services.VerbCreate, services.VerbUpdate, services.VerbDelete}, nil)
	_, err := h.Create(ctx, widget("a"))
	require.NoError(t, err)
	_, err = h.Update(ctx, widget("a"))
	require.NoError(t, err)
	_, err = h.Upsert(ctx, widget("a"))
	require.NoError(t, err)
	require.NoError(t, h.Delete(ctx, "a"))
	f.store.err = trace.CompareFailed("stale")
	_, err = h.Update(ctx, widget("a"))
	require.True(t, trace.IsCompareFailed(err), "the service's error kind is kept: %v", err)

	var types []string
	for _, e := range f.recorder.events {
		require.Equal(t, "alice", e.User)
		require.Equal(t, "widget/a", e.Resource)
		types = append(types, e.Type)
	}
	require.Equal(t, []string{"widget.create", "widget.update", "widget.update", "widget.delete", "widget.update"}, types)
	require.NoError(t, f.recorder.events[3].Err)
	require.True(t, trace.IsCompareFailed(f.recorder.events[4].Err))
}

func TestHooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var prepared []string
	h, f := newHandler(t, []string{services.VerbCreate, services.VerbUpdate}, func(c *crud.Config[*typesv1.Lock]) {
		c.WithDefaults = func(actx *authz.Context, now time.Time, l *typesv1.Lock) *typesv1.Lock {
			l = proto.Clone(l).(*typesv1.Lock)
			l.Spec.CreatedBy = actx.Username() + "@" + now.UTC().Format(time.RFC3339)
			return l
		}
		c.PrepareCreate = func(_ context.Context, l *typesv1.Lock) error {
			prepared = append(prepared, "create:"+l.GetMetadata().GetName())
			if l.GetMetadata().GetName() == "bad" {
				return trace.BadParameter("cannot prepare")
			}
			l.Spec.Message = "prepared"
			return nil
		}
		c.PrepareUpsert = func(_ context.Context, l *typesv1.Lock) error {
			prepared = append(prepared, "upsert:"+l.GetMetadata().GetName())
			return nil
		}
	})
	want := "alice@" + f.clock.Now().UTC().Format(time.RFC3339)

	in := widget("a")
	out, err := h.Create(ctx, in)
	require.NoError(t, err)
	require.Equal(t, want, out.GetSpec().GetCreatedBy())
	require.Equal(t, "prepared", out.GetSpec().GetMessage(), "defaults are filled after prepare")
	require.Empty(t, in.GetSpec().GetCreatedBy(), "WithDefaults copies")

	f.clock.Advance(time.Hour)
	out, err = h.Upsert(ctx, widget("a"))
	require.NoError(t, err)
	require.Equal(t, "alice@"+f.clock.Now().UTC().Format(time.RFC3339), out.GetSpec().GetCreatedBy())

	out, err = h.Update(ctx, widget("a"))
	require.NoError(t, err)
	require.Empty(t, out.GetSpec().GetCreatedBy(), "update writes what the caller sent")
	require.Equal(t, []string{"create:a", "upsert:a"}, prepared, "update prepares nothing")

	f.store.written = nil
	n := len(f.recorder.events)
	_, err = h.Create(ctx, widget("bad"))
	require.True(t, trace.IsBadParameter(err), "%v", err)
	require.Nil(t, f.store.written, "nothing is written when prepare fails")
	require.Len(t, f.recorder.events, n+1, "a failed prepare is audited")
	require.Equal(t, "widget.create", f.recorder.events[n].Type)
	require.Error(t, f.recorder.events[n].Err)
}

func TestConfig(t *testing.T) {
	t.Parallel()
	full := func() crud.Config[*typesv1.Lock] {
		return crud.Config[*typesv1.Lock]{
			Kind: kind, Deps: crud.Deps{Authorizer: caller(nil), Recorder: &recorder{}}, Store: (&store{}).funcs(),
			Events: crud.Events{Create: "c", Update: "u", Delete: "d"},
		}
	}
	_, err := crud.New(full())
	require.NoError(t, err)
	for name, edit := range map[string]func(*crud.Config[*typesv1.Lock]){
		"kind":       func(c *crud.Config[*typesv1.Lock]) { c.Kind = "" },
		"authorizer": func(c *crud.Config[*typesv1.Lock]) { c.Authorizer = nil },
		"recorder":   func(c *crud.Config[*typesv1.Lock]) { c.Recorder = nil },
		"store":      func(c *crud.Config[*typesv1.Lock]) { c.Store.Upsert = nil },
		"events":     func(c *crud.Config[*typesv1.Lock]) { c.Events.Delete = "" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := full()
			edit(&cfg)
			_, err := crud.New(cfg)
			require.True(t, trace.IsBadParameter(err), "%v", err)
		})
	}
}

func TestReply(t *testing.T) {
	t.Parallel()
	resp, err := crud.Reply(&typesv1.Lock{}, nil)
	require.NoError(t, err)
	require.NotNil(t, resp)
	resp, err = crud.Reply(&typesv1.Lock{}, trace.NotFound("gone"))
	require.Nil(t, resp)
	require.True(t, trace.IsNotFound(err))
}

func TestCheckConfig(t *testing.T) {
	t.Parallel()
	fake := clockwork.NewFakeClock()
	tests := []struct {
		name    string
		clock   clockwork.Clock
		deps    []crud.Dep
		wantErr string
	}{
		{name: "all there, clock kept", clock: fake, deps: []crud.Dep{crud.Need("A", false), crud.Need("B", false)}},
		{name: "all there, clock defaulted", deps: []crud.Dep{crud.Need("A", false)}},
		{name: "first missing is named", clock: fake, deps: []crud.Dep{crud.Need("A", false), crud.Need("B", true), crud.Need("C", true)}, wantErr: "svc: missing B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := tt.clock
			err := crud.CheckConfig("svc", &clock, tt.deps...)
			if tt.wantErr != "" {
				require.True(t, trace.IsBadParameter(err), "got %v", err)
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.NotNil(t, clock)
			if tt.clock != nil {
				require.Same(t, fake, clock)
			}
		})
	}
}

// TestCheckHooks: CheckWrite runs on create, upsert and update, and CheckDelete on delete, after
// the verbs and the request are checked and before anything is prepared or written; a refusal
// writes nothing and is audited as the failed change.
func TestCheckHooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	refused := trace.AccessDenied("too strong")
	var checked []string
	h, f := newHandler(t, []string{services.VerbCreate, services.VerbUpdate, services.VerbDelete}, func(c *crud.Config[*typesv1.Lock]) {
		c.CheckWrite = func(_ context.Context, actx *authz.Context, l *typesv1.Lock) error {
			checked = append(checked, actx.Username()+":"+l.GetMetadata().GetName())
			if l.GetMetadata().GetName() == "strong" {
				return refused
			}
			return nil
		}
		c.CheckDelete = func(_ context.Context, actx *authz.Context, name string) error {
			checked = append(checked, actx.Username()+":rm:"+name)
			if name == "strong" {
				return refused
			}
			return nil
		}
		c.PrepareCreate = func(context.Context, *typesv1.Lock) error {
			checked = append(checked, "prepared")
			return nil
		}
	})
	f.store.items["strong"] = widget("strong")
	for name, call := range map[string]func() error{
		"create": func() error { _, err := h.Create(ctx, widget("strong")); return err },
		"upsert": func() error { _, err := h.Upsert(ctx, widget("strong")); return err },
		"update": func() error {
			l := widget("strong")
			l.Metadata.Revision = "1"
			_, err := h.Update(ctx, l)
			return err
		},
		"delete": func() error { return h.Delete(ctx, "strong") },
	} {
		t.Run(name, func(t *testing.T) {
			checked, f.store.written = nil, nil
			n := len(f.recorder.events)
			require.ErrorIs(t, call(), refused)
			require.Nil(t, f.store.written, "nothing written")
			require.Contains(t, f.store.items, "strong", "nothing deleted")
			require.NotContains(t, checked, "prepared", "nothing prepared")
			require.Len(t, f.recorder.events, n+1, "the refusal is audited")
			require.ErrorIs(t, f.recorder.events[n].Err, refused)
		})
	}
	checked = nil
	_, err := h.Create(ctx, widget("weak"))
	require.NoError(t, err)
	require.NoError(t, h.Delete(ctx, "weak"))
	require.Equal(t, []string{"alice:weak", "prepared", "alice:rm:weak"}, checked)
}
