package standin

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/gatehouse/gatehouse/lib/defaults"
)

// SAML attribute names the stand-in sends, those of an Okta app's
// attribute statements and its group attribute statement.
const (
	AttrFirstName = "firstName"
	AttrLastName  = "lastName"
	AttrEmail     = "email"
	AttrGroups    = "groups"
)

// IdP paths on the stand-in's listener.
const (
	pathMetadata = "/metadata"
	pathSSO      = "/sso"
	pathPick     = "/sso/pick"
)

// pickCookie carries a one-time choice from the person picker back to the
// SSO endpoint.
const (
	pickCookie = "standin_pick"
	pickTTL    = 2 * time.Minute
	sessionTTL = time.Hour
)

// IdP is the stand-in's SAML identity provider: crewjam/saml's
// IdentityProvider with the directory as its user store and a page to pick
// a person instead of a password prompt. It knows one service provider,
// Gatehouse, from Gatehouse's own SP metadata.
type IdP struct {
	idp     *crewjam.IdentityProvider
	dir     *Directory
	log     *slog.Logger
	clock   clockwork.Clock
	restart string

	mu    sync.Mutex
	sps   map[string]*crewjam.EntityDescriptor
	picks map[string]pick
}

type pick struct {
	person  string
	expires time.Time
}

