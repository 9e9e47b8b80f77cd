package integration

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/saml"
	"github.com/gatehouse/gatehouse/lib/auth/saml/samltest"
	"github.com/gatehouse/gatehouse/lib/web"
	"github.com/gatehouse/gatehouse/lib/web/sso"
)

// TestSAMLAttacks is an attacker's review of SAML sign-in on the real
// binary (SQLite, the default storage). The attacker can reach the ACS,
// holds valid assertions of their own (mallory, whose IdP email is
// alice@example.com.evil), can replay or edit captured ones, controls a
// second IdP, and for the responses "the IdP really signed, but not for
// this login" (another service provider's audience, an expired one...) the
// test signs with the IdP's own key, to show that only the rule under test
// refuses them: the same response re-signed without the edit is accepted.
//
// Every refusal must be a clear 4xx naming the reason, set no session
// cookie, leave no session, be audited (saml.login, denied, with the
// library's detail and the source address), and log no secret. Each attack
// posts from its own loopback address (127.0.0.N), so that the per-source
// failure limiter and the per-source aggregation of the audit events of
// failed posts (issue 10) do not blur one attack into another.
func TestSAMLAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	top := t // the restarted server must outlive the subtest that starts it
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	srv, logs := startGatehouseWithLogs(t, gatehouseBin, dataDir)
	gatectl, admin := gatectlOn(t, gatectlBin, dataDir)
	acsURL := "https://" + srv.webAddr + "/v1/webapi/saml/acs/okta"

	idp := samltest.NewIdP(t, samltest.Options{})
	token := ssoSetup(t, srv, admin, idp, work)
	scim := newSCIMClient(t, srv, "okta", token, 2)
	idp.AddUser(t, "mallory", "alice@example.com.evil", "mallory-password", "admins")
	idp.AddUser(t, "bob", "bob@example.com", "bob-password", "admins")
	idp.AddUser(t, "dan", "dan@example.com", "dan-password", "admins")

	a := &attacker{srv: srv, idp: idp}
	// mallory's own, genuine IdP-initiated response: what the attacker holds.
	own := func(t *testing.T) string {
		t.Helper()
		idp.Login(t, "mallory", "mallory-password")
		return idp.IdPInitiated(t, acsURL).SAMLResponse
	}

	t.Run("replayed IdP-initiated response", func(t *testing.T) {
		resp := own(t)
		first := a.from(t)
		first.post("okta", resp, "").accepted(t, "alice@example.com.evil", sso.DefaultRedirect)
		// The same response from another browser, then from the first again.
		a.from(t).post("okta", resp, "").refused(t, http.StatusBadRequest, saml.ReasonReplayed, "already been used")
		first.post("okta", resp, "").refused(t, http.StatusBadRequest, saml.ReasonReplayed, "already been used")
		// The used assertion, its own signature intact, in a new unsigned
		// Response with a fresh ID: the assertion ID is what is used once.
		rewrapped := a.edit(t, resp, func(doc *etree.Document) {
			removeSignatures(doc.Root())
			doc.Root().CreateAttr("ID", "id-rewrapped")
		})
		a.from(t).post("okta", rewrapped, "").refused(t, http.StatusBadRequest, saml.ReasonReplayed, "already been used")
		// Another assertion the IdP signed under the used ID.
		usedID := mustAttr(t, resp, "./Response/Assertion", "ID")
		reused := a.resign(t, own(t), func(_, as *etree.Element) { as.CreateAttr("ID", usedID) })
		a.from(t).post("okta", reused, "").refused(t, http.StatusBadRequest, saml.ReasonReplayed, "already been used")
	})

	t.Run("replayed SP-initiated response", func(t *testing.T) {
		victim := a.from(t)
		form := victim.spForm("mallory", "mallory-password", "")
		victim.post("okta", form.SAMLResponse, form.RelayState).accepted(t, "alice@example.com.evil", sso.DefaultRedirect)
		// Again from the same browser: the request was answered, so the
		// response answers no login started here.
		victim.post("okta", form.SAMLResponse, form.RelayState).refused(t, http.StatusBadRequest, saml.ReasonRequest, "InResponseTo")
		// From another browser, with a login of its own under way (its
		// relay state and binding cookie): the response answers another
		// request.
		thief := a.from(t)
		relay := thief.startLogin("")
		thief.post("okta", form.SAMLResponse, relay).refused(t, http.StatusBadRequest, saml.ReasonRequest, "InResponseTo")
	})

	t.Run("InResponseTo of a request this server never made", func(t *testing.T) {
		forged := a.resign(t, own(t), func(resp, as *etree.Element) {
			resp.CreateAttr("InResponseTo", "id-never-sent")
			as.FindElement("./Subject/SubjectConfirmation/SubjectConfirmationData").CreateAttr("InResponseTo", "id-never-sent")
		})
		a.from(t).post("okta", forged, "").refused(t, http.StatusBadRequest, saml.ReasonRequest, "InResponseTo")
	})

	t.Run("unsolicited response to a connector without IdP-initiated login", func(t *testing.T) {
		strictACS := "https://" + srv.webAddr + "/v1/webapi/saml/acs/strict"
		admin("create", "-f", resourceFile(t, work, "strict", `kind: saml
version: v1
metadata:
  name: strict
spec:
  acs: `+strictACS+`
  disable_idp_initiated: true
  attributes_to_roles:
    - name: `+samltest.GroupsAttribute+`
      value: admins
      roles: [dev]
  entity_descriptor: |
`+indent(idp.MetadataXML(t), "    ")+"\n"))
		status, md := a.from(t).get("/v1/webapi/saml/metadata/strict")
		require.Equal(t, http.StatusOK, status, md)
		idp.RegisterSP(t, "strict", []byte(md))
		idp.Login(t, "mallory", "mallory-password")
		form := idp.IdPInitiated(t, strictACS)
		a.from(t).post("strict", form.SAMLResponse, "").refused(t, http.StatusForbidden, "IdP-initiated login is disabled", "disable_idp_initiated")
	})

	// Responses the IdP signed, but not for this login. The control is the
	// same response re-signed without an edit: accepted.
	now := func(d time.Duration) string { return time.Now().Add(d).UTC().Format("2006-01-02T15:04:05.000Z") }
	for _, tc := range []struct {
		name           string
		edit           func(resp, as *etree.Element)
		status         int
		reason, detail string
	}{
		{name: "control: re-signed, not edited", edit: func(_, _ *etree.Element) {}},
		{name: "NotBefore in the future within the allowed skew", edit: func(_, as *etree.Element) {
			as.FindElement("./Conditions").CreateAttr("NotBefore", now(time.Minute))
		}},
		{name: "audience of another service provider", edit: func(_, as *etree.Element) {
			as.FindElement("./Conditions/AudienceRestriction/Audience").SetText("https://other-app.example.com/saml")
		}, status: http.StatusBadRequest, reason: saml.ReasonAudience, detail: "AudienceRestriction"},
		{name: "Recipient of another ACS", edit: func(_, as *etree.Element) {
			as.FindElement("./Subject/SubjectConfirmation/SubjectConfirmationData").CreateAttr("Recipient", "https://other-app.example.com/acs")
		}, status: http.StatusBadRequest, reason: saml.ReasonDestination, detail: "Recipient"},
		{name: "Destination of another ACS", edit: func(resp, _ *etree.Element) {
			resp.CreateAttr("Destination", "https://other-app.example.com/acs")
		}, status: http.StatusBadRequest, reason: saml.ReasonDestination, detail: "Destination"},
		{name: "Conditions NotOnOrAfter passed", edit: func(_, as *etree.Element) {
			as.FindElement("./Conditions").CreateAttr("NotOnOrAfter", now(-10*time.Minute))
		}, status: http.StatusBadRequest, reason: saml.ReasonExpired, detail: "Conditions is expired"},
		{name: "SubjectConfirmationData NotOnOrAfter passed", edit: func(_, as *etree.Element) {
			as.FindElement("./Subject/SubjectConfirmation/SubjectConfirmationData").CreateAttr("NotOnOrAfter", now(-10*time.Minute))
		}, status: http.StatusBadRequest, reason: saml.ReasonExpired, detail: "SubjectConfirmationData is expired"},
		{name: "NotBefore beyond the allowed skew", edit: func(_, as *etree.Element) {
			as.FindElement("./Conditions").CreateAttr("NotBefore", now(10*time.Minute))
		}, status: http.StatusBadRequest, reason: saml.ReasonExpired, detail: "not yet valid"},
		{name: "no SubjectConfirmation", edit: func(_, as *etree.Element) {
			subject := as.FindElement("./Subject")
			subject.RemoveChild(subject.FindElement("./SubjectConfirmation"))
		}, status: http.StatusBadRequest, reason: saml.ReasonMalformed, detail: "no bearer SubjectConfirmation"},
	} {
		t.Run("IdP-signed: "+tc.name, func(t *testing.T) {
			r := a.from(t).post("okta", a.resign(t, own(t), tc.edit), "")
			if tc.status == 0 {
				r.accepted(t, "alice@example.com.evil", sso.DefaultRedirect)
				return
			}
			r.refused(t, tc.status, tc.reason, tc.detail)
		})
	}

	// Signatures: from here on the attacker has no IdP key. evilAssertion
	// is a copy of the signed assertion, unsigned, naming alice.
	evilAssertion := func(doc *etree.Document) (signed, evil *etree.Element) {
		signed = doc.FindElement("./Response/Assertion")
		evil = signed.Copy()
		removeSignatures(evil)
		evil.CreateAttr("ID", "id-injected")
		evil.FindElement("./Subject/NameID").SetText("alice@example.com")
		return signed, evil
	}
	t.Run("unsigned response and assertion", func(t *testing.T) {
		forged := a.edit(t, own(t), func(doc *etree.Document) {
			removeSignatures(doc.Root())
			removeSignatures(doc.FindElement("./Response/Assertion"))
		})
		a.from(t).post("okta", forged, "").refused(t, http.StatusBadRequest, saml.ReasonSignature, "signature")
	})
	t.Run("signed by another key under the IdP's name", func(t *testing.T) {
		impostor := samltest.NewIdP(t, samltest.Options{AsURL: idp.URL})
		impostor.AddUser(t, "mallory", "alice@example.com", "mallory-password", "admins")
		_, md := a.from(t).get("/v1/webapi/saml/metadata/okta")
		impostor.RegisterSP(t, "gatehouse", []byte(md))
		impostor.Login(t, "mallory", "mallory-password")
		form := impostor.IdPInitiated(t, acsURL)
		a.from(t).post("okta", form.SAMLResponse, "").refused(t, http.StatusBadRequest, saml.ReasonSignature, "")
	})
	t.Run("wrapping: an injected assertion beside the signed one", func(t *testing.T) {
		forged := a.edit(t, own(t), func(doc *etree.Document) {
			removeSignatures(doc.Root())
			signed, evil := evilAssertion(doc)
			doc.Root().InsertChildAt(signed.Index(), evil)
		})
		a.from(t).post("okta", forged, "").refused(t, http.StatusBadRequest, saml.ReasonMalformed, "exactly one Assertion")
	})
	t.Run("wrapping: the signed assertion inside the injected one", func(t *testing.T) {
		forged := a.edit(t, own(t), func(doc *etree.Document) {
			removeSignatures(doc.Root())
			signed, evil := evilAssertion(doc)
			doc.Root().InsertChildAt(signed.Index(), evil)
			doc.Root().RemoveChild(signed)
			evil.FindElement("./Subject").AddChild(signed)
		})
		a.from(t).post("okta", forged, "").refused(t, http.StatusBadRequest, saml.ReasonSignature, "signature")
	})
	t.Run("wrapping: the signed assertion hidden in Extensions", func(t *testing.T) {
		forged := a.edit(t, own(t), func(doc *etree.Document) {
			removeSignatures(doc.Root())
			signed, evil := evilAssertion(doc)
			doc.Root().InsertChildAt(signed.Index(), evil)
			doc.Root().RemoveChild(signed)
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(signed)
			doc.Root().InsertChildAt(evil.Index(), ext)
		})
		a.from(t).post("okta", forged, "").refused(t, http.StatusBadRequest, saml.ReasonSignature, "signature")
	})
	t.Run("signed response wrapping an edited assertion", func(t *testing.T) {
		forged := a.edit(t, own(t), func(doc *etree.Document) {
			as := doc.FindElement("./Response/Assertion")
			removeSignatures(as)
			as.FindElement("./Subject/NameID").SetText("alice@example.com")
		})
		a.from(t).post("okta", forged, "").refused(t, http.StatusBadRequest, saml.ReasonSignature, "Signature could not be verified")
	})
	t.Run("comment in the NameID does not truncate it", func(t *testing.T) {
		// Canonicalization drops comments, so both signatures still verify;
		// a reader that took the first text node would see alice's name.
		forged := a.edit(t, own(t), func(doc *etree.Document) {
			nameID := doc.FindElement("./Response/Assertion/Subject/NameID")
			require.Equal(t, "alice@example.com.evil", nameID.Text())
			nameID.SetText("alice@example.com")
			nameID.AddChild(etree.NewComment(""))
			nameID.CreateText(".evil")
		})
		require.Contains(t, mustDecode(t, forged), "alice@example.com<!---->.evil")
		a.from(t).post("okta", forged, "").accepted(t, "alice@example.com.evil", sso.DefaultRedirect)
		require.Contains(t, gatectl("get", "user/alice@example.com").stderr, "not found", "nobody signed in as alice")
	})
	t.Run("DOCTYPE before a genuine response", func(t *testing.T) {
		raw := mustDecode(t, own(t))
		forged := base64.StdEncoding.EncodeToString([]byte(`<!DOCTYPE r [<!ENTITY x "alice@example.com">]>` + raw))
		a.from(t).post("okta", forged, "").refused(t, http.StatusBadRequest, saml.ReasonMalformed, "<!DOCTYPE>")
	})
	t.Run("entity in the NameID", func(t *testing.T) {
		raw := strings.Replace(mustDecode(t, own(t)), ">alice@example.com.evil<", ">&x;<", 1)
		forged := base64.StdEncoding.EncodeToString([]byte(`<!DOCTYPE r [<!ENTITY x "alice@example.com">]>` + raw))
		a.from(t).post("okta", forged, "").refused(t, http.StatusBadRequest, saml.ReasonMalformed, "<!DOCTYPE>")
	})

	t.Run("encrypted assertion", func(t *testing.T) {
		// mallory's signed assertion, encrypted to the SP's certificate (not
		// secret, though the SP metadata does not list it, as Gatehouse
		// wants no encrypted assertion): refused, not decrypted.
		var conn struct {
			Spec struct {
				SigningKeyPair struct {
					Cert string `json:"cert"`
				} `json:"signing_key_pair"`
			} `json:"spec"`
		}
		out := admin("get", "saml/okta", "--format", "json").stdout
		require.NoError(t, json.Unmarshal([]byte(out), &conn), out)
		block, _ := pem.Decode([]byte(conn.Spec.SigningKeyPair.Cert))
		require.NotNil(t, block, out)
		cert, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
		forged := a.edit(t, own(t), func(doc *etree.Document) {
			removeSignatures(doc.Root())
			samltest.EncryptAssertion(t, doc, cert)
		})
		a.from(t).post("okta", forged, "").refused(t, http.StatusBadRequest, saml.ReasonEncrypted, "decrypt")
	})
	t.Run("a huge attribute quoted in the refusal", func(t *testing.T) {
		// Checked, and quoted, before any signature: no key needed. The
		// audit event and the log line stay small (checked at the end).
		forged := a.edit(t, own(t), func(doc *etree.Document) {
			removeSignatures(doc.Root())
			doc.Root().CreateAttr("Destination", "https://"+strings.Repeat("x", 100<<10))
		})
		a.from(t).post("okta", forged, "").refused(t, http.StatusBadRequest, saml.ReasonDestination, "more bytes)")
	})
	t.Run("the same response posted at once from many sources", func(t *testing.T) {
		resp := own(t)
		browsers := make([]*attackerBrowser, 8)
		for i := range browsers {
			browsers[i] = a.from(t)
		}
		results := make([]*acsResult, len(browsers))
		errs := make([]error, len(browsers))
		body := url.Values{"SAMLResponse": {resp}}.Encode()
		var wg sync.WaitGroup
		for i, b := range browsers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = b.try(http.MethodPost, "/v1/webapi/saml/acs/okta", "application/x-www-form-urlencoded", strings.NewReader(body))
			}()
		}
		wg.Wait()
		a.secrets = append(a.secrets, resp)
		accepted := 0
		for i, r := range results {
			require.NoError(t, errs[i])
			if r.status == http.StatusSeeOther {
				accepted++
				r.accepted(t, "alice@example.com.evil", sso.DefaultRedirect)
				continue
			}
			r.refused(t, http.StatusBadRequest, saml.ReasonReplayed, "already been used")
		}
		require.Equal(t, 1, accepted, "one response, one session")
	})
	t.Run("a second IdP names accounts it does not own", func(t *testing.T) {
		// The attacker controls the IdP of connector "evil" and picks any
		// NameID: an account of the okta connector (temporary or
		// SCIM-managed, in any spelling), a local account, the built-in
		// operator identity. Each is refused with the account untouched.
		evilIdP := samltest.NewIdP(t, samltest.Options{})
		evilACS := "https://" + a.srv.webAddr + "/v1/webapi/saml/acs/evil"
		admin("create", "-f", resourceFile(t, work, "evil", `kind: saml
version: v1
metadata:
  name: evil
spec:
  acs: `+evilACS+`
  attributes_to_roles:
    - name: `+samltest.GroupsAttribute+`
      value: admins
      roles: [dev]
  entity_descriptor: |
`+indent(evilIdP.MetadataXML(t), "    ")+"\n"))
		_, md := a.from(t).get("/v1/webapi/saml/metadata/evil")
		evilIdP.RegisterSP(t, "gatehouse", []byte(md))
		victim := a.from(t)
		form := victim.spForm("dan", "dan-password", "")
		victim.post("okta", form.SAMLResponse, form.RelayState).accepted(t, "dan@example.com", sso.DefaultRedirect)
		r := scim.do(http.MethodPost, "/Users", oktaUser("erin@example.com", "00uerin")).expect(t, http.StatusCreated)
		require.NotEmpty(t, r.body["id"])
		for _, tc := range []struct{ nameID, user, reason string }{
			{"dan@example.com", "dan@example.com", "belongs to saml connector"},
			{"DAN@Example.com", "dan@example.com", "belongs to saml connector"},
			{"erin@example.com", "erin@example.com", "is managed by"},
			{"admin", "admin", "local user"},
			{"@admin", "@admin", "built-in identity"},
		} {
			before := gatectl("get", "user/"+tc.nameID, "--format", "json")
			user := "u" + strings.NewReplacer("@", "", ".", "").Replace(strings.ToLower(tc.nameID))
			evilIdP.AddUser(t, user, tc.nameID, "pw", "admins")
			evilIdP.Login(t, user, "pw")
			form := evilIdP.IdPInitiated(t, evilACS)
			a.from(t).post("evil", form.SAMLResponse, "").deniedByLogin(t, htmlEscape(tc.reason))
			a.audited(tc.user, tc.reason)
			after := gatectl("get", "user/"+tc.nameID, "--format", "json")
			require.Equal(t, before.stdout, after.stdout, "%s is unchanged", tc.nameID)
		}
		// Its own user's response, posted to the okta connector.
		evilIdP.AddUser(t, "own", "own@example.com", "pw", "admins")
		evilIdP.Login(t, "own", "pw")
		form = evilIdP.IdPInitiated(t, evilACS)
		a.from(t).post("okta", form.SAMLResponse, "").refused(t, http.StatusBadRequest, saml.ReasonSignature, "")
	})
	t.Run("open redirects", func(t *testing.T) {
		for _, target := range []string{
			"https://evil.example.com/", "//evil.example.com/", "/\\evil.example.com", "\\\\evil.example.com",
			"/\t/evil.example.com", "https:evil.example.com", "javascript:alert(1)", "evil.example.com",
		} {
			p := a.from(t)
			resp := p.do(http.MethodGet, "/v1/webapi/saml/sso?connector_id=okta&redirect_url="+url.QueryEscape(target), "", nil)
			require.Equal(t, http.StatusBadRequest, resp.status, "redirect_url %q: %s", target, resp.body)
			require.Contains(t, resp.body, "redirect_url must be a path on this server")
			require.Empty(t, resp.location, "redirect_url %q", target)
		}
		// A RelayState is an opaque key, never a target: an IdP-initiated
		// response with a URL for a RelayState lands on the default page.
		p := a.from(t)
		p.post("okta", own(t), "https://evil.example.com/").accepted(t, "alice@example.com.evil", sso.DefaultRedirect)
		// A local path that cleans to "//host" would leave the site; it
		// lands on this server's /evil.example.com.
		p = a.from(t)
		form := p.spForm("mallory", "mallory-password", "/.//evil.example.com")
		p.post("okta", form.SAMLResponse, form.RelayState).accepted(t, "alice@example.com.evil", "/evil.example.com")
	})

	t.Run("garbage, oversized and mistyped posts", func(t *testing.T) {
		for _, tc := range []struct {
			name, contentType, body string
			status                  int
			reason                  string
		}{
			{"no SAMLResponse", "application/x-www-form-urlencoded", "RelayState=x", http.StatusBadRequest, saml.ReasonMalformed},
			{"not base64", "application/x-www-form-urlencoded", "SAMLResponse=%25%25%25not-base64", http.StatusBadRequest, saml.ReasonMalformed},
			{"base64 of garbage", "application/x-www-form-urlencoded", url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte("\x00\xff<samlp:Response"))}}.Encode(), http.StatusBadRequest, saml.ReasonMalformed},
			{"over the size limit", "application/x-www-form-urlencoded", "SAMLResponse=" + strings.Repeat("QUFB", (sso.MaxACSBody/4)+1024), http.StatusRequestEntityTooLarge, saml.ReasonTooLarge},
			{"JSON", "application/json", `{"SAMLResponse":"` + own(t) + `"}`, http.StatusUnsupportedMediaType, sso.ReasonContentType},
			{"multipart", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"SAMLResponse\"\r\n\r\n" + own(t) + "\r\n--x--\r\n", http.StatusUnsupportedMediaType, sso.ReasonContentType},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := a.from(t)
				r := p.do(http.MethodPost, "/v1/webapi/saml/acs/okta", tc.contentType, strings.NewReader(tc.body))
				r.refused(t, tc.status, tc.reason, "")
			})
		}
	})

	t.Run("a SCIM-deactivated user signs in through SAML again", func(t *testing.T) {
		r := scim.do(http.MethodPost, "/Users", oktaUser("bob@example.com", "00ubob")).expect(t, http.StatusCreated)
		id, _ := r.body["id"].(string)
		bob := a.from(t)
		form := bob.spForm("bob", "bob-password", "")
		bob.post("okta", form.SAMLResponse, form.RelayState).accepted(t, "bob@example.com", sso.DefaultRedirect)
		scim.do(http.MethodPatch, "/Users/"+id, patchBody(map[string]any{"op": "replace", "path": "active", "value": false})).expect(t, http.StatusOK)
		require.Contains(t, gatectl("get", "user/bob@example.com").stderr, "not found")

		form = bob.spForm("bob", "bob-password", "")
		bob.post("okta", form.SAMLResponse, form.RelayState).deniedByLogin(t, "deactivated in Okta")
		_, status, body := bob.person.sshCert(work, "bob")
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, status, "no certificate: %s", body)
		require.Contains(t, gatectl("get", "user/bob@example.com").stderr, "not found", "the refused login created no account")
		a.audited("bob@example.com", "deactivated in Okta")
	})

	t.Run("a user locked by name signs in through SAML again", func(t *testing.T) {
		dan := a.from(t)
		form := dan.spForm("dan", "dan-password", "")
		dan.post("okta", form.SAMLResponse, form.RelayState).accepted(t, "dan@example.com", sso.DefaultRedirect)
		before := gatectl("get", "user/dan@example.com", "--format", "json").stdout
		// Another spelling of the name: locks match canonical names.
		admin("create", "-f", resourceFile(t, work, "lock-dan", "kind: lock\nversion: v1\nmetadata:\n  name: stop-dan\nspec:\n  target:\n    user: Dan@Example.COM\n  message: laptop stolen\n"))
		require.Eventually(t, func() bool {
			status, _ := dan.get("/v1/webapi/sessions/current")
			return status != http.StatusOK
		}, 10*time.Second, 50*time.Millisecond, "the lock reaches the web listener")

		form = dan.spForm("dan", "dan-password", "")
		dan.post("okta", form.SAMLResponse, form.RelayState).deniedByLogin(t, "laptop stolen")
		_, status, body := dan.person.sshCert(work, "dan")
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, status, "no certificate: %s", body)
		require.Equal(t, before, gatectl("get", "user/dan@example.com", "--format", "json").stdout, "the refused login changed nothing")
		a.audited("dan@example.com", "laptop stolen")
	})

	t.Run("replay after a restart", func(t *testing.T) {
		// Two genuine responses: the first used before the restart, the
		// second kept. MaxIssueDelay (90s) bounds how long both are valid,
		// and so how long their replay records must live.
		used, kept := own(t), own(t)
		a.from(t).post("okta", used, "").accepted(t, "alice@example.com.evil", sso.DefaultRedirect)
		srv.stop(t)
		srv = startGatehouse(top, gatehouseBin, dataDir, logs)
		a.srv = srv
		a.from(t).post("okta", used, "").refused(t, http.StatusBadRequest, saml.ReasonReplayed, "already been used")
		// The restarted server accepts a valid response it has not seen:
		// the refusal above is the replay record, not the restart.
		a.from(t).post("okta", kept, "").accepted(t, "alice@example.com.evil", sso.DefaultRedirect)
	})

	t.Run("every refusal is audited", func(t *testing.T) {
		a.checkAudit(t, admin)
	})
	t.Run("no secret in the logs", func(t *testing.T) {
		out := logs.String()
		require.NotEmpty(t, a.secrets)
		for _, s := range a.secrets {
			require.NotContains(t, out, s)
		}
		for _, line := range strings.Split(out, "\n") {
			require.Less(t, len(line), 2<<10, "no post makes a large log line: %.200s", line)
		}
	})
}

