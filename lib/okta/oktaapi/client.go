// Package oktaapi is a small client of Okta's management API, for user sync:
// the users assigned to an app (GET /api/v1/apps/{appId}/users, with
// expand=user), groups and their members. It follows Link rel="next"
// pagination (same origin only), honours X-Rate-Limit-Remaining and
// X-Rate-Limit-Reset, backs off on 429 and 5xx with a cap, and authenticates
// with an API token (SSWS) or an OAuth 2.0 service app (client credentials
// with a private_key_jwt client assertion it signs itself).
//
// A page that is not a complete JSON array, a status other than 200, or a
// next link to another origin fails the whole listing: callers must never
// read a partial listing as the full set of assigned users.
package oktaapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/defaults"
)

// Defaults.
const (
	// DefaultPageLimit is the page size asked for; Okta's maximum for app
	// users is 500.
	DefaultPageLimit = 500
	// DefaultMaxRetries bounds retries of one request after 429 or 5xx.
	DefaultMaxRetries = 6
	// DefaultBaseBackoff is the first delay after a 5xx; it doubles.
	DefaultBaseBackoff = time.Second
	// DefaultMaxBackoff caps any single wait (backoff or rate-limit reset).
	DefaultMaxBackoff = time.Minute
	// DefaultRateLimitReserve is how many calls of the current window are
	// left to other clients of the org: below it, the client waits for the
	// window to reset.
	DefaultRateLimitReserve = 2
	// maxPageBytes bounds one response body.
	maxPageBytes = 32 << 20
	// maxPages bounds one listing (a next link that loops).
	maxPages = 100000
)

// Scopes are the OAuth scopes user sync needs.
const Scopes = "okta.users.read okta.apps.read okta.groups.read"

// LogsScope is the OAuth scope of the System Log, asked for too but not
// required: without it unassignments are seen only by full passes.
const LogsScope = "okta.logs.read"

// maxLogPageLimit is Okta's maximum page size for the System Log.
const maxLogPageLimit = 1000

// Config configures a Client.
type Config struct {
	// OrgURL is the org's origin, for example https://example.okta.com.
	OrgURL string
	// Credential authenticates requests. Required.
	Credential Credential
	// HTTPClient defaults to one with a 60 s timeout.
	HTTPClient *http.Client
	// PageLimit is the page size asked for; DefaultPageLimit if zero.
	PageLimit int
	// MaxRetries, BaseBackoff, MaxBackoff and RateLimitReserve: see the
	// defaults.
	MaxRetries       int
	BaseBackoff      time.Duration
	MaxBackoff       time.Duration
	RateLimitReserve int
	// OnResponse, if set, is told the status of every API call (0 when no
	// response came), for metrics.
	OnResponse func(endpoint string, status int)
	Clock      clockwork.Clock
	Logger     *slog.Logger
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	if c.Credential == nil {
		return trace.BadParameter("oktaapi: missing Credential")
	}
	u, err := url.Parse(strings.TrimSuffix(c.OrgURL, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return trace.BadParameter("oktaapi: org URL %q is not a URL such as https://example.okta.com", c.OrgURL)
	}
	c.OrgURL = u.Scheme + "://" + u.Host
	defaults.IfZero(&c.HTTPClient, &http.Client{Timeout: 60 * time.Second})
	if c.PageLimit <= 0 || c.PageLimit > 500 {
		c.PageLimit = DefaultPageLimit
	}
	defaults.IfNotPositive(&c.MaxRetries, DefaultMaxRetries)
	defaults.IfNotPositive(&c.BaseBackoff, DefaultBaseBackoff)
	defaults.IfNotPositive(&c.MaxBackoff, DefaultMaxBackoff)
	defaults.IfNotPositive(&c.RateLimitReserve, DefaultRateLimitReserve)
	defaults.Clock(&c.Clock)
	defaults.Logger(&c.Logger, "oktaapi")
	return nil
}

// Client calls one Okta org.
type Client struct {
	cfg    Config
	origin *url.URL
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	origin, _ := url.Parse(cfg.OrgURL)
	return &Client{cfg: cfg, origin: origin}, nil
}

// User is an Okta user (the fields user sync reads).
type User struct {
	ID          string          `json:"id"`
	Status      string          `json:"status"`
	LastUpdated time.Time       `json:"lastUpdated"`
	Profile     json.RawMessage `json:"profile"`
}

// Login is profile.login.
func (u *User) Login() string {
	var p struct {
		Login string `json:"login"`
	}
	_ = json.Unmarshal(u.Profile, &p)
	return p.Login
}

// AppUser is an app assignment, with the user embedded (expand=user).
type AppUser struct {
	ID          string    `json:"id"`
	Status      string    `json:"status"`
	Scope       string    `json:"scope"`
	LastUpdated time.Time `json:"lastUpdated"`
	Embedded    struct {
		User *User `json:"user"`
	} `json:"_embedded"`
}

// Group is an Okta group.
type Group struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Profile struct {
		Name string `json:"name"`
	} `json:"profile"`
}

