// Package scimerr is the one place where Gatehouse SCIM errors are typed and written.
//
// Every failure the SCIM server reports travels as an *Error carrying the HTTP status and, where
// RFC 7644 §3.12 names one, a scimType. Write turns any error into the SCIM error body so that a
// client (Okta in particular) always receives JSON it can parse, and never internal detail.
package scimerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gravitational/trace"
)

// ErrorSchema is the schema URN of a SCIM error message (RFC 7644 §3.12).
const ErrorSchema = "urn:ietf:params:scim:api:messages:2.0:Error"

// ContentType is the media type of every SCIM response body.
const ContentType = "application/scim+json"

// scimType values named by RFC 7644 §3.12.
const (
	InvalidFilter = "invalidFilter"
	TooMany       = "tooMany"
	Uniqueness    = "uniqueness"
	Mutability    = "mutability"
	InvalidSyntax = "invalidSyntax"
	InvalidPath   = "invalidPath"
	NoTarget      = "noTarget"
	InvalidValue  = "invalidValue"
	InvalidVers   = "invalidVers"
	Sensitive     = "sensitive"
)

// internalDetail is the only detail a 5xx answer ever carries.
const internalDetail = "internal error"

// Error is a SCIM protocol error: an HTTP status, an optional scimType and a detail that is safe to
// show the client.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// ScimType is the RFC 7644 §3.12 error keyword, empty when the RFC names none.
	ScimType string
	// Detail is a human-readable message for the client. It must not carry internal detail.
	Detail string
	// RetryAfter, when positive, is sent as the Retry-After header (429 and 503 answers).
	RetryAfter time.Duration
}

// Error implements error.
func (e *Error) Error() string {
	if e.ScimType != "" {
		return fmt.Sprintf("scim %d %s: %s", e.Status, e.ScimType, e.Detail)
	}
	return fmt.Sprintf("scim %d: %s", e.Status, e.Detail)
}

// UnavailableRetryAfter is the Retry-After of the 503 answered while the storage is unreachable:
// long enough for an etcd leader election or a client failover to another member.
const UnavailableRetryAfter = 3 * time.Second

// New returns an error with the given status, scimType and formatted detail.
func New(status int, scimType, format string, args ...any) *Error {
	return &Error{Status: status, ScimType: scimType, Detail: fmt.Sprintf(format, args...)}
}

// BadRequest returns a 400 error with the given scimType.
func BadRequest(scimType, format string, args ...any) *Error {
	return New(http.StatusBadRequest, scimType, format, args...)
}

// NotFound returns a 404 error.
func NotFound(format string, args ...any) *Error {
	return New(http.StatusNotFound, "", format, args...)
}

// Conflict returns a 409 uniqueness error.
func Conflict(format string, args ...any) *Error {
	return New(http.StatusConflict, Uniqueness, format, args...)
}

// Unauthorized returns the 401 answer for a missing or bad bearer token. The detail is fixed: the
// caller is not authenticated and learns nothing else.
func Unauthorized() *Error {
	return New(http.StatusUnauthorized, "", "authentication required")
}

// TooManyRequests returns a 429 error that asks the client to retry after d.
func TooManyRequests(d time.Duration) *Error {
	e := New(http.StatusTooManyRequests, "", "too many requests")
	e.RetryAfter = d
	return e
}

// Internal returns a 500 error. Its detail is always "internal error".
func Internal() *Error {
	return New(http.StatusInternalServerError, "", internalDetail)
}

// From converts any error into an *Error. An *Error anywhere in the chain is returned as is; trace
// error kinds map to their SCIM meaning; anything else is a 500 whose detail says only
// "internal error". Messages of trace errors are authored by our services (`user "alice" not
// found`), so 4xx kinds keep them; kinds that could describe internals get a fixed text.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	switch {
	case trace.IsNotFound(err):
		return NotFound("%s", safeMessage(err))
	case trace.IsAlreadyExists(err):
		return Conflict("%s", safeMessage(err))
	case trace.IsCompareFailed(err):
		// A failed conditional write: the resource changed since the client (or the server's own
		// read-modify-write) saw it. RFC 7644 §3.14 answers that with 412.
		return New(http.StatusPreconditionFailed, "", "resource has changed; fetch it and retry")
	case trace.IsBadParameter(err):
		return BadRequest(InvalidValue, "%s", safeMessage(err))
	case trace.IsAccessDenied(err):
		return New(http.StatusForbidden, "", "access denied")
	case trace.IsLimitExceeded(err):
		return TooManyRequests(time.Second)
	case trace.IsConnectionProblem(err):
		// The storage (etcd) is unreachable or has no leader: a transient condition that Okta
		// retries after Retry-After. The detail stays hidden like every 5xx.
		e := New(http.StatusServiceUnavailable, "", "storage unavailable")
		e.RetryAfter = UnavailableRetryAfter
		return e
	default:
		return Internal()
	}
}

// maxDetail bounds the detail so that a huge message never turns into a huge body.
const maxDetail = 512

func safeMessage(err error) string {
	msg := trace.UserMessage(err)
	if len(msg) > maxDetail {
		msg = msg[:maxDetail]
	}
	return msg
}

// serverFault reports whether status is a server's fault, whose detail could describe internals:
// every 5xx but 501, which answers a client asking for a feature the server does not have
// (RFC 7644 §3.11 /Me) and whose detail is ours to say.
func serverFault(status int) bool {
	return status >= 500 && status != http.StatusNotImplemented
}

// Body is the JSON shape of a SCIM error (RFC 7644 §3.12).
type Body struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail,omitempty"`
}

// BodyOf returns the body Write sends for e.
func BodyOf(e *Error) Body {
	detail := e.Detail
	if serverFault(e.Status) {
		detail = internalDetail
	}
	return Body{
		Schemas:  []string{ErrorSchema},
		Status:   strconv.Itoa(e.Status),
		ScimType: e.ScimType,
		Detail:   detail,
	}
}

// Write answers the request with the SCIM error body for err. 401 carries WWW-Authenticate: Bearer
// and 429/503 a Retry-After in whole seconds. A 5xx error is logged (with the original error, for the
// operator) on log when log is not nil; the client sees "internal error" only.
func Write(w http.ResponseWriter, log *slog.Logger, err error) {
	e := From(err)
	if e == nil {
		e = Internal()
	}
	if e.Status < 400 || e.Status > 599 {
		e = Internal()
	}
	if serverFault(e.Status) && log != nil {
		log.Error("SCIM request failed", "error", err)
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	if e.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="gatehouse-scim"`)
	}
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		secs := int64(math.Ceil(e.RetryAfter.Seconds()))
		if secs < 1 {
			secs = 1
		}
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	body, mErr := json.Marshal(BodyOf(e))
	if mErr != nil {
		body = []byte(`{"schemas":["` + ErrorSchema + `"],"status":"500","detail":"internal error"}`)
		e = Internal()
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}
