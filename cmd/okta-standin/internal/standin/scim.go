package standin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gravitational/trace"
)

// SCIM message schemas, as Okta writes them.
const (
	schemaUser     = "urn:ietf:params:scim:schemas:core:2.0:User"
	schemaGroup    = "urn:ietf:params:scim:schemas:core:2.0:Group"
	schemaPatchOp  = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	oktaUserAgent  = "Okta SCIM Client 1.0.0"
	scimMediaType  = "application/scim+json"
	scimBodyType   = "application/scim+json; charset=utf-8"
	maxSCIMAnswer  = 1 << 20
	scimCallBudget = 60 * time.Second // Okta waits up to 60 s for an answer
)

// SCIMConfig configures a SCIMClient.
type SCIMConfig struct {
	// BaseURL is the SCIM connector base URL, e.g.
	// https://localhost:3080/v1/webapi/scim/okta. Required.
	BaseURL string
	// Token is the bearer token Gatehouse issued. Required.
	Token string
	// HTTPClient speaks HTTPS to Gatehouse (trusting its certificate). Required.
	HTTPClient *http.Client
	// OnCall, if set, sees every call made (for the page's request log).
	OnCall func(Call)
}

// CheckAndSetDefaults validates the config.
func (c *SCIMConfig) CheckAndSetDefaults() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return trace.BadParameter("scim: BaseURL %q must be an https URL (Okta speaks SCIM only over HTTPS)", c.BaseURL)
	}
	if c.Token == "" {
		return trace.BadParameter("scim: missing Token")
	}
	if c.HTTPClient == nil {
		return trace.BadParameter("scim: missing HTTPClient")
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	return nil
}

// Call is one SCIM request and its answer, as the page's log shows it.
type Call struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	// Body is the request body sent (never contains the token).
	Body   string `json:"body,omitempty"`
	Status int    `json:"status"`
	// Err is the transport error or the SCIM error's detail.
	Err string `json:"error,omitempty"`
}

// SCIMClient sends the requests Okta's provisioning sends (see
// /work/shared/OKTA-SCIM.md): the same headers, bodies and sequences.
type SCIMClient struct {
	cfg SCIMConfig
}

// NewSCIMClient returns a client.
func NewSCIMClient(cfg SCIMConfig) (*SCIMClient, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &SCIMClient{cfg: cfg}, nil
}

// OktaUser is the user body Okta sends on create and on a profile PUT.
type OktaUser struct {
	Schemas     []string     `json:"schemas"`
	ID          string       `json:"id,omitempty"`
	UserName    string       `json:"userName"`
	Name        OktaName     `json:"name"`
	Emails      []OktaEmail  `json:"emails"`
	DisplayName string       `json:"displayName"`
	Locale      string       `json:"locale"`
	ExternalID  string       `json:"externalId"`
	Groups      []OktaMember `json:"groups"`
	Active      bool         `json:"active"`
	// Password is the placeholder Okta sends even with password sync off;
	// a server must neither store nor return it.
	Password string `json:"password,omitempty"`
	// Meta is echoed back on PUT as Okta does (it PUTs what it read).
	Meta json.RawMessage `json:"meta,omitempty"`
}

// OktaName is the SCIM name.
type OktaName struct {
	GivenName  string `json:"givenName"`
	FamilyName string `json:"familyName"`
}

// OktaEmail is one SCIM email.
type OktaEmail struct {
	Primary bool   `json:"primary"`
	Value   string `json:"value"`
	Type    string `json:"type"`
}

// OktaMember is a group member (or a user's group) reference; Okta sends no
// "type".
type OktaMember struct {
	Value   string `json:"value"`
	Display string `json:"display,omitempty"`
}

// NewOktaUser is the POST /Users body for p.
func NewOktaUser(p Person) OktaUser {
	return OktaUser{
		Schemas:     []string{schemaUser},
		UserName:    p.Email,
		Name:        OktaName{GivenName: p.GivenName, FamilyName: p.FamilyName},
		Emails:      []OktaEmail{{Primary: true, Value: p.Email, Type: "work"}},
		DisplayName: p.GivenName + " " + p.FamilyName,
		Locale:      "en-US",
		ExternalID:  p.OktaID,
		Groups:      []OktaMember{},
		Active:      true,
		// Okta's own placeholder: random per request, never a real password.
		Password: "placeholder-" + randomHex(8),
	}
}

