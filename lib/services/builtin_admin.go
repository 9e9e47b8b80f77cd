package services

import (
	"context"
	"encoding/json"
	"unicode/utf8"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services/generic"
)

// BuiltinPrefix is where the state of the built-in identities lives. They
// have no user record (see BuiltinAdmin), so what the server must remember
// about them sits here, under keys no resource service owns.
const BuiltinPrefix = "builtin"

// BuiltinAdminKey is the backend key of the built-in operator identity's
// state.
func BuiltinAdminKey() backend.Key { return backend.NewKey(BuiltinPrefix, "admin") }

// BuiltinAdminState is what the backend keeps about BuiltinAdmin, stored as
// the JSON object {"incarnation": "..."} (no resource kind, no proto: it is
// never read or written through the API).
type BuiltinAdminState struct {
	// Incarnation plays the part a user's incarnation plays: certificates
	// issued to BuiltinAdmin carry it (lib/auth/certext), and authz refuses
	// one that carries another. gatehouse recover replaces it, which voids
	// every admin identity issued before at once.
	Incarnation string `json:"incarnation"`
	// Revision is the backend revision the state was read at; not stored.
	Revision string `json:"-"`
}

// BuiltinAdminEnsured says what EnsureBuiltinAdmin did.
type BuiltinAdminEnsured int

const (
	// BuiltinAdminKept means a readable state was there and is unchanged.
	BuiltinAdminKept BuiltinAdminEnsured = iota + 1
	// BuiltinAdminCreated means there was none (a new cluster, or one
	// created by a version without it): admin identities issued before carry
	// no incarnation and are refused.
	BuiltinAdminCreated
	// BuiltinAdminReplaced means the stored state was unreadable and was
	// replaced by a fresh one. No credential can match an unreadable state,
	// so replacing it revives nothing.
	BuiltinAdminReplaced
)

// BuiltinAdminService stores the state of the built-in operator identity.
type BuiltinAdminService struct {
	cfg Config
}

// NewBuiltinAdminService returns the service.
func NewBuiltinAdminService(cfg Config) (*BuiltinAdminService, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &BuiltinAdminService{cfg: cfg}, nil
}

// GetBuiltinAdmin reads the state: trace.NotFound if there is none,
// trace.BadParameter if it is unreadable.
func (s *BuiltinAdminService) GetBuiltinAdmin(ctx context.Context) (*BuiltinAdminState, error) {
	item, err := s.cfg.Backend.Get(ctx, BuiltinAdminKey())
	if trace.IsNotFound(err) {
		return nil, trace.NotFound("the built-in identity %s has no stored state", BuiltinAdmin)
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	st, err := unmarshalBuiltinAdmin(item.Value)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	st.Revision = item.Revision
	return st, nil
}

// GetBuiltinAdminIncarnation returns the current incarnation of
// BuiltinAdmin (see GetBuiltinAdmin for the errors).
func (s *BuiltinAdminService) GetBuiltinAdminIncarnation(ctx context.Context) (string, error) {
	st, err := s.GetBuiltinAdmin(ctx)
	if err != nil {
		return "", trace.Wrap(err)
	}
	return st.Incarnation, nil
}

// EnsureBuiltinAdmin makes sure a readable state is stored, creating one
// with a fresh incarnation if there is none and replacing an unreadable one.
// Servers starting at once on one backend agree on one state: the create is
// conditional and the loser re-reads the winner's.
func (s *BuiltinAdminService) EnsureBuiltinAdmin(ctx context.Context) (*BuiltinAdminState, BuiltinAdminEnsured, error) {
	for attempt := 0; attempt < generic.DefaultMaxSwapAttempts; attempt++ {
		item, err := s.cfg.Backend.Get(ctx, BuiltinAdminKey())
		if trace.IsNotFound(err) {
			st, err := s.write(ctx, backend.NotExists())
			if trace.IsCompareFailed(err) {
				continue // another server created it first
			}
			return st, BuiltinAdminCreated, trace.Wrap(err)
		}
		if err != nil {
			return nil, 0, trace.Wrap(err)
		}
		if st, err := unmarshalBuiltinAdmin(item.Value); err == nil {
			st.Revision = item.Revision
			return st, BuiltinAdminKept, nil
		}
		st, err := s.write(ctx, backend.Revision(item.Revision))
		if trace.IsCompareFailed(err) {
			continue
		}
		return st, BuiltinAdminReplaced, trace.Wrap(err)
	}
	return nil, 0, trace.CompareFailed("the state of %s kept changing while it was being read; try again", BuiltinAdmin)
}

// RotateBuiltinAdminIncarnation stores a fresh incarnation, whatever is
// stored now (even nothing, or something unreadable), so that every
// credential issued to BuiltinAdmin before is refused from the next call on.
func (s *BuiltinAdminService) RotateBuiltinAdminIncarnation(ctx context.Context) (*BuiltinAdminState, error) {
	st, err := s.write(ctx, backend.Whatever())
	return st, trace.Wrap(err)
}

// write stores a state with a fresh incarnation if cond holds.
func (s *BuiltinAdminService) write(ctx context.Context, cond backend.Condition) (*BuiltinAdminState, error) {
	st := &BuiltinAdminState{Incarnation: NewIncarnation()}
	value, err := json.Marshal(st)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	rev, err := s.cfg.Backend.AtomicWrite(ctx, []backend.ConditionalAction{{
		Key:       BuiltinAdminKey(),
		Condition: cond,
		Action:    backend.Put(backend.Item{Value: value}),
	}})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	st.Revision = rev
	return st, nil
}

func unmarshalBuiltinAdmin(value []byte) (*BuiltinAdminState, error) {
	// Unknown fields are ignored, so that a later version may add some
	// without an older one taking the state for unreadable and replacing it.
	var st BuiltinAdminState
	if err := json.Unmarshal(value, &st); err != nil {
		return nil, trace.BadParameter("the stored state of %s is unreadable: %v", BuiltinAdmin, err)
	}
	if st.Incarnation == "" || len(st.Incarnation) > maxIncarnationLen || !utf8.ValidString(st.Incarnation) {
		return nil, trace.BadParameter("the stored state of %s has no valid incarnation", BuiltinAdmin)
	}
	return &st, nil
}
