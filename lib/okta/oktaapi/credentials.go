package oktaapi

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gravitational/trace"
)

// Credential authenticates requests to Okta.
type Credential interface {
	authorize(ctx context.Context, c *Client, req *http.Request) error
}

// APIToken is an Okta API token: Authorization: SSWS <token>.
type APIToken string

func (t APIToken) authorize(_ context.Context, _ *Client, req *http.Request) error {
	req.Header.Set("Authorization", "SSWS "+string(t))
	return nil
}

// OAuthApp is an OAuth 2.0 service app that gets access tokens with the
// client credentials grant, authenticating with a client assertion JWT
// (private_key_jwt) signed with its private key.
type OAuthApp struct {
	ClientID string
	// KeyID is the kid of the app's public key in Okta; optional.
	KeyID string
	Key   crypto.Signer

	mu      sync.Mutex
	token   string
	expires time.Time
	// noLogsScope is set once Okta refused okta.logs.read (invalid_scope):
	// later tokens ask only for Scopes.
	noLogsScope bool
}

// NewOAuthApp returns the service app credential for a PEM private key
// (PKCS #8, PKCS #1 RSA or SEC 1 EC).
func NewOAuthApp(clientID, keyID string, keyPEM []byte) (*OAuthApp, error) {
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if clientID == "" {
		return nil, trace.BadParameter("the OAuth service app's client ID is required")
	}
	return &OAuthApp{ClientID: clientID, KeyID: keyID, Key: key}, nil
}

// ParsePrivateKey parses a PEM RSA (2048 bits or more) or EC P-256 private
// key. Errors never quote the key.
func ParsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, trace.BadParameter("the private key is not PEM")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, trace.BadParameter("the private key's PEM type %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, trace.BadParameter("the private key cannot be parsed")
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, trace.BadParameter("the RSA private key must be at least 2048 bits")
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, trace.BadParameter("the EC private key must be on P-256 (ES256)")
		}
		return k, nil
	}
	return nil, trace.BadParameter("the private key must be RSA or EC P-256")
}

// tokenMargin renews an access token this long before it expires.
const tokenMargin = time.Minute

func (a *OAuthApp) authorize(ctx context.Context, c *Client, req *http.Request) error {
	tok, err := a.accessToken(ctx, c)
	if err != nil {
		return trace.Wrap(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

func (a *OAuthApp) accessToken(ctx context.Context, c *Client) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := c.cfg.Clock.Now()
	if a.token != "" && now.Before(a.expires.Add(-tokenMargin)) {
		return a.token, nil
	}
	return a.fetchTokenLocked(ctx, c)
}

// fetchTokenLocked asks the token endpoint for an access token, with a.mu
// held.
func (a *OAuthApp) fetchTokenLocked(ctx context.Context, c *Client) (string, error) {
	now := c.cfg.Clock.Now()
	tokenURL := c.cfg.OrgURL + "/oauth2/v1/token"
	assertion, err := a.ClientAssertion(tokenURL, now)
	if err != nil {
		return "", trace.Wrap(err)
	}
	scope := Scopes
	if !a.noLogsScope {
		scope += " " + LogsScope
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", trace.Wrap(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		c.report("oauth2.token", 0)
		return "", trace.ConnectionProblem(err, "getting an Okta access token: %v", redactURLError(err))
	}
	defer resp.Body.Close()
	c.report("oauth2.token", resp.StatusCode)
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", trace.ConnectionProblem(err, "reading Okta's token answer")
	}
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &out)
	if resp.StatusCode == http.StatusBadRequest && out.Error == "invalid_scope" && !a.noLogsScope {
		// A service app granted only the three required scopes: ask
		// again without okta.logs.read. Its System Log calls then get a
		// 403 and user sync falls back to full passes for unassignments.
		a.noLogsScope = true
		c.cfg.Logger.WarnContext(ctx, "Okta did not grant the service app okta.logs.read; unassignments will be seen only by full passes.")
		return a.fetchTokenLocked(ctx, c)
	}
	if resp.StatusCode != http.StatusOK || out.AccessToken == "" {
		return "", trace.AccessDenied("Okta refused the service app's token request (%d %s: %s); check the client ID, the public key registered in Okta, the granted scopes (%s) and that DPoP is not required",
			resp.StatusCode, out.Error, out.Description, Scopes)
	}
	a.token = out.AccessToken
	a.expires = now.Add(time.Duration(out.ExpiresIn) * time.Second)
	return a.token, nil
}

// ClientAssertion returns the signed client assertion JWT for audience (the
// token endpoint), valid for five minutes.
func (a *OAuthApp) ClientAssertion(audience string, now time.Time) (string, error) {
	alg := "RS256"
	if _, ok := a.Key.(*ecdsa.PrivateKey); ok {
		alg = "ES256"
	}
	header := map[string]string{"alg": alg, "typ": "JWT"}
	if a.KeyID != "" {
		header["kid"] = a.KeyID
	}
	claims := map[string]any{
		"iss": a.ClientID,
		"sub": a.ClientID,
		"aud": audience,
		"iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
		"jti": uuid.NewString(),
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return "", trace.Wrap(err)
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", trace.Wrap(err)
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	digest := sha256.Sum256([]byte(signing))
	var sig []byte
	switch k := a.Key.(type) {
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
	case *ecdsa.PrivateKey:
		var r, s []byte
		rr, ss, serr := ecdsa.Sign(rand.Reader, k, digest[:])
		if serr == nil {
			r, s = rr.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))
		}
		sig, err = append(r, s...), serr
	default:
		return "", trace.BadParameter("unsupported key type %T", a.Key)
	}
	if err != nil {
		return "", trace.Wrap(err)
	}
	return signing + "." + enc.EncodeToString(sig), nil
}