type listResponse struct {
	TotalResults int               `json:"totalResults"`
	Resources    []json.RawMessage `json:"Resources"`
}

type idOnly struct {
	ID string `json:"id"`
}

// FindUser runs Okta's lookup before create: GET /Users?filter=userName eq
// "..."; it returns the id, or "" when there is no such user.
func (c *SCIMClient) FindUser(ctx context.Context, userName string) (string, error) {
	return c.findOne(ctx, "/Users?"+lookupQuery("userName", userName))
}

// FindGroup looks a pushed group up by displayName, as Okta does before
// pushing it.
func (c *SCIMClient) FindGroup(ctx context.Context, displayName string) (string, error) {
	return c.findOne(ctx, "/Groups?"+lookupQuery("displayName", displayName))
}

// lookupQuery is Okta's lookup query string, in Okta's order and encoding
// (%20 for spaces, not "+"):
// filter=userName%20eq%20%22jane%40example.com%22&startIndex=1&count=100.
func lookupQuery(attr, value string) string {
	filter := fmt.Sprintf("%s eq %q", attr, value)
	return "filter=" + strings.ReplaceAll(url.QueryEscape(filter), "+", "%20") + "&startIndex=1&count=100"
}

func (c *SCIMClient) findOne(ctx context.Context, path string) (string, error) {
	var list listResponse
	if err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK, &list); err != nil {
		return "", trace.Wrap(err)
	}
	if len(list.Resources) == 0 {
		return "", nil
	}
	var one idOnly
	if err := json.Unmarshal(list.Resources[0], &one); err != nil || one.ID == "" {
		return "", trace.BadParameter("scim: a listed resource has no id")
	}
	return one.ID, nil
}

// CreateUser is POST /Users; it returns the server-assigned id.
func (c *SCIMClient) CreateUser(ctx context.Context, u OktaUser) (string, error) {
	var out idOnly
	if err := c.do(ctx, http.MethodPost, "/Users", u, http.StatusCreated, &out); err != nil {
		return "", trace.Wrap(err)
	}
	if out.ID == "" {
		return "", trace.BadParameter("scim: POST /Users answered without an id")
	}
	return out.ID, nil
}

// SetActive is Okta's deactivation (unassign, deactivate) and reactivation:
// a PATCH without a path, replacing active.
func (c *SCIMClient) SetActive(ctx context.Context, id string, active bool) error {
	body := map[string]any{
		"schemas":    []string{schemaPatchOp},
		"Operations": []map[string]any{{"op": "replace", "value": map[string]any{"active": active}}},
	}
	return trace.Wrap(c.do(ctx, http.MethodPatch, "/Users/"+url.PathEscape(id), body, http.StatusOK, nil))
}

// PushProfile is Okta's profile update on a reassignment: GET /Users/{id},
// then PUT of the whole object as read, with the profile fields and active
// set from u.
func (c *SCIMClient) PushProfile(ctx context.Context, id string, u OktaUser) error {
	var cur map[string]any
	if err := c.do(ctx, http.MethodGet, "/Users/"+url.PathEscape(id), nil, http.StatusOK, &cur); err != nil {
		return trace.Wrap(err)
	}
	cur["userName"] = u.UserName
	cur["name"] = u.Name
	cur["emails"] = u.Emails
	cur["displayName"] = u.DisplayName
	cur["externalId"] = u.ExternalID
	cur["active"] = u.Active
	return trace.Wrap(c.do(ctx, http.MethodPut, "/Users/"+url.PathEscape(id), cur, http.StatusOK, nil))
}

