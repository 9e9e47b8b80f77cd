package scimrecord

// Prefilter is what the cheap first check of a bearer token found, before
// any password hash runs.
type Prefilter int

const (
	// PrefilterMiss: the token cannot be right (its fingerprint matches no
	// credential, or there is no credential to match: unknown plugin, SCIM
	// off). No hash runs.
	PrefilterMiss Prefilter = iota
	// PrefilterMatch: the token's fingerprint matches a credential; bcrypt
	// decides. Only the right token gets here (or a holder of the stored
	// fingerprint, who could read the hash anyway).
	PrefilterMatch
	// PrefilterUnknown: a credential written before fingerprints existed;
	// only bcrypt can tell. Its first successful check adds the fingerprint.
	PrefilterUnknown
)

// AuthGate is the SCIM endpoint's per-source failure limiter, lent to the
// token check (AuthenticateSCIM, in lib/auth/scimprov) so that it runs at the right
// point: after the token was compared with the remembered verified token
// (which is accepted without consulting the gate: a valid token is never
// refused by a failure limiter), and before anything else is verified.
type AuthGate interface {
	// Source names the client (an address, or an IPv6 /64) in the audit
	// event of a refusal.
	Source() string
	// Admit reserves one failure for the source. It returns nil when the
	// check may go on, and then Done must be called once with the verdict;
	// or a trace.LimitExceeded error when the source is throttled and the
	// token cannot be right (a throttled source still reaches bcrypt with a
	// token that passed the prefilter).
	Admit(p Prefilter) error
	// Done reports the verdict of an admitted check; ok gives the
	// reservation back.
	Done(ok bool)
}
