package services

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const (
	maxTraits          = 64
	maxTraitValues     = 256
	maxPasswordHashLen = 1024
	// maxIncarnationLen bounds a stored incarnation (NewIncarnation makes
	// 32 hex digits).
	maxIncarnationLen = 64
)

// ValidateUser checks a user and sets its defaults (kind "user", version
// "v1"): a valid name in canonical form and not reserved for a built-in
// identity (see CheckUsername), valid role names, traits that are lists of non-empty
// strings within bounds, a sane password hash.
func ValidateUser(u *typesv1.User) error {
	if u == nil {
		return trace.BadParameter("missing user")
	}
	if err := checkHeader(KindUser, &u.Kind, &u.Version, u.GetMetadata()); err != nil {
		return trace.Wrap(err)
	}
	name := u.GetMetadata().GetName()
	if err := CheckUsername(name); err != nil {
		return trace.Wrap(err)
	}
	if u.Spec == nil {
		u.Spec = &typesv1.UserSpec{}
	}
	if err := checkNames(KindUser, name, "roles", KindRole, u.Spec.GetRoles()); err != nil {
		return trace.Wrap(err)
	}
	if err := checkTraits(KindUser, name, u.Spec.GetTraits()); err != nil {
		return trace.Wrap(err)
	}
	if cb := u.Spec.GetCreatedBy(); cb != nil {
		if t := cb.GetTime(); t != nil {
			if err := t.CheckValid(); err != nil {
				return trace.BadParameter("user %q: created_by.time: %v", name, err)
			}
		}
	}
	if len(u.Spec.GetIncarnation()) > maxIncarnationLen {
		return trace.BadParameter("user %q: incarnation is over %d bytes", name, maxIncarnationLen)
	}
	if la := u.Spec.GetLocalAuth(); la != nil && len(la.GetPasswordHash()) > maxPasswordHashLen {
		return trace.BadParameter("user %q: password hash is over %d bytes", name, maxPasswordHashLen)
	}
	return nil
}

// checkTraits requires every trait to be a list of non-empty strings.
func checkTraits(kind, name string, traits map[string]*structpb.ListValue) error {
	if len(traits) > maxTraits {
		return trace.BadParameter("%s %q: %d traits, over the limit of %d", kind, name, len(traits), maxTraits)
	}
	for k, list := range traits {
		if k == "" || len(k) > maxStringField {
			return trace.BadParameter("%s %q: trait names must be 1 to %d bytes", kind, name, maxStringField)
		}
		if list == nil {
			return trace.BadParameter("%s %q: trait %q must be a list of strings", kind, name, k)
		}
		if len(list.GetValues()) > maxTraitValues {
			return trace.BadParameter("%s %q: trait %q has %d values, over the limit of %d", kind, name, k, len(list.GetValues()), maxTraitValues)
		}
		for _, v := range list.GetValues() {
			s, ok := v.GetKind().(*structpb.Value_StringValue)
			if !ok {
				return trace.BadParameter("%s %q: trait %q must be a list of strings", kind, name, k)
			}
			if s.StringValue == "" || len(s.StringValue) > maxStringField {
				return trace.BadParameter("%s %q: trait %q values must be 1 to %d bytes", kind, name, k, maxStringField)
			}
		}
	}
	return nil
}

// TraitValues returns a trait's values as strings (nil when absent); the
// helper every caller needs since traits are ListValues.
func TraitValues(u *typesv1.User, trait string) []string {
	list := u.GetSpec().GetTraits()[trait]
	if list == nil {
		return nil
	}
	out := make([]string, 0, len(list.GetValues()))
	for _, v := range list.GetValues() {
		out = append(out, v.GetStringValue())
	}
	return out
}

// NewTraits builds traits from string lists.
func NewTraits(traits map[string][]string) map[string]*structpb.ListValue {
	out := make(map[string]*structpb.ListValue, len(traits))
	for k, vs := range traits {
		list := &structpb.ListValue{Values: make([]*structpb.Value, 0, len(vs))}
		for _, v := range vs {
			list.Values = append(list.Values, structpb.NewStringValue(v))
		}
		out[k] = list
	}
	return out
}