// CreateGroup is Push Groups' POST /Groups with no members yet.
func (c *SCIMClient) CreateGroup(ctx context.Context, displayName string) (string, error) {
	body := map[string]any{"schemas": []string{schemaGroup}, "displayName": displayName, "members": []OktaMember{}}
	var out idOnly
	if err := c.do(ctx, http.MethodPost, "/Groups", body, http.StatusCreated, &out); err != nil {
		return "", trace.Wrap(err)
	}
	if out.ID == "" {
		return "", trace.BadParameter("scim: POST /Groups answered without an id")
	}
	return out.ID, nil
}

// GroupMembershipPatch is the body Okta sends for a membership change:
// removes by value filter, an add of the new members, and the path-less
// rename that every membership change carries.
func GroupMembershipPatch(groupID, displayName string, add []OktaMember, remove []string) map[string]any {
	ops := []map[string]any{}
	for _, id := range remove {
		ops = append(ops, map[string]any{"op": "remove", "path": fmt.Sprintf("members[value eq %q]", id)})
	}
	if len(add) > 0 {
		ops = append(ops, map[string]any{"op": "add", "path": "members", "value": add})
	}
	ops = append(ops, map[string]any{"op": "replace", "value": map[string]any{"id": groupID, "displayName": displayName}})
	return map[string]any{"schemas": []string{schemaPatchOp}, "Operations": ops}
}

// PatchGroupMembers changes a pushed group's members the way Okta does.
func (c *SCIMClient) PatchGroupMembers(ctx context.Context, groupID, displayName string, add []OktaMember, remove []string) error {
	body := GroupMembershipPatch(groupID, displayName, add, remove)
	// Okta answers 204 or 200 as the server likes; both are success.
	err := c.do(ctx, http.MethodPatch, "/Groups/"+url.PathEscape(groupID), body, http.StatusOK, nil)
	return trace.Wrap(err)
}

// do sends one request with Okta's headers and checks the status (200 also
// accepts 204); out, if set, receives the JSON answer.
func (c *SCIMClient) do(ctx context.Context, method, path string, body any, want int, out any) (err error) {
	call := Call{Time: time.Now(), Method: method, Path: path}
	defer func() {
		if err != nil && call.Err == "" {
			call.Err = trace.UserMessage(err)
		}
		if c.cfg.OnCall != nil {
			c.cfg.OnCall(call)
		}
	}()
	var rd io.Reader
	if body != nil {
		enc, err := json.Marshal(body)
		if err != nil {
			return trace.Wrap(err)
		}
		call.Body = redactPassword(enc)
		rd = bytes.NewReader(enc)
	}
	ctx, cancel := context.WithTimeout(ctx, scimCallBudget)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.BaseURL+path, rd)
	if err != nil {
		return trace.Wrap(err)
	}
	req.Header.Set("User-Agent", oktaUserAgent)
	req.Header.Set("Accept", scimMediaType)
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	if rd != nil {
		req.Header.Set("Content-Type", scimBodyType)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return trace.ConnectionProblem(err, "scim %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxSCIMAnswer))
	if err != nil {
		return trace.ConnectionProblem(err, "scim %s %s: reading the answer: %v", method, path, err)
	}
	call.Status = resp.StatusCode
	ok := resp.StatusCode == want || want == http.StatusOK && resp.StatusCode == http.StatusNoContent
	if !ok {
		var scimErr struct {
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(raw, &scimErr)
		call.Err = scimErr.Detail
		if call.Err == "" {
			call.Err = http.StatusText(resp.StatusCode)
		}
		return trace.BadParameter("scim %s %s: HTTP %d: %s", method, path, resp.StatusCode, call.Err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return trace.BadParameter("scim %s %s: the answer is not JSON: %v", method, path, err)
		}
	}
	return nil
}

// redactPassword hides the password placeholder in the logged body: it is
// meaningless, but a log that shows any password field invites copying.
func redactPassword(body []byte) string {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return string(body)
	}
	if _, ok := m["password"]; !ok {
		return string(body)
	}
	m["password"] = "(placeholder, not logged)"
	out, err := json.Marshal(m)
	if err != nil {
		return string(body)
	}
	return string(out)
}
