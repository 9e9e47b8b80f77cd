package saml

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/safetext"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Backend key prefixes of the SP's short-lived state.
const (
	// RequestsPrefix holds outstanding SP-initiated requests by relay state.
	RequestsPrefix = services.SAMLRequestsPrefix
	// AssertionsPrefix holds the SHA-256 of every accepted assertion ID
	// until the assertion expires: the replay cache.
	AssertionsPrefix = services.SAMLAssertionsPrefix
)

// Limits.
const (
	// RequestTTL is how long an SP-initiated login may take at the IdP.
	RequestTTL = 10 * time.Minute
	// MaxResponseSize caps a decoded SAMLResponse.
	MaxResponseSize = 192 << 10
	// maxRedirectURL caps the post-login redirect kept with a request.
	maxRedirectURL = 2048
)

// ServiceProvider builds the crewjam service provider for a connector read
// with its secrets. The SP's entity ID, and the audience assertions must
// name, is spec.audience (which defaults to the ACS URL); the IdP is the
// connector's entity_descriptor. IdP-initiated logins (responses without
// InResponseTo) are accepted unless spec.disable_idp_initiated is set; then
// every response must answer the request it is matched with.
func ServiceProvider(c *typesv1.SAMLConnector, clock clockwork.Clock) (*crewjam.ServiceProvider, error) {
	spec := c.GetSpec()
	idp, err := ParseIDPMetadata(spec.GetEntityDescriptor())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	acs, err := url.Parse(spec.GetAcs())
	if err != nil || acs.Host == "" {
		return nil, trace.BadParameter("saml %q: bad acs %q", c.GetMetadata().GetName(), spec.GetAcs())
	}
	audience := spec.GetAudience()
	if audience == "" {
		audience = spec.GetAcs()
	}
	sp := &crewjam.ServiceProvider{
		EntityID:                         audience,
		AcsURL:                           *acs,
		MetadataURL:                      *acs,
		IDPMetadata:                      idp,
		AllowIDPInitiated:                !spec.GetDisableIdpInitiated(),
		AuthnNameIDFormat:                crewjam.UnspecifiedNameIDFormat,
		AssertionConsumerServiceBindings: []string{crewjam.HTTPPostBinding},
		// SHA-1 is broken for collisions; Okta and every maintained IdP
		// sign with SHA-256.
		RejectSHA1Signatures: true,
	}
	if clock != nil {
		sp.Clock = dsig.NewFakeClock(clock)
	}
	if kp := spec.GetSigningKeyPair(); kp.GetPrivateKey() != "" {
		key, cert, err := parseSigningKeyPair(kp)
		if err != nil {
			return nil, trace.Wrap(err, "saml %q", c.GetMetadata().GetName())
		}
		sp.Key, sp.Certificate = key, cert
	} else if kp.GetCert() != "" {
		// Read without secrets: enough for the metadata.
		_, cert, err := parseSigningKeyPair(&typesv1.AsymmetricKeyPair{PrivateKey: "", Cert: kp.GetCert()})
		if err == nil {
			sp.Certificate = cert
		}
	}
	return sp, nil
}

// Config configures a Provider.
type Config struct {
	// Backend keeps outstanding requests and the replay cache. Required.
	Backend backend.Backend
	// Clock defaults to the backend's clock.
	Clock clockwork.Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	if c.Backend == nil {
		return trace.BadParameter("saml: missing Backend")
	}
	defaults.ClockFrom(&c.Clock, c.Backend.Clock)
	defaults.Logger(&c.Logger, "saml")
	return nil
}

// Provider runs SAML logins for every connector.
type Provider struct {
	cfg    Config
	logins *services.SAMLLogins
}

// New returns a Provider.
func New(cfg Config) (*Provider, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	logins, err := services.NewSAMLLogins(cfg.Backend)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &Provider{cfg: cfg, logins: logins}, nil
}

// request is an outstanding SP-initiated login, at RequestsPrefix/<relay state>.
type request struct {
	ID          string `json:"id"`
	Connector   string `json:"connector"`
	RedirectURL string `json:"redirect_url,omitempty"`
	// BindingHash is the hex SHA-256 of the browser binding the login was
	// started with; the binding itself is never stored.
	BindingHash string    `json:"binding_sha256"`
	Created     time.Time `json:"created"`
}

// bindingLen is the length of a browser binding: 32 random bytes, hex.
const bindingLen = 64

