package services

import (
	"net/url"
	"strings"
	"time"

	"github.com/gravitational/trace"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// User sync settings (spec.okta.user_sync).
const (
	// DefaultUserSyncInterval is the time between runs when none is set.
	DefaultUserSyncInterval = 10 * time.Minute
	// MinUserSyncInterval is the shortest interval allowed: Okta's rate
	// limits are shared by the whole org.
	MinUserSyncInterval = time.Minute
	// DefaultUserSyncFullPassInterval is the time between full passes when
	// none is set.
	DefaultUserSyncFullPassInterval = time.Hour
	// UserSyncCredentialAPIToken is an Okta API token (Authorization: SSWS).
	UserSyncCredentialAPIToken = "api_token"
	// UserSyncCredentialOAuth is an OAuth 2.0 service app authenticating
	// with private_key_jwt.
	UserSyncCredentialOAuth = "oauth_private_key_jwt"
)

// maxSealedSecret bounds a sealed API token or private key.
const maxSealedSecret = 16 << 10

// UserSyncIntervals returns the run and full-pass intervals of s, defaults
// applied.
func UserSyncIntervals(s *typesv1.OktaUserSyncSettings) (interval, fullPass time.Duration, err error) {
	interval, fullPass = DefaultUserSyncInterval, DefaultUserSyncFullPassInterval
	if raw := s.GetInterval(); raw != "" {
		if interval, err = time.ParseDuration(raw); err != nil {
			return 0, 0, trace.BadParameter("okta.user_sync.interval %q is not a duration such as \"10m\"", raw)
		}
	}
	if interval < MinUserSyncInterval {
		return 0, 0, trace.BadParameter("okta.user_sync.interval %s is under the minimum of %s", interval, MinUserSyncInterval)
	}
	if raw := s.GetFullPassInterval(); raw != "" {
		if fullPass, err = time.ParseDuration(raw); err != nil {
			return 0, 0, trace.BadParameter("okta.user_sync.full_pass_interval %q is not a duration such as \"1h\"", raw)
		}
	}
	if fullPass < interval {
		if s.GetFullPassInterval() == "" {
			fullPass = interval
		} else {
			return 0, 0, trace.BadParameter("okta.user_sync.full_pass_interval %s is shorter than interval %s", fullPass, interval)
		}
	}
	return interval, fullPass, nil
}

// ValidateUserSync checks the user sync settings of plugin name: a plugin
// runs SCIM or user sync, never both, and enabled user sync needs an https
// org URL (http only for a loopback address, as in tests), an app ID and a
// credential kind.
func ValidateUserSync(name string, okta *typesv1.OktaPluginSettings) error {
	us := okta.GetUserSync()
	if us == nil {
		return nil
	}
	if us.GetEnabled() && okta.GetScimEnabled() {
		return trace.BadParameter("plugin %q runs SCIM or user sync, never both: turn SCIM off (scim_enabled: false) before enabling user sync, or user sync off before enabling SCIM", name)
	}
	if _, _, err := UserSyncIntervals(us); err != nil {
		return trace.BadParameter("plugin %q: %v", name, err)
	}
	switch us.GetCredentialKind() {
	case "", UserSyncCredentialAPIToken, UserSyncCredentialOAuth:
	default:
		return trace.BadParameter("plugin %q: okta.user_sync.credential_kind must be %q or %q", name, UserSyncCredentialAPIToken, UserSyncCredentialOAuth)
	}
	if us.GetOrgUrl() != "" {
		if _, err := ParseOktaOrgURL(us.GetOrgUrl()); err != nil {
			return trace.BadParameter("plugin %q: okta.user_sync.org_url: %v", name, err)
		}
	}
	if len(us.GetAppId()) > 128 || strings.ContainsAny(us.GetAppId(), "/?#%") {
		return trace.BadParameter("plugin %q: okta.user_sync.app_id %q is not an Okta app ID", name, us.GetAppId())
	}
	if !us.GetEnabled() {
		return nil
	}
	switch {
	case us.GetOrgUrl() == "":
		return trace.BadParameter("plugin %q: okta.user_sync.org_url is required to enable user sync", name)
	case us.GetAppId() == "":
		return trace.BadParameter("plugin %q: okta.user_sync.app_id is required to enable user sync", name)
	case us.GetCredentialKind() == "":
		return trace.BadParameter("plugin %q: okta.user_sync.credential_kind is required to enable user sync", name)
	}
	return nil
}

// ParseOktaOrgURL parses an Okta org URL: https with a host and no path,
// query or user info; plain http is accepted only for a loopback host (a
// stand-in in tests).
func ParseOktaOrgURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil || u.Host == "" {
		return nil, trace.BadParameter("%q is not a URL such as https://example.okta.com", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, trace.BadParameter("%q must be the org's origin only, such as https://example.okta.com", raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
	default:
		return nil, trace.BadParameter("%q must use https", raw)
	}
	u.Path = ""
	return u, nil
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

func validateOktaAPICredentials(name string, api *typesv1.OktaAPICredentials) error {
	switch api.GetKind() {
	case UserSyncCredentialAPIToken:
		if api.GetClientId() != "" {
			return trace.BadParameter("plugin_static_credentials %q: an api_token credential has no client_id", name)
		}
	case UserSyncCredentialOAuth:
		if api.GetClientId() == "" || len(api.GetClientId()) > 256 {
			return trace.BadParameter("plugin_static_credentials %q: an oauth_private_key_jwt credential needs a client_id of at most 256 bytes", name)
		}
	default:
		return trace.BadParameter("plugin_static_credentials %q: okta_api.kind must be %q or %q", name, UserSyncCredentialAPIToken, UserSyncCredentialOAuth)
	}
	if n := len(api.GetSealedSecret()); n == 0 || n > maxSealedSecret {
		return trace.BadParameter("plugin_static_credentials %q: okta_api.sealed_secret must be 1 to %d bytes", name, maxSealedSecret)
	}
	if len(api.GetKeyId()) > 256 {
		return trace.BadParameter("plugin_static_credentials %q: okta_api.key_id is over 256 bytes", name)
	}
	return nil
}
