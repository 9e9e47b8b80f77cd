package server

import (
	"context"

	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
)

// The endpoint's seam with the auth service: four small interfaces, one per concern, that the
// Config takes separately (lib/auth/scimprov's Provisioner implements all four; the process wiring
// checks that at compile time). The SCIM server never touches the backend: every read and write of
// users, groups, locks and settings goes through them, and the implementation owns atomicity,
// adoption, deactivation locks and token verification.
//
// Errors are trace kinds: NotFound, AlreadyExists (409 uniqueness), CompareFailed (a conditional
// write lost a race), BadParameter (400), AccessDenied (bad token).

// Users stores the SCIM users of a plugin.
type Users interface {
	// CreateUser stores a new SCIM user. AlreadyExists becomes 409 uniqueness; adoption of a
	// temporary SSO user and reactivation-by-POST are handled inside.
	CreateUser(ctx context.Context, plugin string, rec *scimrecord.UserRecord) (*scimrecord.UserRecord, error)
	// GetUser reads a user record by SCIM id.
	GetUser(ctx context.Context, plugin, id string) (*scimrecord.UserRecord, error)
	// LookupUsers finds the users with "userName" (case-insensitive), "externalId" or "id" equal
	// to value, in id order: at most one for userName and id, any number for externalId (which
	// is not unique). None is an empty list.
	LookupUsers(ctx context.Context, plugin, attr, value string) ([]*scimrecord.UserRecord, error)
	// ListUsers returns up to limit records with ids after startAfterID, in id order.
	ListUsers(ctx context.Context, plugin, startAfterID string, limit int) ([]*scimrecord.UserRecord, error)
	// CountUsers returns the number of user records.
	CountUsers(ctx context.Context, plugin string) (int, error)
	// UpdateUser writes rec conditionally on rec.Revision (CompareFailed when it moved). An active
	// true→false change deactivates (lock and delete the user atomically), false→true reactivates.
	// read is the record as GetUser returned it at rec.Revision, unmodified, which the
	// implementation may plan on instead of reading it again (nil: it reads it).
	UpdateUser(ctx context.Context, plugin string, read, rec *scimrecord.UserRecord) (*scimrecord.UserRecord, error)
	// DeleteUser deprovisions the user and removes the record.
	DeleteUser(ctx context.Context, plugin, id string) error
}

// Groups stores the SCIM groups of a plugin.
type Groups interface {
	// CreateGroup stores a new group.
	CreateGroup(ctx context.Context, plugin string, rec *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error)
	// GetGroup reads a group by SCIM id.
	GetGroup(ctx context.Context, plugin, id string) (*scimrecord.GroupRecord, error)
	// LookupGroups finds the groups with "displayName" (case-insensitive), "externalId" (not
	// unique) or "id" equal to value, in id order. None is an empty list.
	LookupGroups(ctx context.Context, plugin, attr, value string) ([]*scimrecord.GroupRecord, error)
	// ListGroups returns up to limit groups with ids after startAfterID, in id order.
	ListGroups(ctx context.Context, plugin, startAfterID string, limit int) ([]*scimrecord.GroupRecord, error)
	// CountGroups returns the number of groups.
	CountGroups(ctx context.Context, plugin string) (int, error)
	// UpdateGroup writes rec conditionally on rec.Revision.
	UpdateGroup(ctx context.Context, plugin string, rec *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error)
	// DeleteGroup removes the group.
	DeleteGroup(ctx context.Context, plugin, id string) error
}

// TokenChecker authenticates the bearer token of a request.
type TokenChecker interface {
	// AuthenticateSCIM is the per-request check, resolving the plugin once. It returns the
	// settings when the token is accepted; AccessDenied for every refusal (bad token, unknown
	// plugin, SCIM disabled: one answer after the same work); the error of gate.Admit when the
	// source is throttled. A token equal to the one already verified is accepted without
	// consulting gate; any other calls gate.Admit before it is verified and gate.Done after.
	// Any other error is a failure to read the plugin (500/503). The settings may be shared
	// with other requests: the endpoint only reads them.
	AuthenticateSCIM(ctx context.Context, plugin, token string, gate scimrecord.AuthGate) (*scimrecord.SCIMSettings, error)
}

// StatusRecorder keeps the plugin's SCIM status (last request, last failure) current.
type StatusRecorder interface {
	// RecordSCIMRequest records one authenticated request (failure is nil unless the request
	// failed with a 5xx). It must not block.
	RecordSCIMRequest(ctx context.Context, plugin string, failure error)
}
