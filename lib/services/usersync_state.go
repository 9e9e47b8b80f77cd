package services

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/gravitational/trace"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gatehouse/gatehouse/lib/backend"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// UserSyncPrefix holds user sync's state, "sync now" requests and the lease
// that elects the one server running a plugin's sync.
const UserSyncPrefix = "usersync"

// UserSyncStateKey is where plugin's sync state is kept.
func UserSyncStateKey(plugin string) backend.Key {
	return backend.NewKey(UserSyncPrefix, plugin, "state")
}

// UserSyncTriggerKey is where a "sync now" request for plugin waits.
func UserSyncTriggerKey(plugin string) backend.Key {
	return backend.NewKey(UserSyncPrefix, plugin, "trigger")
}

// UserSyncLeaseKey is the lease of the server running plugin's sync.
func UserSyncLeaseKey(plugin string) backend.Key {
	return backend.NewKey(UserSyncPrefix, plugin, "lease")
}

// HoldUserSyncLease takes plugin's user sync lease for holder until
// expires when held is nil (trace.AlreadyExists while another server holds
// it), or renews held, the lease as last taken or renewed
// (trace.CompareFailed or trace.NotFound once it was lost). The lease
// returned is what to renew or release next.
func HoldUserSyncLease(ctx context.Context, b backend.Backend, plugin, holder string, expires time.Time, held *backend.Lease) (*backend.Lease, error) {
	item := backend.Item{Key: UserSyncLeaseKey(plugin), Value: []byte(holder), Expires: expires}
	if held != nil {
		item.Revision = held.Revision
		l, err := b.ConditionalUpdate(ctx, item)
		return l, trace.Wrap(err)
	}
	l, err := b.Create(ctx, item)
	return l, trace.Wrap(err)
}

// UserSyncCredentialsName is the static credentials holding plugin's Okta
// API credential. It is kept apart from the SCIM token (another name and
// label), so that the SCIM token's lifecycle never touches it.
func UserSyncCredentialsName(plugin string) string { return plugin + "-okta-api" }

// LabelUserSyncPlugin links user sync credentials to their plugin.
const LabelUserSyncPlugin = "gatehouse.dev/usersync-plugin"

// UserSyncCredentialsLabels select plugin's user sync credentials.
func UserSyncCredentialsLabels(plugin string) map[string]string {
	return map[string]string{LabelUserSyncPlugin: plugin}
}

// GetUserSyncState reads plugin's sync state; an empty state before the
// first run.
func GetUserSyncState(ctx context.Context, b backend.Backend, plugin string) (*typesv1.OktaUserSyncState, error) {
	item, err := b.Get(ctx, UserSyncStateKey(plugin))
	if trace.IsNotFound(err) {
		return &typesv1.OktaUserSyncState{}, nil
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	st := &typesv1.OktaUserSyncState{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(item.Value, st); err != nil {
		return nil, trace.Wrap(err, "decoding user sync state of plugin %q", plugin)
	}
	return st, nil
}

// PutUserSyncState writes plugin's sync state.
func PutUserSyncState(ctx context.Context, b backend.Backend, plugin string, st *typesv1.OktaUserSyncState) error {
	if len(st.GetLastError()) > maxStatusMessage {
		st.LastError = st.GetLastError()[:maxStatusMessage]
	}
	value, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(st)
	if err != nil {
		return trace.Wrap(err)
	}
	_, err = b.Put(ctx, backend.Item{Key: UserSyncStateKey(plugin), Value: value})
	return trace.Wrap(err)
}

// UserSyncTrigger is a "sync now" request.
type UserSyncTrigger struct {
	ID   string    `json:"id"`
	Full bool      `json:"full"`
	Time time.Time `json:"time"`
}

// userSyncTriggerTTL drops a request nobody answered (no server runs the
// sync), so that it does not fire long after it was made.
const userSyncTriggerTTL = 10 * time.Minute

// PutUserSyncTrigger asks for a run of plugin's sync now and returns the
// request's id. A pending request is replaced (one run answers both:
// the last id is the one reported).
func PutUserSyncTrigger(ctx context.Context, b backend.Backend, plugin string, full bool) (string, error) {
	now := b.Clock().Now()
	t := UserSyncTrigger{ID: uuid.NewString(), Full: full, Time: now.UTC()}
	value, err := json.Marshal(t)
	if err != nil {
		return "", trace.Wrap(err)
	}
	_, err = b.Put(ctx, backend.Item{Key: UserSyncTriggerKey(plugin), Value: value, Expires: now.Add(userSyncTriggerTTL)})
	return t.ID, trace.Wrap(err)
}

// TakeUserSyncTrigger removes and returns plugin's pending request; nil if
// there is none. The removal is conditional on the revision read, so that a
// request made meanwhile is kept for the next run.
func TakeUserSyncTrigger(ctx context.Context, b backend.Backend, plugin string) (*UserSyncTrigger, error) {
	item, err := b.Get(ctx, UserSyncTriggerKey(plugin))
	if trace.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	var t UserSyncTrigger
	if err := json.Unmarshal(item.Value, &t); err != nil {
		_ = b.ConditionalDelete(ctx, item.Key, item.Revision)
		return nil, trace.Wrap(err, "decoding a user sync request")
	}
	if err := b.ConditionalDelete(ctx, item.Key, item.Revision); err != nil {
		if trace.IsCompareFailed(err) || trace.IsNotFound(err) {
			return nil, nil
		}
		return nil, trace.Wrap(err)
	}
	return &t, nil
}