// ListAppUsers calls fn with each page of the users assigned to appID, with
// their user objects. A non-zero since asks only for assignments updated
// after it (filter=lastUpdated gt). Any error stops the listing and is
// returned: the pages already passed to fn are all the caller may rely on.
func (c *Client) ListAppUsers(ctx context.Context, appID string, since time.Time, fn func([]AppUser) error) error {
	q := url.Values{}
	q.Set("limit", strconv.Itoa(c.cfg.PageLimit))
	q.Set("expand", "user")
	if !since.IsZero() {
		q.Set("filter", fmt.Sprintf("lastUpdated gt %q", since.UTC().Format("2006-01-02T15:04:05.000Z")))
	}
	first := c.cfg.OrgURL + "/api/v1/apps/" + url.PathEscape(appID) + "/users?" + q.Encode()
	return trace.Wrap(list(ctx, c, "apps.users", first, fn))
}

// CheckApp makes one call, the first page (of one user) of appID's
// assigned users, to tell whether the org, the app and the credential work:
// trace.AccessDenied for a refused credential or missing scope,
// trace.NotFound for an unknown app. It does not retry.
func (c *Client) CheckApp(ctx context.Context, appID string) error {
	first := c.cfg.OrgURL + "/api/v1/apps/" + url.PathEscape(appID) + "/users?limit=1"
	_, body, err := c.do(ctx, "apps.users", first)
	if err != nil {
		return trace.Wrap(err)
	}
	var page []AppUser
	if err := json.Unmarshal(body, &page); err != nil {
		return trace.BadParameter("Okta's answer is not a list of app users")
	}
	return nil
}

// ListGroups calls fn with each page of the org's groups whose name starts
// with query (all groups when query is empty).
func (c *Client) ListGroups(ctx context.Context, query string, fn func([]Group) error) error {
	q := url.Values{}
	q.Set("limit", strconv.Itoa(c.cfg.PageLimit))
	if query != "" {
		q.Set("q", query)
	}
	return trace.Wrap(list(ctx, c, "groups", c.cfg.OrgURL+"/api/v1/groups?"+q.Encode(), fn))
}

// ListGroupMembers calls fn with each page of the members of group id.
func (c *Client) ListGroupMembers(ctx context.Context, id string, fn func([]User) error) error {
	q := url.Values{}
	q.Set("limit", strconv.Itoa(c.cfg.PageLimit))
	first := c.cfg.OrgURL + "/api/v1/groups/" + url.PathEscape(id) + "/users?" + q.Encode()
	return trace.Wrap(list(ctx, c, "groups.users", first, fn))
}

// GetAppUser reads one app assignment with its user object (expand=user).
// An unassigned user is trace.NotFound (Okta answers 404 for it, as for an
// unknown app: callers that need the difference must know the app exists).
func (c *Client) GetAppUser(ctx context.Context, appID, userID string) (*AppUser, error) {
	u := c.cfg.OrgURL + "/api/v1/apps/" + url.PathEscape(appID) + "/users/" + url.PathEscape(userID) + "?expand=user"
	_, body, err := c.get(ctx, "apps.user", u)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	var au AppUser
	if err := json.Unmarshal(body, &au); err != nil {
		return nil, trace.BadParameter("Okta's answer for app user %s is not a complete app user object (%v)", userID, err)
	}
	return &au, nil
}

// GetUser reads one user.
func (c *Client) GetUser(ctx context.Context, userID string) (*User, error) {
	_, body, err := c.get(ctx, "users", c.cfg.OrgURL+"/api/v1/users/"+url.PathEscape(userID))
	if err != nil {
		return nil, trace.Wrap(err)
	}
	var u User
	if err := json.Unmarshal(body, &u); err != nil {
		return nil, trace.BadParameter("Okta's answer for user %s is not a complete user object (%v)", userID, err)
	}
	return &u, nil
}