// IdPConfig configures NewIdP.
type IdPConfig struct {
	// BaseURL is the stand-in's own URL (http://127.0.0.1:3090). Required.
	BaseURL string
	// Key and Certificate sign assertions (see LoadOrCreateSigningKey). Required.
	Key         *rsa.PrivateKey
	Certificate *x509.Certificate
	// Directory says who exists and who may sign in. Required.
	Directory *Directory
	// RestartURL is where a sign-in starts over (Gatehouse's login page),
	// offered when a sign-in request has expired. Required.
	RestartURL string
	// Clock defaults to the real clock.
	Clock clockwork.Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// CheckAndSetDefaults validates the config.
func (c *IdPConfig) CheckAndSetDefaults() error {
	if c.BaseURL == "" {
		return trace.BadParameter("idp: missing BaseURL")
	}
	if c.Key == nil || c.Certificate == nil {
		return trace.BadParameter("idp: missing signing Key or Certificate")
	}
	if c.Directory == nil {
		return trace.BadParameter("idp: missing Directory")
	}
	if c.RestartURL == "" {
		return trace.BadParameter("idp: missing RestartURL")
	}
	defaults.Clock(&c.Clock)
	defaults.Logger(&c.Logger, "okta-standin-idp")
	return nil
}

// NewIdP returns the identity provider.
func NewIdP(cfg IdPConfig) (*IdP, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || base.Host == "" {
		return nil, trace.BadParameter("idp: bad BaseURL %q", cfg.BaseURL)
	}
	i := &IdP{
		dir: cfg.Directory, log: cfg.Logger, clock: cfg.Clock, restart: cfg.RestartURL,
		sps: map[string]*crewjam.EntityDescriptor{}, picks: map[string]pick{},
	}
	i.idp = &crewjam.IdentityProvider{
		Key:                     cfg.Key,
		Signer:                  cfg.Key,
		Certificate:             cfg.Certificate,
		Logger:                  slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		MetadataURL:             *base.JoinPath(pathMetadata),
		SSOURL:                  *base.JoinPath(pathSSO),
		ServiceProviderProvider: i,
		SessionProvider:         i,
		// Okta signs with RSA-SHA256; Gatehouse refuses SHA-1.
		SignatureMethod: dsig.RSASHA256SignatureMethod,
		OnError:         i.onError,
		Clock:           dsig.NewFakeClock(cfg.Clock),
	}
	return i, nil
}

// EntityID is the IdP's entity ID (its metadata URL), the issuer of its
// assertions.
func (i *IdP) EntityID() string { return i.idp.MetadataURL.String() }

// MetadataXML is the IdP metadata an administrator gives Gatehouse.
func (i *IdP) MetadataXML() (string, error) {
	out, err := xml.MarshalIndent(i.idp.Metadata(), "", "  ")
	if err != nil {
		return "", trace.Wrap(err)
	}
	return xml.Header + string(out), nil
}

// RegisterSP trusts a service provider from its metadata (Okta's app
// settings: the ACS URL and audience come from Gatehouse's SP metadata).
func (i *IdP) RegisterSP(metadata []byte) (string, error) {
	var ed crewjam.EntityDescriptor
	if err := xml.Unmarshal(metadata, &ed); err != nil {
		return "", trace.BadParameter("service provider metadata: %v", err)
	}
	if ed.EntityID == "" || len(ed.SPSSODescriptors) == 0 {
		return "", trace.BadParameter("service provider metadata has no entityID or SPSSODescriptor")
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.sps[ed.EntityID] = &ed
	return ed.EntityID, nil
}

// GetServiceProvider implements crewjam.ServiceProviderProvider.
func (i *IdP) GetServiceProvider(_ *http.Request, id string) (*crewjam.EntityDescriptor, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if ed, ok := i.sps[id]; ok {
		return ed, nil
	}
	return nil, os.ErrNotExist
}

// Handler serves the metadata, the SSO endpoint and the person picker.
func (i *IdP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathMetadata, i.idp.ServeMetadata)
	mux.HandleFunc("GET "+pathSSO, i.idp.ServeSSO)
	mux.HandleFunc("POST "+pathPick, i.servePick)
	return mux
}

// GetSession implements crewjam.SessionProvider: a person chosen on the
// picker a moment ago (a one-time cookie) signs in, if Okta would still let
// them; anyone else gets the picker. Each sign-in asks again, so that the
// demo can sign in as someone else and show a refusal.
func (i *IdP) GetSession(w http.ResponseWriter, r *http.Request, req *crewjam.IdpAuthnRequest) *crewjam.Session {
	if r.Method != http.MethodGet {
		i.renderError(w, http.StatusBadRequest, "The Okta stand-in takes only HTTP-Redirect sign-in requests.")
		return nil
	}
	if c, err := r.Cookie(pickCookie); err == nil {
		clearPick(w)
		if personID, ok := i.takePick(c.Value); ok {
			p, err := i.dir.signInState(personID)
			if err != nil {
				i.renderPicker(w, r, trace.UserMessage(err))
				return nil
			}
			i.log.Info("signed in at the IdP", "person", p.Email, "sp", req.ServiceProviderMetadata.EntityID)
			return newSession(p, i.clock.Now())
		}
	}
	i.renderPicker(w, r, "")
	return nil
}

// newSession is what Okta asserts for p: the email as the NameID and the
// app's attribute statements (name, email, groups).
func newSession(p PersonState, now time.Time) *crewjam.Session {
	attr := func(name string, values ...string) crewjam.Attribute {
		a := crewjam.Attribute{Name: name, NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"}
		for _, v := range values {
			a.Values = append(a.Values, crewjam.AttributeValue{Type: "xs:string", Value: v})
		}
		return a
	}
	attrs := []crewjam.Attribute{attr(AttrFirstName, p.GivenName), attr(AttrLastName, p.FamilyName), attr(AttrEmail, p.Email)}
	if len(p.Groups) > 0 {
		attrs = append(attrs, attr(AttrGroups, p.Groups...))
	}
	return &crewjam.Session{
		ID:               randomHex(32),
		CreateTime:       now,
		ExpireTime:       now.Add(sessionTTL),
		Index:            randomHex(32),
		NameID:           p.Email,
		NameIDFormat:     string(crewjam.UnspecifiedNameIDFormat),
		CustomAttributes: attrs,
	}
}

// servePick records the person chosen on the picker and sends the browser
// back to the SSO request it came from.
func (i *IdP) servePick(w http.ResponseWriter, r *http.Request) {
	if err := http.NewCrossOriginProtection().Check(r); err != nil {
		i.renderError(w, http.StatusForbidden, "This sign-in form must be posted from the Okta stand-in's own page.")
		return
	}
	if err := r.ParseForm(); err != nil {
		i.renderError(w, http.StatusBadRequest, "The sign-in form is malformed.")
		return
	}
	personID, query := r.PostForm.Get("person"), r.PostForm.Get("request")
	if _, err := i.dir.Get(personID); err != nil {
		i.renderError(w, http.StatusBadRequest, "Pick a person from the list.")
		return
	}
	if _, err := url.ParseQuery(query); err != nil || query == "" {
		i.renderError(w, http.StatusBadRequest, "The sign-in request is missing; start again from Gatehouse's login page.")
		return
	}
	token := randomHex(32)
	i.mu.Lock()
	now := i.clock.Now()
	for k, v := range i.picks {
		if now.After(v.expires) {
			delete(i.picks, k)
		}
	}
	i.picks[token] = pick{person: personID, expires: now.Add(pickTTL)}
	i.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: pickCookie, Value: token, Path: pathSSO, MaxAge: int(pickTTL.Seconds()), HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, pathSSO+"?"+query, http.StatusSeeOther)
}

func (i *IdP) takePick(token string) (string, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	p, ok := i.picks[token]
	delete(i.picks, token)
	if !ok || i.clock.Now().After(p.expires) {
		return "", false
	}
	return p.person, true
}

func clearPick(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: pickCookie, Path: pathSSO, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func (i *IdP) onError(w http.ResponseWriter, _ *http.Request, status int, err error) {
	i.log.Warn("SAML request refused", "status", status, "error", err)
	if errors.Is(err, crewjam.ErrExpired) {
		// SAML requests live 90 s; a person reading the picker can take
		// longer. The choice is dropped with the request: start over.
		clearPick(w)
		render(w, i.log, status, "error", errorPage{
			Text:     "This sign-in request has expired: a SAML request is valid for 90 seconds. Start again from Gatehouse's login page.",
			Link:     i.restart,
			LinkText: "Back to Gatehouse's login page",
		})
		return
	}
	i.renderError(w, status, "The sign-in request was refused: "+err.Error())
}

// LoadOrCreateSigningKey returns the IdP's signing key and self-signed
// certificate from dir, creating them on first use, so that Gatehouse's
// connector keeps trusting the stand-in across restarts.
func LoadOrCreateSigningKey(dir string, now time.Time) (*rsa.PrivateKey, *x509.Certificate, error) {
	keyPath, certPath := filepath.Join(dir, "idp-key.pem"), filepath.Join(dir, "idp-cert.pem")
	keyPEM, kerr := os.ReadFile(keyPath)
	certPEM, cerr := os.ReadFile(certPath)
	if kerr == nil && cerr == nil {
		kb, _ := pem.Decode(keyPEM)
		cb, _ := pem.Decode(certPEM)
		if kb == nil || cb == nil {
			return nil, nil, trace.BadParameter("%s or %s is not PEM: delete both to make new ones", keyPath, certPath)
		}
		key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
		if err != nil {
			return nil, nil, trace.BadParameter("%s: %v", keyPath, err)
		}
		cert, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			return nil, nil, trace.BadParameter("%s: %v", certPath, err)
		}
		if now.Before(cert.NotAfter.Add(-24 * time.Hour)) {
			return key, cert, nil
		}
		// Expiring: make a new pair; setup updates the connector.
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "Okta stand-in (Gatehouse demo)"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, trace.ConvertSystemError(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return nil, nil, trace.ConvertSystemError(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, trace.ConvertSystemError(err)
	}
	return key, cert, nil
}
