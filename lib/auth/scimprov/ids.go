package scimprov

import "github.com/google/uuid"

// newResourceID names a new SCIM resource. It is a version 7 UUID, whose
// leading bits are the creation time, so that resources created together
// have neighbouring storage keys: a create appends to the end of the key
// index instead of dirtying a random page of it, which is one WAL frame less
// per create. The time it reveals is the resource's meta.created, which the
// same SCIM client reads anyway; the id stays opaque and unguessable enough
// for what it is (a name, not a credential: every request is checked against
// the token's plugin scope).
func newResourceID() string {
	// Must panics only if the system's random source fails, as
	// uuid.NewString, which this replaces, does.
	return uuid.Must(uuid.NewV7()).String()
}