// attacker posts from a fresh loopback source for every browser it opens,
// and records what each refusal must have left in the audit log and what
// must never reach the server's log.
type attacker struct {
	srv  *server
	idp  *samltest.IdP
	next int
	// want are the refusals the audit log must show, by source.
	want []auditWant
	// secrets must never appear in the server's log: SAMLResponses,
	// signature values, session and binding cookies.
	secrets []string
}

type auditWant struct {
	source, user, fragment string
}

// attackerBrowser is one person's browser at one source address.
type attackerBrowser struct {
	*person
	t      *testing.T
	a      *attacker
	source string
	// signedIn is set once a post of this browser was accepted: it holds
	// a session that a later refusal leaves alone.
	signedIn bool
}

// from opens a browser at a source address no other browser used.
func (a *attacker) from(t *testing.T) *attackerBrowser {
	t.Helper()
	a.next++
	require.Less(t, a.next, 250)
	source := fmt.Sprintf("127.0.0.%d", 10+a.next)
	p := newPerson(t, a.srv)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 10 * time.Second}
	p.c.Transport.(*http.Transport).DialContext = d.DialContext
	return &attackerBrowser{person: p, t: t, a: a, source: source}
}

// acsResult is the server's answer to one request, redirects not followed.
type acsResult struct {
	b              *attackerBrowser
	status         int
	body, location string
	cookies        []*http.Cookie
}