// NewBinding returns a fresh browser binding: a random secret the web
// layer keeps in a cookie of the browser that starts an SP-initiated
// login, and hands back to ParseResponse when that browser posts the
// IdP's response.
func NewBinding() (string, error) {
	b, err := randomToken()
	return b, trace.Wrap(err)
}

// ValidBinding reports whether s has the shape of a binding from
// NewBinding (64 lowercase hex characters).
func ValidBinding(s string) bool {
	if len(s) != bindingLen {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

func bindingHash(binding string) string {
	sum := sha256.Sum256([]byte(binding))
	return hex.EncodeToString(sum[:])
}

// AuthnRequest starts an SP-initiated login: it records the request under
// a fresh random relay state for RequestTTL, bound to the browser that
// holds binding (see NewBinding; only its hash is stored), and returns
// the IdP URL (HTTP-Redirect binding) to send the browser to. redirectURL,
// a local path, is where the browser goes after the login.
func (p *Provider) AuthnRequest(ctx context.Context, c *typesv1.SAMLConnector, redirectURL, binding string) (*url.URL, error) {
	if len(redirectURL) > maxRedirectURL {
		return nil, trace.BadParameter("redirect URL is over %d bytes", maxRedirectURL)
	}
	if !ValidBinding(binding) {
		return nil, trace.BadParameter("saml: an SP-initiated login needs a browser binding from NewBinding")
	}
	sp, err := ServiceProvider(c, p.cfg.Clock)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	ssoURL := sp.GetSSOBindingLocation(crewjam.HTTPRedirectBinding)
	if ssoURL == "" {
		return nil, trace.BadParameter("saml %q: the IdP metadata has no HTTP-Redirect SingleSignOnService", c.GetMetadata().GetName())
	}
	req, err := sp.MakeAuthenticationRequest(ssoURL, crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	relayState, err := randomToken()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	now := p.cfg.Clock.Now()
	rec, err := json.Marshal(request{ID: req.ID, Connector: c.GetMetadata().GetName(), RedirectURL: redirectURL, BindingHash: bindingHash(binding), Created: now})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := p.logins.CreateRequest(ctx, relayState, rec, now.Add(RequestTTL)); err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := req.Redirect(relayState, sp)
	return u, trace.Wrap(err)
}

// Assertion is what a validated SAML response says.
type Assertion struct {
	// Connector is the connector's name.
	Connector string
	// NameID is the subject's NameID as the IdP sent it; the Gatehouse
	// username is its canonical form (Username).
	NameID string
	// Attributes are the assertion's attribute values by attribute Name,
	// and also by FriendlyName when one is given.
	Attributes map[string][]string
	// Traits are the attribute values by FriendlyName, or Name when there
	// is none: what the user's traits become.
	Traits map[string][]string
	// ID is the assertion's ID.
	ID string
	// IdPInitiated is set for an unsolicited response.
	IdPInitiated bool
	// RedirectURL is where the SP-initiated request asked to land.
	RedirectURL string
}

// Reasons for refusing a response, as shown to the user.
const (
	ReasonMalformed   = "the SAML response is not well-formed"
	ReasonSignature   = "the SAML response is not signed by the identity provider"
	ReasonIssuer      = "the SAML response comes from another identity provider"
	ReasonAudience    = "the SAML assertion is meant for another service provider"
	ReasonDestination = "the SAML response was sent to another address"
	ReasonExpired     = "the SAML assertion has expired or is not yet valid; check the clocks"
	ReasonReplayed    = "the SAML assertion has already been used"
	ReasonRequest     = "the SAML response does not answer a login started here"
	ReasonTooLarge    = "the SAML response is too large"
	ReasonBrowser     = "this SAML login was started in another browser; start the login again from Gatehouse's login page in this browser"
	ReasonStatus      = "the identity provider refused the login"
	ReasonEncrypted   = "the SAML assertion is encrypted; Gatehouse accepts signed, unencrypted assertions: turn assertion encryption off at the identity provider"
	ReasonGeneric     = "the SAML response is not valid"
)

// ErrIdPInitiatedDisabled is what the *ResponseError refusing an
// unsolicited response on a connector with disable_idp_initiated unwraps
// to: test with errors.Is.
var ErrIdPInitiatedDisabled = errors.New("IdP-initiated login is disabled")

// ErrBrowserMismatch is what the *ResponseError refusing a response to an
// SP-initiated login posted by a browser other than the one that started
// it unwraps to: test with errors.Is.
var ErrBrowserMismatch = errors.New("SAML login was started in another browser")

// ResponseError is a refused response: Reason is safe to show the browser,
// Detail (the library's explanation) goes to the audit log and logs only.
type ResponseError struct {
	Reason string
	Detail string
	// cause, when set, is a sentinel such as ErrIdPInitiatedDisabled.
	cause error
}

func (e *ResponseError) Error() string { return e.Reason }

// Unwrap returns the sentinel the refusal is, if any.
func (e *ResponseError) Unwrap() error { return e.cause }

// idpInitiatedDisabled refuses an unsolicited response to connector.
func idpInitiatedDisabled(connector string) *ResponseError {
	return &ResponseError{
		Reason: fmt.Sprintf("IdP-initiated login is disabled for connector %q; start the login from Gatehouse's login page", connector),
		Detail: "unsolicited response (no outstanding login request of this connector for its relay state) and the connector sets disable_idp_initiated",
		cause:  ErrIdPInitiatedDisabled,
	}
}

// browserMismatch refuses a response to an outstanding request whose
// browser binding the post does not carry. detail says only whether the
// binding was missing or different, never its value.
func browserMismatch(missing bool) *ResponseError {
	detail := "the post carries another browser's binding cookie than the one the login was started with"
	if missing {
		detail = "the post carries no browser binding cookie for the login it answers"
	}
	return &ResponseError{Reason: ReasonBrowser, Detail: detail, cause: ErrBrowserMismatch}
}

// classify turns a library error into a ResponseError.
func classify(err error) *ResponseError {
	detail := err.Error()
	var ivr *crewjam.InvalidResponseError
	if errors.As(err, &ivr) && ivr.PrivateErr != nil {
		detail = ivr.PrivateErr.Error()
	}
	reason := ReasonGeneric
	switch {
	case errors.Is(err, crewjam.ErrAssertionReplayed):
		reason = ReasonReplayed
	case errors.Is(err, crewjam.ErrInvalidSignature), errors.Is(err, crewjam.ErrUntrustedCertificate), errors.Is(err, crewjam.ErrCertificateNotValidNow):
		reason = ReasonSignature
	case errors.Is(err, crewjam.ErrIssuerMismatch):
		reason = ReasonIssuer
	case errors.Is(err, crewjam.ErrAudienceMismatch):
		reason = ReasonAudience
	case errors.Is(err, crewjam.ErrDestinationMismatch):
		reason = ReasonDestination
	case errors.Is(err, crewjam.ErrExpired), errors.Is(err, crewjam.ErrNotYetValid):
		reason = ReasonExpired
	case errors.Is(err, crewjam.ErrRequestIDMismatch):
		reason = ReasonRequest
	case errors.Is(err, crewjam.ErrDecryptionFailed):
		reason = ReasonEncrypted
	case errors.Is(err, crewjam.ErrMalformedMessage), errors.Is(err, crewjam.ErrMissingElement):
		reason = ReasonMalformed
	default:
		var bs crewjam.ErrBadStatus
		if errors.As(err, &bs) {
			reason = ReasonStatus
		} else if strings.Contains(strings.ToLower(detail), "signature") {
			// An unsigned response is reported without a sentinel error.
			reason = ReasonSignature
		}
	}
	return &ResponseError{Reason: reason, Detail: boundDetail(detail)}
}

// maxDetail bounds a refusal's Detail. The library quotes parts of the
// response in its errors (a Destination, a Version...), and an
// unauthenticated post must not write an audit event or a log line as
// large as the response itself.
const maxDetail = 512

// boundDetail cuts s to maxDetail bytes, at a rune boundary.
func boundDetail(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	cut := safetext.Prefix(s, maxDetail)
	return fmt.Sprintf("%s... (%d more bytes)", cut, len(s)-len(cut))
}

// ParseResponse validates a base64 SAMLResponse posted to connector c's
// ACS. relayState picks the SP-initiated request it answers (consumed, so
// a request is answered once); binding is the browser binding the post
// came with (its cookie; "" when it has none), and must be the one the
// request was started with, or the response is refused
// (ErrBrowserMismatch) before the XML is validated and the request stays
// outstanding. An empty or unknown relay state means an IdP-initiated
// login, which ignores binding and is refused (ErrIdPInitiatedDisabled)
// before the XML is validated when the connector sets
// disable_idp_initiated. Every refusal is a *ResponseError (wrapped),
// never a panic.
func (p *Provider) ParseResponse(ctx context.Context, c *typesv1.SAMLConnector, samlResponse, relayState, binding string) (*Assertion, error) {
	if samlResponse == "" {
		return nil, trace.Wrap(&ResponseError{Reason: ReasonMalformed, Detail: "no SAMLResponse in the form"})
	}
	if base64.StdEncoding.DecodedLen(len(samlResponse)) > MaxResponseSize+3 {
		return nil, trace.Wrap(&ResponseError{Reason: ReasonTooLarge, Detail: "SAMLResponse is over the size limit"})
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(samlResponse))
	if err != nil {
		return nil, trace.Wrap(&ResponseError{Reason: ReasonMalformed, Detail: "SAMLResponse is not base64: " + err.Error()})
	}
	if hasDirective(raw) {
		return nil, trace.Wrap(&ResponseError{Reason: ReasonMalformed, Detail: "the response carries a <!DOCTYPE> or other <!...> declaration"})
	}
	sp, err := ServiceProvider(c, p.cfg.Clock)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	replays := &replayCache{ctx: ctx, logins: p.logins}
	sp.ReplayCache = replays
	// Gatehouse asks for unencrypted assertions (see Metadata), so the
	// library gets no key to decrypt with: the SP key would otherwise
	// decrypt whatever an unauthenticated post carries, one RSA operation
	// per EncryptedKey, and answer differently when the plaintext is
	// well-formed XML (the XML Encryption CBC oracle). An encrypted
	// element is refused (ReasonEncrypted) before any ciphertext is read.
	sp.Key = nil

	var (
		possibleIDs []string
		req         request
		solicited   bool
	)
	if relayState != "" && len(relayState) <= 256 && !strings.ContainsRune(relayState, backend.Separator) {
		value, err := p.logins.GetRequest(ctx, relayState)
		switch {
		case err == nil:
			if json.Unmarshal(value, &req) == nil && req.Connector == c.GetMetadata().GetName() {
				solicited = true
				possibleIDs = []string{req.ID}
			}
		case !trace.IsNotFound(err):
			return nil, trace.Wrap(err)
		}
	}
	if !solicited && c.GetSpec().GetDisableIdpInitiated() {
		// Unsolicited responses allow login CSRF: anyone can post their own
		// valid assertion to a victim's browser. Refused before parsing, so
		// the assertion is neither validated nor recorded as used. A
		// solicited response must then also carry the request's ID
		// (AllowIDPInitiated is off in sp).
		return nil, trace.Wrap(idpInitiatedDisabled(c.GetMetadata().GetName()))
	}
	if solicited {
		// Login CSRF through SP-initiated logins: an attacker starts a
		// login in their own browser and makes the victim's browser post
		// the IdP's answer (with its relay state), signing the victim in
		// as the attacker. Only the browser holding the binding the
		// request was started with may finish it. Refused before parsing:
		// the request stays outstanding for its own browser, and the
		// assertion is not recorded as used. A request without a binding
		// hash (none are written any more) is refused as well.
		if binding == "" {
			return nil, trace.Wrap(browserMismatch(true))
		}
		got := bindingHash(binding)
		if req.BindingHash == "" || subtle.ConstantTimeCompare([]byte(got), []byte(req.BindingHash)) != 1 {
			return nil, trace.Wrap(browserMismatch(false))
		}
	}
	assertion, err := p.parse(sp, raw, possibleIDs)
	if replays.err != nil {
		// The response was valid but could not be recorded as used: the
		// server's fault, not a refusal of the response (which stays
		// unused and may be posted again).
		return nil, trace.Wrap(replays.err, "recording the SAML assertion as used")
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if solicited {
		// The request is answered; a second answer must not find it. A
		// failure here is harmless: the request expires on its own and the
		// assertion is already in the replay cache.
		_ = p.logins.DeleteRequest(ctx, relayState)
	}
	out := &Assertion{
		Connector:    c.GetMetadata().GetName(),
		ID:           assertion.ID,
		IdPInitiated: !solicited,
		RedirectURL:  req.RedirectURL,
		Attributes:   map[string][]string{},
		Traits:       map[string][]string{},
	}
	if assertion.Subject != nil && assertion.Subject.NameID != nil {
		out.NameID = strings.TrimSpace(assertion.Subject.NameID.Value)
	}
	if out.NameID == "" {
		return nil, trace.Wrap(&ResponseError{Reason: ReasonMalformed, Detail: "the assertion has no NameID"})
	}
	for _, st := range assertion.AttributeStatements {
		for _, a := range st.Attributes {
			var vals []string
			for _, v := range a.Values {
				if s := strings.TrimSpace(v.Value); s != "" {
					vals = append(vals, s)
				}
			}
			if a.Name != "" {
				out.Attributes[a.Name] = append(out.Attributes[a.Name], vals...)
			}
			if a.FriendlyName != "" && a.FriendlyName != a.Name {
				out.Attributes[a.FriendlyName] = append(out.Attributes[a.FriendlyName], vals...)
			}
			traitName := a.FriendlyName
			if traitName == "" {
				traitName = a.Name
			}
			if traitName != "" && len(vals) > 0 {
				out.Traits[traitName] = append(out.Traits[traitName], vals...)
			}
		}
	}
	return out, nil
}

// hasDirective reports whether raw holds an XML declaration such as
// <!DOCTYPE>. No IdP puts a DTD in a SAML response, and the signature does
// not cover one before the root, so one is an attacker's: entity expansion
// and XXE need it. Go's XML reader expands no entity, but the response is
// refused rather than parsed around it, as other SAML service providers do.
// A response the tokenizer cannot read is left for the library to refuse.
func hasDirective(raw []byte) bool {
	if !bytes.Contains(raw, []byte("<!")) {
		return false
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := d.RawToken()
		if err != nil {
			return false
		}
		if _, ok := tok.(xml.Directive); ok {
			return true
		}
	}
}

// parse runs the library's validation, turning any error or panic into a
// *ResponseError.
func (p *Provider) parse(sp *crewjam.ServiceProvider, raw []byte, possibleIDs []string) (a *crewjam.Assertion, err error) {
	defer func() {
		if r := recover(); r != nil {
			p.cfg.Logger.Error("SAML library panicked on a response", "panic", r)
			a, err = nil, trace.Wrap(&ResponseError{Reason: ReasonMalformed, Detail: "the response could not be parsed"})
		}
	}()
	a, err = sp.ParseXMLResponse(raw, possibleIDs, sp.AcsURL)
	if err != nil {
		return nil, trace.Wrap(classify(err))
	}
	return a, nil
}

// replayCache is the crewjam AssertionReplayCache over the backend: an
// assertion ID is recorded with backend Create, which fails on a second
// use, from this server or any other sharing the backend.
type replayCache struct {
	ctx    context.Context
	logins *services.SAMLLogins
	// err is the storage error of the last Consume, if any: the library
	// turns it into an invalid response, which ParseResponse must not
	// report as the client's.
	err error
}

func (r *replayCache) Consume(assertionID string, expiresAt time.Time) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 10*time.Second)
	defer cancel()
	err := r.logins.ConsumeAssertion(ctx, assertionID, expiresAt)
	if trace.IsAlreadyExists(err) {
		return crewjam.ErrAssertionReplayed
	}
	r.err = err
	return err
}

// randomToken is 32 random bytes, hex: 64 characters, within the 80 bytes
// the SAML bindings allow a RelayState.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", trace.Wrap(err)
	}
	return hex.EncodeToString(b), nil
}

// Metadata returns the SP metadata of connector c, to register Gatehouse
// at the IdP. It advertises no encryption key: Gatehouse asks for signed,
// unencrypted assertions (what Okta sends by default), which keeps the
// signature check on the assertion itself, and ParseResponse decrypts
// nothing. A signing certificate would be listed only for signed
// AuthnRequests, which Gatehouse does not send, so today the metadata
// lists no key at all.
func Metadata(c *typesv1.SAMLConnector, clock clockwork.Clock) ([]byte, error) {
	sp, err := ServiceProvider(c, clock)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	md := sp.Metadata()
	for i := range md.SPSSODescriptors {
		d := &md.SPSSODescriptors[i]
		kept := d.KeyDescriptors[:0]
		for _, kd := range d.KeyDescriptors {
			if kd.Use != "encryption" {
				kd.Use = "signing"
				kd.EncryptionMethods = nil
				kept = append(kept, kd)
			}
		}
		d.KeyDescriptors = kept
	}
	out, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return append([]byte(xml.Header), out...), nil
}