// LogEvent is a System Log event (the fields user sync reads).
type LogEvent struct {
	UUID      string      `json:"uuid"`
	Published time.Time   `json:"published"`
	EventType string      `json:"eventType"`
	Outcome   LogOutcome  `json:"outcome"`
	Target    []LogTarget `json:"target"`
}

// LogOutcome is an event's outcome.
type LogOutcome struct {
	Result string `json:"result"`
}

// LogTarget is one of an event's targets.
type LogTarget struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	AlternateID string `json:"alternateId"`
	DisplayName string `json:"displayName"`
}

// ListLogEvents calls fn with each page of the System Log events published
// since since that match filter (Okta's filter syntax), oldest first. It
// is a polling query (no until): Okta always sends a next link, so the
// listing ends at the first empty page. A 403 (no okta.logs.read, or an
// admin role that may not read the log) is trace.AccessDenied.
func (c *Client) ListLogEvents(ctx context.Context, since time.Time, filter string, fn func([]LogEvent) error) error {
	q := url.Values{}
	q.Set("since", since.UTC().Format("2006-01-02T15:04:05.000Z"))
	q.Set("sortOrder", "ASCENDING")
	q.Set("limit", strconv.Itoa(min(2*c.cfg.PageLimit, maxLogPageLimit)))
	if filter != "" {
		q.Set("filter", filter)
	}
	return trace.Wrap(listPages(ctx, c, "logs", c.cfg.OrgURL+"/api/v1/logs?"+q.Encode(), true, fn))
}

// list follows the pages of a listing from first.
func list[T any](ctx context.Context, c *Client, endpoint, first string, fn func([]T) error) error {
	return listPages(ctx, c, endpoint, first, false, fn)
}

// listPages follows the pages of a listing from first; stopOnEmpty ends it
// at the first empty page (for polling queries, whose next link never
// ends).
func listPages[T any](ctx context.Context, c *Client, endpoint, first string, stopOnEmpty bool, fn func([]T) error) error {
	next := first
	for range maxPages {
		resp, body, err := c.get(ctx, endpoint, next)
		if err != nil {
			return trace.Wrap(err)
		}
		var page []T
		if err := json.Unmarshal(body, &page); err != nil {
			return trace.BadParameter("Okta answered %s with a page that is not a complete JSON array (%v): the listing is incomplete", endpoint, err)
		}
		if stopOnEmpty && len(page) == 0 {
			return nil
		}
		if err := fn(page); err != nil {
			return trace.Wrap(err)
		}
		link, err := c.nextLink(resp.Header)
		if err != nil {
			return trace.Wrap(err)
		}
		if link == "" {
			return nil
		}
		next = link
	}
	return trace.LimitExceeded("Okta listing %s went on for more than %d pages", endpoint, maxPages)
}

// nextLink returns the rel="next" link, refusing one to another origin (a
// credential must only ever be sent to the org).
func (c *Client) nextLink(h http.Header) (string, error) {
	for _, v := range h.Values("Link") {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			end := strings.Index(part, ">")
			if !strings.HasPrefix(part, "<") || end < 0 {
				continue
			}
			isNext := false
			for _, param := range strings.Split(part[end+1:], ";") {
				param = strings.TrimSpace(param)
				if param == `rel="next"` || param == "rel=next" {
					isNext = true
				}
			}
			if !isNext {
				continue
			}
			u, err := c.origin.Parse(part[1:end])
			if err != nil {
				return "", trace.BadParameter("Okta sent a next link that is not a URL")
			}
			if u.Scheme != c.origin.Scheme || u.Host != c.origin.Host {
				return "", trace.BadParameter("Okta sent a next link to another origin (%s://%s); refusing to follow it", u.Scheme, u.Host)
			}
			return u.String(), nil
		}
	}
	return "", nil
}

// StatusError is a non-200 answer from Okta.
type StatusError struct {
	Status  int
	Summary string
}

func (e *StatusError) Error() string {
	if e.Summary != "" {
		return fmt.Sprintf("Okta answered %d: %s", e.Status, e.Summary)
	}
	return fmt.Sprintf("Okta answered %d", e.Status)
}

