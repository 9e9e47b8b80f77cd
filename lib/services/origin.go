package services

import (
	"net"
	"strings"
)

// PublicOrigin is the https origin of the web listener at host:port addr,
// without the default port: "https://host" for "host:443" (as people type
// it and as an IdP's form expects it), "https://host:port" for any other
// port, "https://host" for a bare host; "" when addr is empty. Every URL
// built from a public address (SCIM base URL, SAML ACS, password links)
// goes through it, so the same listener never appears under two spellings.
func PublicOrigin(addr string) string {
	if addr == "" {
		return ""
	}
	if host, port, err := net.SplitHostPort(addr); err == nil && port == "443" {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		return "https://" + host
	}
	return "https://" + addr
}