func (b *attackerBrowser) do(method, path, contentType string, body io.Reader) *acsResult {
	b.t.Helper()
	r, err := b.try(method, path, contentType, body)
	require.NoError(b.t, err)
	return r
}

// try is do without failing the test, for other goroutines than the test's.
func (b *attackerBrowser) try(method, path, contentType string, body io.Reader) (*acsResult, error) {
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	c := *b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &acsResult{b: b, status: resp.StatusCode, body: string(raw), location: resp.Header.Get("Location"), cookies: resp.Cookies()}, nil
}

// post posts a SAMLResponse to connector's ACS as the IdP's form would.
func (b *attackerBrowser) post(connector, samlResponse, relayState string) *acsResult {
	b.t.Helper()
	b.a.secrets = append(b.a.secrets, samlResponse)
	if raw, err := base64.StdEncoding.DecodeString(samlResponse); err == nil {
		doc := etree.NewDocument()
		if doc.ReadFromBytes(raw) == nil {
			for _, sv := range doc.FindElements("//SignatureValue") {
				b.a.secrets = append(b.a.secrets, strings.TrimSpace(sv.Text()))
			}
		}
	}
	form := url.Values{"SAMLResponse": {samlResponse}}
	if relayState != "" {
		form.Set("RelayState", relayState)
	}
	return b.do(http.MethodPost, "/v1/webapi/saml/acs/"+connector, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
}

// startLogin starts an SP-initiated login and returns its relay state,
// without going to the IdP; the browser keeps the binding cookie.
func (b *attackerBrowser) startLogin(redirect string) string {
	t := b.t
	t.Helper()
	path := "/v1/webapi/saml/sso?connector_id=okta"
	if redirect != "" {
		path += "&redirect_url=" + url.QueryEscape(redirect)
	}
	r := b.do(http.MethodGet, path, "", nil)
	require.Equal(t, http.StatusFound, r.status, r.body)
	u, err := url.Parse(r.location)
	require.NoError(t, err)
	relay := u.Query().Get("RelayState")
	require.NotEmpty(t, relay)
	b.recordCookies()
	return relay
}

// spForm runs an SP-initiated login as user at the IdP up to the IdP's
// form, which it returns without posting it.
func (b *attackerBrowser) spForm(user, password, redirect string) samltest.Form {
	t := b.t
	t.Helper()
	resp, err := b.c.PostForm(b.a.idp.URL+"/login", url.Values{"user": {user}, "password": {password}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	path := "/v1/webapi/saml/sso?connector_id=okta"
	if redirect != "" {
		path += "&redirect_url=" + url.QueryEscape(redirect)
	}
	resp, err = b.c.Get(b.base + path)
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(page))
	b.recordCookies()
	return samltest.ParseForm(t, string(page))
}

// recordCookies adds the browser's Gatehouse cookies to the secrets.
func (b *attackerBrowser) recordCookies() {
	u, err := url.Parse(b.base + "/")
	require.NoError(b.t, err)
	for _, ck := range b.c.Jar.Cookies(u) {
		b.a.secrets = append(b.a.secrets, ck.Value)
	}
}

// accepted checks that the post signed user in and sent the browser to
// target.
func (r *acsResult) accepted(t *testing.T, user, target string) {
	t.Helper()
	require.Equal(t, http.StatusSeeOther, r.status, r.body)
	require.Equal(t, target, r.location)
	var session string
	for _, ck := range r.cookies {
		if ck.Name == web.SessionCookie {
			session = ck.Value
		}
	}
	require.NotEmpty(t, session, "a session cookie")
	r.b.signedIn = true
	r.b.recordCookies()
	var info struct {
		User string `json:"user"`
	}
	status, body := r.b.get("/v1/webapi/sessions/current")
	require.Equal(t, http.StatusOK, status, body)
	require.NoError(t, json.Unmarshal([]byte(body), &info))
	require.Equal(t, user, info.User)
}

// refused checks a refusal of the post itself (before any user is looked
// at): the status, the reason on the page, no session, and an audit event
// from the browser's source with detail in its message.
func (r *acsResult) refused(t *testing.T, status int, reason, detail string) {
	t.Helper()
	require.Equal(t, status, r.status, r.body)
	require.Contains(t, r.body, htmlEscape(reason))
	r.noSession(t)
	r.b.a.want = append(r.b.a.want, auditWant{source: r.b.source, fragment: detail})
}

// deniedByLogin checks a post that passed validation and was refused for
// its user (Login audits those itself, under the user).
func (r *acsResult) deniedByLogin(t *testing.T, message string) {
	t.Helper()
	require.Equal(t, http.StatusForbidden, r.status, r.body)
	require.Contains(t, r.body, message)
	r.noSession(t)
}

func (r *acsResult) noSession(t *testing.T) {
	t.Helper()
	require.Less(t, r.status, 500)
	for _, ck := range r.cookies {
		require.False(t, ck.Name == web.SessionCookie && ck.Value != "", "a refusal sets no session cookie")
	}
	if r.b.signedIn {
		return
	}
	// 401 without a session; 403 for one the browser held before that a
	// lock now refuses.
	status, body := r.b.get("/v1/webapi/sessions/current")
	require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, status, "no session after a refusal: %s", body)
}

// audited expects a saml.login event refusing user with message.
func (a *attacker) audited(user, message string) {
	a.want = append(a.want, auditWant{user: user, fragment: message})
}

// checkAudit finds, for every refusal, a saml.login event that is not a
// success: from its source (failed posts) or for its user (refused logins).
func (a *attacker) checkAudit(t *testing.T, admin func(args ...string) result) {
	t.Helper()
	var events []struct {
		User    string            `json:"user"`
		Outcome string            `json:"outcome"`
		Message string            `json:"message"`
		Fields  map[string]string `json:"fields"`
	}
	out := admin("events", "ls", "--type", saml.EventLogin, "--format", "json").stdout
	require.NoError(t, json.Unmarshal([]byte(out), &events), out)
	require.NotEmpty(t, a.want)
	for _, e := range events {
		require.Less(t, len(e.Message), 1<<10, "an unauthenticated post writes no large event: %.200s", e.Message)
	}
	for _, w := range a.want {
		found := false
		for _, e := range events {
			// denied for a refused response, failure for a body that is
			// no response at all (too large, not a form).
			if e.Outcome == "success" || !strings.Contains(e.Message, w.fragment) {
				continue
			}
			if (w.source != "" && e.Fields["remote_addr"] == w.source) || (w.user != "" && e.User == w.user) {
				found = true
				break
			}
		}
		require.True(t, found, "no refused %s event for %+v in:\n%s", saml.EventLogin, w, out)
	}
}

// edit returns the response b64 as f edits it, signed or not.
func (a *attacker) edit(t *testing.T, b64 string, f func(doc *etree.Document)) string {
	t.Helper()
	doc := etree.NewDocument()
	require.NoError(t, doc.ReadFromString(mustDecode(t, b64)))
	f(doc)
	out, err := doc.WriteToBytes()
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(out)
}

// mustAttr returns attribute attr of the element at path in response b64.
func mustAttr(t *testing.T, b64, path, attr string) string {
	t.Helper()
	doc := etree.NewDocument()
	require.NoError(t, doc.ReadFromString(mustDecode(t, b64)))
	el := doc.FindElement(path)
	require.NotNil(t, el, path)
	v := el.SelectAttrValue(attr, "")
	require.NotEmpty(t, v, "%s/@%s", path, attr)
	return v
}

// resign edits a genuine response and signs it again with the IdP's own
// key, as the IdP signs (assertion, then response): a response the IdP
// really issued, but not for this login.
func (a *attacker) resign(t *testing.T, b64 string, f func(resp, as *etree.Element)) string {
	t.Helper()
	doc := etree.NewDocument()
	require.NoError(t, doc.ReadFromBytes([]byte(mustDecode(t, b64))))
	resp := doc.Root()
	removeSignatures(resp)
	as := resp.FindElement("./Assertion")
	removeSignatures(as)
	f(resp, as)
	i := as.Index()
	resp.RemoveChildAt(i)
	resp.InsertChildAt(i, a.idpSign(t, as))
	doc.SetRoot(a.idpSign(t, resp))
	out, err := doc.WriteToBytes()
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(out)
}

// idpSign returns a copy of el with an enveloped signature by the IdP's
// key, placed after the Issuer as the SAML schema wants it.
func (a *attacker) idpSign(t *testing.T, el *etree.Element) *etree.Element {
	t.Helper()
	ctx, err := dsig.NewSigningContext(a.idp.Server.IDP.Signer, [][]byte{a.idp.Server.IDP.Certificate.Raw})
	require.NoError(t, err)
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	require.NoError(t, ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod))
	signed, err := ctx.SignEnveloped(el.Copy())
	require.NoError(t, err)
	children := signed.ChildElements()
	out := el.Copy()
	out.InsertChildAt(1, children[len(children)-1].Copy())
	return out
}

// removeSignatures removes el's own ds:Signature children.
func removeSignatures(el *etree.Element) {
	for _, c := range el.ChildElements() {
		if c.Tag == "Signature" {
			el.RemoveChild(c)
		}
	}
}

func mustDecode(t *testing.T, b64 string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	require.NoError(t, err)
	return string(raw)
}

// htmlEscape is what html/template makes of a reason on the error page.
func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}