// get does one GET with retries, returning the 200 response's body.
func (c *Client) get(ctx context.Context, endpoint, rawURL string) (*http.Response, []byte, error) {
	backoff := c.cfg.BaseBackoff
	var lastErr error
	for attempt := 0; attempt <= c.cfg.MaxRetries; attempt++ {
		resp, body, err := c.do(ctx, endpoint, rawURL)
		if err == nil {
			c.waitRateLimit(ctx, resp)
			return resp, body, nil
		}
		if ctx.Err() != nil {
			return nil, nil, trace.Wrap(ctx.Err())
		}
		if resp == nil && trace.IsAccessDenied(err) {
			// The credential was refused at the token endpoint.
			return nil, nil, trace.Wrap(err)
		}
		lastErr = err
		var wait time.Duration
		switch {
		case resp != nil && resp.StatusCode == http.StatusTooManyRequests:
			wait = c.resetWait(resp)
			if wait <= 0 {
				wait = backoff
			}
		case resp == nil || resp.StatusCode >= 500:
			wait = backoff
		default:
			// 4xx other than 429: retrying will not help.
			return nil, nil, trace.Wrap(err)
		}
		wait = min(wait, c.cfg.MaxBackoff)
		backoff = min(2*backoff, c.cfg.MaxBackoff)
		if attempt == c.cfg.MaxRetries {
			break
		}
		c.cfg.Logger.InfoContext(ctx, "Okta call failed; retrying.", "endpoint", endpoint, "error", err, "wait", wait)
		select {
		case <-ctx.Done():
			return nil, nil, trace.Wrap(ctx.Err())
		case <-c.cfg.Clock.After(wait):
		}
	}
	return nil, nil, trace.LimitExceeded("Okta call %s still failing after %d retries: %v", endpoint, c.cfg.MaxRetries, lastErr)
}

// do makes one call. The response is returned with errors too, for its
// status and headers; its body is already read and closed.
func (c *Client) do(ctx context.Context, endpoint, rawURL string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	req.Header.Set("Accept", "application/json")
	if err := c.cfg.Credential.authorize(ctx, c, req); err != nil {
		c.report(endpoint, 0)
		return nil, nil, trace.Wrap(err)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		c.report(endpoint, 0)
		return nil, nil, trace.ConnectionProblem(err, "calling Okta %s: %v", endpoint, redactURLError(err))
	}
	defer resp.Body.Close()
	c.report(endpoint, resp.StatusCode)
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes+1))
	if err != nil {
		return resp, nil, trace.ConnectionProblem(err, "reading Okta's answer to %s: %v", endpoint, err)
	}
	if len(body) > maxPageBytes {
		return resp, nil, trace.LimitExceeded("Okta's answer to %s is over %d bytes", endpoint, maxPageBytes)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			ErrorSummary string `json:"errorSummary"`
		}
		_ = json.Unmarshal(body, &e)
		summary := e.ErrorSummary
		if len(summary) > 200 {
			summary = summary[:200]
		}
		serr := &StatusError{Status: resp.StatusCode, Summary: summary}
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return resp, nil, trace.AccessDenied("%v (check the credential and its scopes: %s)", serr, Scopes)
		case http.StatusNotFound:
			return resp, nil, trace.NotFound("%v", serr)
		}
		return resp, nil, trace.Wrap(serr)
	}
	return resp, body, nil
}

func (c *Client) report(endpoint string, status int) {
	if c.cfg.OnResponse != nil {
		c.cfg.OnResponse(endpoint, status)
	}
}

// resetWait is the time until X-Rate-Limit-Reset (epoch seconds), measured
// against the response's Date when there is one (the clocks of Okta and
// this server may differ).
func (c *Client) resetWait(resp *http.Response) time.Duration {
	reset, err := strconv.ParseInt(resp.Header.Get("X-Rate-Limit-Reset"), 10, 64)
	if err != nil {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			return time.Duration(s) * time.Second
		}
		return 0
	}
	now := c.cfg.Clock.Now()
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		now = d
	}
	return time.Unix(reset, 0).Sub(now) + time.Second
}

// waitRateLimit waits for the window to reset when the calls left in it are
// at or below the reserve.
func (c *Client) waitRateLimit(ctx context.Context, resp *http.Response) {
	remaining, err := strconv.Atoi(resp.Header.Get("X-Rate-Limit-Remaining"))
	if err != nil || remaining > c.cfg.RateLimitReserve {
		return
	}
	wait := min(c.resetWait(resp), c.cfg.MaxBackoff)
	if wait <= 0 {
		return
	}
	c.cfg.Logger.InfoContext(ctx, "Okta rate limit nearly used up; waiting for the window to reset.", "remaining", remaining, "wait", wait)
	select {
	case <-ctx.Done():
	case <-c.cfg.Clock.After(wait):
	}
}

// redactURLError drops the URL from a transport error: it is the org's and
// holds no secret, but keep messages short.
func redactURLError(err error) error {
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
