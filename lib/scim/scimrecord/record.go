// Package scimrecord holds the SCIM records and settings that cross the seam
// between the SCIM HTTP endpoint (plugins/scim/server), the provisioning code
// (lib/auth/scimprov) and the store (lib/services/scimstore): a leaf with no
// internal imports, so that each of them can speak in these types without
// importing the others' layers. How the records are stored (keys, indexes)
// is scimstore's business; what the fields mean is said here.
//
// The json tags are a storage format, not decoration: groups are stored as
// this JSON, and users written before the compact encoding still are
// (lib/services/scimstore reads both). Changing a tag changes what is read
// back.
package scimrecord

import (
	"encoding/json"
	"time"
)

// UserRecord is the SCIM view of one provisioned user.
type UserRecord struct {
	// ID is the server-assigned SCIM id; stable for the record's life.
	// Stored records leave it out: it is their key's last part.
	ID string `json:"id,omitempty"`
	// UserName is the SCIM userName, which is also the Gatehouse username.
	UserName string `json:"user_name"`
	// ExternalID is the client's id for the user (Okta's 00u...).
	ExternalID string `json:"external_id,omitempty"`
	// Active is false once the user is deactivated.
	Active bool `json:"active"`
	// Attributes are the SCIM attributes as last written by the client,
	// without id, meta, groups and password (which is never kept).
	Attributes json.RawMessage `json:"attributes"`
	// Groups are the SCIM groups the user belongs to (kept by group writes).
	Groups []GroupRef `json:"groups,omitempty"`
	// Created and LastModified feed meta.created and meta.lastModified.
	Created      time.Time `json:"created"`
	LastModified time.Time `json:"last_modified"`
	// Revision is the backend revision the record was read at; it is the
	// SCIM ETag (W/"<revision>"). Not stored.
	Revision string `json:"-"`
}

// GroupRef names a group a user belongs to.
type GroupRef struct {
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
}

// GroupRecord is the SCIM view of one pushed group.
type GroupRecord struct {
	// ID is the server-assigned SCIM id.
	ID string `json:"id"`
	// DisplayName is the group's name; unique per plugin, case-insensitive.
	DisplayName string `json:"display_name"`
	// ExternalID is the client's id for the group.
	ExternalID string `json:"external_id,omitempty"`
	// Members are the SCIM ids of member users.
	Members []MemberRef `json:"members,omitempty"`
	// Attributes are other SCIM attributes as last written.
	Attributes json.RawMessage `json:"attributes,omitempty"`
	// Created and LastModified feed meta.
	Created      time.Time `json:"created"`
	LastModified time.Time `json:"last_modified"`
	// Revision is the backend revision the record was read at. Not stored.
	Revision string `json:"-"`
}

// MemberRef is one member of a group.
type MemberRef struct {
	// Value is the member user's SCIM id.
	Value string `json:"value"`
	// Display is the member's display name as the client sent it.
	Display string `json:"display,omitempty"`
}

// SCIMSettings are the SCIM-relevant settings of a provisioning plugin, as
// the SCIM HTTP server needs them on every request.
type SCIMSettings struct {
	// Enabled is false when the plugin's SCIM endpoint is turned off: every
	// request is refused.
	Enabled bool
	// RateLimit is the sustained requests per second allowed; 0 means the
	// server's default.
	RateLimit int
	// RateBurst is the burst allowed; 0 means the server's default.
	RateBurst int
}