// StripUserSecrets removes a user's secrets (local_auth) in place.
func StripUserSecrets(u *typesv1.User) {
	if u.GetSpec() != nil {
		u.Spec.LocalAuth = nil
	}
}

// IsUserExpired reports whether a user carries an expiry at or before now.
// Reads never return such a user; this is for users held in memory.
func IsUserExpired(u *typesv1.User, now time.Time) bool {
	exp := u.GetMetadata().GetExpires()
	return exp != nil && backend.Expired(exp.AsTime(), now)
}

// MarshalUser validates u (on a copy) and returns the backend item storing it
// at UserKey(name), for use in a backend.AtomicWrite. See
// generic.MarshalResource.
func MarshalUser(u *typesv1.User) (backend.Item, error) {
	return marshalValidated(UsersPrefix, u, ValidateUser)
}

// UnmarshalUser decodes a stored user, secrets included.
func UnmarshalUser(item backend.Item) (*typesv1.User, error) {
	return unmarshalStored[*typesv1.User](item)
}

// marshalOwnedUser is MarshalUser on u itself rather than a copy: see
// Plan.PutOwnedUser.
func marshalOwnedUser(u *typesv1.User) (backend.Item, error) {
	if !u.ProtoReflect().IsValid() {
		return backend.Item{}, trace.BadParameter("missing resource")
	}
	if err := ValidateUser(u); err != nil {
		return backend.Item{}, trace.Wrap(err)
	}
	item, err := generic.MarshalOwned(UsersPrefix, u, binaryKinds[UsersPrefix], protojson.MarshalOptions{})
	return item, trace.Wrap(err)
}

// marshalValidated validates a copy of r and marshals it.
func marshalValidated[T generic.Resource](prefix string, r T, validate func(T) error) (backend.Item, error) {
	if !r.ProtoReflect().IsValid() {
		return backend.Item{}, trace.BadParameter("missing resource")
	}
	c := proto.Clone(r).(T)
	if err := validate(c); err != nil {
		return backend.Item{}, trace.Wrap(err)
	}
	// c is this call's own copy: marshalled as it is, not cloned again.
	item, err := generic.MarshalOwned(prefix, c, binaryKinds[prefix], protojson.MarshalOptions{})
	return item, trace.Wrap(err)
}

// binaryKinds are the key prefixes whose resources are stored in the
// protobuf binary encoding (generic.Config.Binary): the kinds written by
// every SCIM write, and the most numerous. A data dir holds about one user
// per person, and a lock per deactivated one.
var binaryKinds = map[string]bool{UsersPrefix: true, LocksPrefix: true}

// stripped removes r's secrets in place unless withSecrets is set, and
// returns r. Only for resources freshly decoded from the backend.
func stripped[T proto.Message](r T, withSecrets bool, strip func(T)) T {
	if withSecrets {
		return r
	}
	strip(r)
	return r
}

// UserService stores users at users/<name>.
type UserService struct {
	svc *generic.Service[*typesv1.User]
}

