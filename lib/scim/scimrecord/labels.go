package scimrecord

// The labels SCIM puts on the locks it writes (lib/auth/scimprov), beside
// the plugin and origin labels of lib/services; the web API and gatectl read
// them back to say which locks SCIM wrote and why.
const (
	// LabelReason says why a lock was written.
	LabelReason = "gatehouse.dev/reason"
	// ReasonPrefix starts every reason SCIM writes.
	ReasonPrefix = "scim-"
	// ReasonDeactivation marks a lock written because the user was
	// deactivated in the identity provider.
	ReasonDeactivation = ReasonPrefix + "deactivation"
	// ReasonDeletion marks a lock written because the user was deleted
	// over SCIM.
	ReasonDeletion = ReasonPrefix + "deletion"
)

// IsLockReason reports whether reason is one SCIM writes on the locks of
// the users it deactivates or deletes.
func IsLockReason(reason string) bool {
	return reason == ReasonDeactivation || reason == ReasonDeletion
}
