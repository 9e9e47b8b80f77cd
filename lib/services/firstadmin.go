package services

import (
	"context"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// FirstAdminMarkerKey is where a cluster's first start records whether it
// created the first administrator (lib/auth/firstadmin owns the value).
var FirstAdminMarkerKey = backend.NewKey("cluster_init", "first_admin")

// GetFirstAdminMarker reads the first-administrator marker;
// trace.NotFound on a cluster that has not started yet.
func GetFirstAdminMarker(ctx context.Context, b backend.Backend) (*backend.Item, error) {
	item, err := b.Get(ctx, FirstAdminMarkerKey)
	return item, trace.Wrap(err)
}

// CreateFirstAdminMarker writes the marker with value unless one exists
// (trace.AlreadyExists).
func CreateFirstAdminMarker(ctx context.Context, b backend.Backend, value []byte) error {
	_, err := b.Create(ctx, backend.Item{Key: FirstAdminMarkerKey, Value: value})
	return trace.Wrap(err)
}

// PutFirstAdminMarker adds the write of the marker with value under cond.
func (p *Plan) PutFirstAdminMarker(value []byte, cond backend.Condition) {
	p.add(PlanKindFirstAdminMarker, "", FirstAdminMarkerKey, cond, backend.Put(backend.Item{Value: value}))
}

// CreatePasswordToken adds the creation of a one-time password-set token
// for user, valid for ttl from now (see websession.NewPasswordTokenItem).
// It returns the token (the link's secret), ref, which names the stored
// token without revealing it (for DeletePasswordToken), and its expiry.
func (p *Plan) CreatePasswordToken(user *typesv1.User, ttl time.Duration, now time.Time) (token, ref string, expires time.Time, err error) {
	token, item, err := websession.NewPasswordTokenItem(user, ttl, now)
	if err != nil {
		return "", "", time.Time{}, trace.Wrap(err)
	}
	p.add(PlanKindPasswordToken, user.GetMetadata().GetName(), item.Key, backend.NotExists(), backend.Put(item))
	return token, item.Key.String(), item.Expires, nil
}

// DeletePasswordToken adds the deletion, whatever its state, of the
// password token CreatePasswordToken named ref.
func (p *Plan) DeletePasswordToken(ref string) {
	p.add(PlanKindPasswordToken, "", backend.Key(ref), backend.Whatever(), backend.Delete())
}
