// Package scimstore keeps the SCIM view of provisioned users and groups for
// each provisioning plugin: a record per SCIM id, and indexes from userName,
// externalId and displayName to that id, so that every lookup Okta makes is
// answered by key, never by scanning.
//
// A record outlives the Gatehouse user it describes: when Okta deactivates a
// user, the user is deleted and locked but the record stays, marked inactive,
// so that Okta can still GET it by id and reactivate it.
//
// Keys, all under scim/<plugin>/ (see store.go for the builders):
//
//	users/<id>                                      UserRecord (JSON)
//	usernames/<esc(canon(userName))>                id of the user record
//	user_external_id_index/<esc(externalId)>/<id>   id of the user record
//	groups/<id>                                     GroupRecord (JSON)
//	group_names/<esc(lower(displayName))>           id of the group record
//	group_external_id_index/<esc(externalId)>/<id>  id of the group record
//
// esc is url.PathEscape, so that a name containing "/" stays one key part;
// userName is in canonical form (lib/canonical: NFKC plus case folding, the
// form Gatehouse compares usernames in), displayName is lower-cased
// (strings.ToLower) because SCIM compares it case-insensitively, externalId
// is kept as is (caseExact).
//
// Every write of a record and its indexes goes into one backend.AtomicWrite
// conditioned on the record's revision (or its absence), so an index never
// points at a record that does not name it back, and a name taken by one
// record cannot be taken by another (the new index key is written with a
// NotExists condition). externalId is not unique (RFC 7643 §3.1 does not
// require it, and nothing in Gatehouse is keyed by it): its indexes hold one
// entry per record, under the value, and a lookup returns every record with
// that value. Entries written before (one per value, under external_ids/
// and group_external_ids/) are moved by MigrateExternalIDIndex. The Put*/Delete*
// functions return those actions for the caller to extend with the writes of
// other kinds (the Gatehouse user, a lock, an audit event) before it calls
// AtomicWrite.
package scimstore

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
