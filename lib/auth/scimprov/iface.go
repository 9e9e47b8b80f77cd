package scimprov

import (
	"context"

	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
)

// provisioner is a copy of the method set the SCIM HTTP server declares
// (plugins/scim/server.Provisioner), which this package must not import: it
// keeps the two in step at compile time on this side.
type provisioner interface {
	CreateUser(ctx context.Context, plugin string, rec *scimrecord.UserRecord) (*scimrecord.UserRecord, error)
	GetUser(ctx context.Context, plugin, id string) (*scimrecord.UserRecord, error)
	LookupUsers(ctx context.Context, plugin, attr, value string) ([]*scimrecord.UserRecord, error)
	ListUsers(ctx context.Context, plugin, startAfterID string, limit int) ([]*scimrecord.UserRecord, error)
	CountUsers(ctx context.Context, plugin string) (int, error)
	UpdateUser(ctx context.Context, plugin string, rec *scimrecord.UserRecord) (*scimrecord.UserRecord, error)
	DeleteUser(ctx context.Context, plugin, id string) error
	CreateGroup(ctx context.Context, plugin string, rec *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error)
	GetGroup(ctx context.Context, plugin, id string) (*scimrecord.GroupRecord, error)
	LookupGroups(ctx context.Context, plugin, attr, value string) ([]*scimrecord.GroupRecord, error)
	ListGroups(ctx context.Context, plugin, startAfterID string, limit int) ([]*scimrecord.GroupRecord, error)
	CountGroups(ctx context.Context, plugin string) (int, error)
	UpdateGroup(ctx context.Context, plugin string, rec *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error)
	DeleteGroup(ctx context.Context, plugin, id string) error
	AuthenticateSCIM(ctx context.Context, plugin, token string, gate scimrecord.AuthGate) (*scimrecord.SCIMSettings, error)
	RecordSCIMRequest(ctx context.Context, plugin string, failure error)
}

var _ provisioner = (*Provisioner)(nil)
