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
