package server

// SCIMSettings is the per-plugin SCIM configuration the endpoint reads on every request.
// TEMPORARY: lib/services/scimstore defines the shared type; this local copy lets the package build
// until it lands, and is then replaced by an alias.
type SCIMSettings struct {
	// Enabled is false when SCIM is turned off for the plugin: every request is refused.
	Enabled bool
	// RateLimit is the sustained requests per second allowed for the plugin (0: the default).
	RateLimit int
	// RateBurst is the burst allowed above RateLimit (0: the default).
	RateBurst int
}