// NewUserService returns the user service.
func NewUserService(cfg Config) (*UserService, error) {
	svc, err := newGeneric(cfg, generic.Config[*typesv1.User]{
		Kind:      KindUser,
		KeyPrefix: UsersPrefix,
		Validate:  ValidateUser,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if c, ok := cfg.Backend.(cacheWhenReader); ok {
		// Users are written in bulk (one per SCIM create) and read by key
		// only on writes and logins: the backend's read cache keeps them
		// once read, not on every write (lite.Backend.CacheWhenRead).
		prefix := backend.NewKey(UsersPrefix, "")
		c.CacheWhenRead(func(k backend.Key) bool { return bytes.HasPrefix(k, prefix) })
	}
	return &UserService{svc: svc}, nil
}

// cacheWhenReader is a backend whose read cache can take a prefix's items
// when they are read rather than when written (lite.Backend).
type cacheWhenReader interface {
	CacheWhenRead(match func(key backend.Key) bool)
}

// GetUser reads a user; its local_auth only with withSecrets.
func (s *UserService) GetUser(ctx context.Context, name string, withSecrets bool) (*typesv1.User, error) {
	u, err := s.svc.Get(ctx, name)
	return strippedResult(u, err, withSecrets, StripUserSecrets)
}

// ListUsers returns a page of users in name order and the next page's token
// ("" after the last page); local_auth only with withSecrets.
func (s *UserService) ListUsers(ctx context.Context, pageSize int, pageToken string, withSecrets bool) ([]*typesv1.User, string, error) {
	users, next, err := s.svc.List(ctx, pageSize, pageToken)
	return strippedPage(users, next, err, withSecrets, StripUserSecrets)
}

// CreateUser writes a new user with a fresh incarnation; trace.AlreadyExists
// if the name is taken. Whatever incarnation the caller sent is replaced:
// the server owns incarnations, and a caller that could choose one could
// bring the credentials of a deleted account back to life by re-creating it
// with its old incarnation. It returns the stored user without secrets.
func (s *UserService) CreateUser(ctx context.Context, u *typesv1.User) (*typesv1.User, error) {
	if !u.ProtoReflect().IsValid() {
		return nil, trace.BadParameter("missing user")
	}
	c := proto.Clone(u).(*typesv1.User)
	userSecrets.fresh(c)
	out, err := s.svc.Create(ctx, c)
	return strippedResult(out, err, false, StripUserSecrets)
}

// UpdateUser overwrites a user still at u.metadata.revision (required). A
// user given without local_auth keeps the stored one: a user read without
// secrets can be updated without wiping its password. To remove local_auth,
// use UpdateAndSwapUser. The stored incarnation is kept whatever the caller
// sent (see keepIncarnation).
func (s *UserService) UpdateUser(ctx context.Context, u *typesv1.User) (*typesv1.User, error) {
	out, err := updateKeepingSecrets(ctx, s.svc, u, userSecrets)
	return strippedResult(out, err, false, StripUserSecrets)
}

// UpsertUser writes a user whether or not it exists. Like UpdateUser, a user
// given without local_auth keeps the stored one, and an existing user keeps
// its incarnation; a new user gets a fresh one. The read and the write are
// tied by a conditional write (or a create), retried when someone else
// wrote in between.
func (s *UserService) UpsertUser(ctx context.Context, u *typesv1.User) (*typesv1.User, error) {
	out, err := upsertKeepingSecrets(ctx, s.svc, u, userSecrets)
	return strippedResult(out, err, false, StripUserSecrets)
}

// setIncarnation sets u's incarnation.
func setIncarnation(u *typesv1.User, incarnation string) {
	if u.Spec == nil {
		u.Spec = &typesv1.UserSpec{}
	}
	u.Spec.Incarnation = incarnation
}

// keepIncarnation gives u, about to replace stored, the stored user's
// incarnation: an update is the same life of the account, so its
// credentials keep working, and no caller can set an old incarnation back.
// A stored user without one (written before incarnations existed) gets a
// fresh one: no credential carries it, and none could match an empty one.
func keepIncarnation(u, stored *typesv1.User) {
	inc := stored.GetSpec().GetIncarnation()
	if inc == "" {
		inc = NewIncarnation()
	}
	setIncarnation(u, inc)
}

var userSecrets = secretsOf[*typesv1.User]{
	has: func(u *typesv1.User) bool { return u.GetSpec().GetLocalAuth() != nil },
	copy: func(dst, src *typesv1.User) {
		if dst.Spec == nil {
			dst.Spec = &typesv1.UserSpec{}
		}
		dst.Spec.LocalAuth = src.GetSpec().GetLocalAuth()
	},
	// The incarnation is the server's: a new user gets a fresh one, a
	// replaced user keeps the stored one (keepIncarnation).
	fresh: func(u *typesv1.User) { setIncarnation(u, NewIncarnation()) },
	carry: keepIncarnation,
}

// UpdateAndSwapUser reads a user (secrets included), applies modify and
// writes it back if nobody changed it meanwhile, retrying a bounded number of
// times. It returns the stored user without secrets.
func (s *UserService) UpdateAndSwapUser(ctx context.Context, name string, modify func(*typesv1.User) error) (*typesv1.User, error) {
	if modify == nil {
		return nil, trace.BadParameter("update of user %q: missing modify function", name)
	}
	out, err := s.svc.UpdateAndSwap(ctx, name, func(u *typesv1.User) error {
		stored := proto.Clone(u).(*typesv1.User)
		if err := modify(u); err != nil {
			return trace.Wrap(err)
		}
		keepIncarnation(u, stored)
		return nil
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	StripUserSecrets(out)
	return out, nil
}

// AssignMissingIncarnations gives every stored user without an incarnation
// (written before incarnations existed) a fresh one, each with one
// conditional update, and returns how many it changed. A user it cannot
// update is logged by the caller through the returned error list and
// skipped: an empty incarnation matches no credential, so the only cost of
// a skipped user is that its credentials stay refused until it is written.
func (s *UserService) AssignMissingIncarnations(ctx context.Context) (int, []error) {
	legacy, err := s.svc.ListAll(ctx, func(u *typesv1.User) bool { return u.GetSpec().GetIncarnation() == "" })
	if err != nil {
		return 0, []error{trace.Wrap(err)}
	}
	assigned := 0
	var errs []error
	for _, u := range legacy {
		name := u.GetMetadata().GetName()
		changed := false
		_, err := s.svc.UpdateAndSwap(ctx, name, func(cur *typesv1.User) error {
			changed = false
			if cur.GetSpec().GetIncarnation() != "" {
				// Written meanwhile by a path that sets one.
				return errHasIncarnation
			}
			setIncarnation(cur, NewIncarnation())
			changed = true
			return nil
		})
		switch {
		case err == nil && changed:
			assigned++
		case err == nil, errors.Is(err, errHasIncarnation), trace.IsNotFound(err):
		default:
			errs = append(errs, trace.Wrap(err, "user %q", name))
		}
	}
	return assigned, errs
}

// errHasIncarnation stops AssignMissingIncarnations' update of a user that
// got an incarnation since it was listed.
var errHasIncarnation = errors.New("user already has an incarnation")

// DeleteUser removes a user; trace.NotFound if missing.
func (s *UserService) DeleteUser(ctx context.Context, name string) error {
	return trace.Wrap(s.svc.Delete(ctx, name))
}

// ConditionalDeleteUser removes a user still at revision (SCIM If-Match).
func (s *UserService) ConditionalDeleteUser(ctx context.Context, name, revision string) error {
	return trace.Wrap(s.svc.ConditionalDelete(ctx, name, revision))
}

// NewIncarnation returns a fresh incarnation for an account being created
// (or re-created, reactivated or renamed): 128 random bits, hex. Credentials
// carry the incarnation they were issued to; a new one voids them.
func NewIncarnation() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+).
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// CheckUserNamePrefix refuses a name prefix no stored username can start
// with because it holds the key separator, which no name may contain.
func CheckUserNamePrefix(prefix string) error {
	if strings.ContainsRune(prefix, backend.Separator) {
		return trace.BadParameter("no username contains %q", string(backend.Separator))
	}
	return nil
}

// ListUsersWithPrefix is ListUsers restricted to the users whose name
// starts with namePrefix. Names are stored canonical, so a prefix in
// canonical form (canonical.Username) finds every spelling; one page reads
// one key range, whatever the number of users.
func (s *UserService) ListUsersWithPrefix(ctx context.Context, namePrefix string, pageSize int, pageToken string, withSecrets bool) ([]*typesv1.User, string, error) {
	users, next, err := s.svc.ListWithPrefix(ctx, namePrefix, pageSize, pageToken)
	return strippedPage(users, next, err, withSecrets, StripUserSecrets)
}
