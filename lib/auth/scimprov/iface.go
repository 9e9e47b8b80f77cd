package scimprov

import (
	"context"

	"github.com/gatehouse/gatehouse/lib/services/scimstore"
)

// provisioner is a copy of the method set the SCIM HTTP server declares
// (plugins/scim/server.Provisioner), which this package must not import: it
// keeps the two in step at compile time on this side.
type provisioner interface {
	CreateUser(ctx context.Context, plugin string, rec *scimstore.UserRecord) (*scimstore.UserRecord, error)
	GetUser(ctx context.Context, plugin, id string) (*scimstore.UserRecord, error)
	LookupUsers(ctx context.Context, plugin, attr, value string) ([]*scimstore.UserRecord, error)
	ListUsers(ctx context.Context, plugin, startAfterID string, limit int) ([]*scimstore.UserRecord, error)
	CountUsers(ctx context.Context, plugin string) (int, error)
	UpdateUser(ctx context.Context, plugin string, rec *scimstore.UserRecord) (*scimstore.UserRecord, error)
	DeleteUser(ctx context.Context, plugin, id string) error
	CreateGroup(ctx context.Context, plugin string, rec *scimstore.GroupRecord) (*scimstore.GroupRecord, error)
	GetGroup(ctx context.Context, plugin, id string) (*scimstore.GroupRecord, error)
	LookupGroups(ctx context.Context, plugin, attr, value string) ([]*scimstore.GroupRecord, error)
	ListGroups(ctx context.Context, plugin, startAfterID string, limit int) ([]*scimstore.GroupRecord, error)
	CountGroups(ctx context.Context, plugin string) (int, error)
	UpdateGroup(ctx context.Context, plugin string, rec *scimstore.GroupRecord) (*scimstore.GroupRecord, error)
	DeleteGroup(ctx context.Context, plugin, id string) error
	AuthenticateSCIM(ctx context.Context, plugin, token string, gate scimstore.AuthGate) (*scimstore.SCIMSettings, error)
	RecordSCIMRequest(ctx context.Context, plugin string, failure error)
}

var _ provisioner = (*Provisioner)(nil)
