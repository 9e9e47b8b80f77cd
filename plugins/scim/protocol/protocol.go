// Package protocol holds the SCIM HTTP building blocks the Users/Groups handlers share: media
// types, body limits, list responses, paging and attribute projection (RFC 7644 §3.4.2, §3.9).
package protocol

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// ListResponseSchema is the schema URN of a list response.
const ListResponseSchema = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

// MaxBodyBytes is the largest request body accepted (413 beyond).
const MaxBodyBytes = 1 << 20

// MaxDrainBytes is how much of a refused body (413) the server reads and discards before it
// answers; see DrainBody.
const MaxDrainBytes = 4 << 20

// Paging defaults. MaxResults is what ServiceProviderConfig advertises as filter.maxResults.
const (
	DefaultCount = 100
	MaxResults   = 1000
)

// CheckContentType accepts application/scim+json and application/json, with any parameters
// (charset). Okta sends both. A request without a Content-Type is accepted: the body is parsed as
// JSON either way and refusing it would only break lax clients. Anything else is 415.
func CheckContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/scim+json" || mt == "application/json") {
		return nil
	}
	return scimerr.New(http.StatusUnsupportedMediaType, "",
		"Content-Type must be application/scim+json or application/json")
}

// ReadBody checks the content type and reads at most MaxBodyBytes of the body; a larger body is a
// 413 error.
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if err := CheckContentType(r); err != nil {
		return nil, err
	}
	body, err := readAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes), r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, scimerr.New(http.StatusRequestEntityTooLarge, "",
				"request body is larger than %d bytes", MaxBodyBytes)
		}
		return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "could not read the request body")
	}
	return body, nil
}

// maxPresizedBody bounds the buffer readAll makes before any byte has arrived: a client that
// announces a large body and sends it slowly must not get more memory than it has sent.
const maxPresizedBody = 64 << 10

// readAll is io.ReadAll with the buffer sized from the request's Content-Length (one byte
// more, to see the end without growing), up to maxPresizedBody: io.ReadAll starts at 512 bytes
// and grows, which took three or four allocations for a typical SCIM body. A body that is
// longer than that (or announced, or of unknown length) grows the buffer as io.ReadAll would;
// what is read and the error are io.ReadAll's.
func readAll(rd io.Reader, contentLength int64) ([]byte, error) {
	size := 512
	if contentLength >= 0 && contentLength < maxPresizedBody {
		size = int(contentLength) + 1
	}
	b := make([]byte, 0, size)
	for {
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// DrainBody reads and discards what is left of r's body, at most MaxDrainBytes and until timeout,
// before the server answers 413. A client that writes its whole body before it reads (curl,
// Python's http.client, most SCIM clients) is still sending when the answer is ready; if the
// server answered and closed at once, the client would see "connection reset" or "transfer
// closed" instead of the SCIM error. Once the body is read to its end, net/http keeps the
// connection (HTTP/1.1) or ends the stream cleanly (HTTP/2). A larger or slower body is left
// unread: net/http then closes the HTTP/1.1 connection after the answer, and resets the HTTP/2
// stream, so the server's cost stays bounded by the cap and the deadline. It reports whether the
// body was read to its end.
func DrainBody(w http.ResponseWriter, r *http.Request, timeout time.Duration) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	rc := http.NewResponseController(w)
	// A network deadline is wall-clock time by nature (the connection's own clock), hence
	// time.Now rather than the server's clockwork clock. ErrNotSupported (a test recorder) only
	// leaves the server's own read timeout in charge.
	_ = rc.SetReadDeadline(time.Now().Add(timeout))
	n, err := io.CopyN(io.Discard, r.Body, MaxDrainBytes+1)
	return n <= MaxDrainBytes && errors.Is(err, io.EOF)
}

// ExpectsContinue reports whether the client waits for "100 Continue" before it sends the body
// (RFC 9110 §10.1.1); until the body is read, it has sent nothing to drain.
func ExpectsContinue(r *http.Request) bool {
	return strings.EqualFold(strings.TrimSpace(r.Header.Get("Expect")), "100-continue")
}

// WriteJSON writes v as a SCIM response with the given status. Resources (map[string]any) and
// list responses are encoded directly into a pooled buffer; other values go through json.Marshal.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	var err error
	_, werr := WriteEncoded(w, status, func(buf []byte) ([]byte, bool) {
		switch t := v.(type) {
		case *ListResponse:
			buf, err = appendListResponse(buf, t)
		case map[string]any:
			buf, err = appendObject(buf, t)
		default:
			var b []byte
			b, err = json.Marshal(v)
			buf = append(buf, b...)
		}
		return buf, err == nil
	})
	if err != nil {
		return err
	}
	return werr
}

// WriteEncoded answers with the JSON body that encode appends to a pooled buffer (given empty),
// unless encode declines (ok false): then nothing is written and written is false, so that the
// caller can still answer another way.
func WriteEncoded(w http.ResponseWriter, status int, encode func(buf []byte) (body []byte, ok bool)) (written bool, err error) {
	bp := bufPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBuf {
			bufPool.Put(bp)
		}
	}()
	body, ok := encode((*bp)[:0])
	if cap(body) > cap(*bp) {
		*bp = body[:0]
	}
	if !ok {
		return false, nil
	}
	w.Header()["Content-Type"] = contentTypeValue
	w.WriteHeader(status)
	_, err = w.Write(body)
	return true, err
}

// Header values every response sets, made once: Header.Set allocates a new []string for each.
// Sharing them is safe because nothing writes a header value in place (net/http copies them
// when it clones a header), and each has len == cap, so an Add to the same header appends to a
// new array.
var (
	contentTypeValue = []string{scimerr.ContentType}
	noStoreValue     = []string{"no-store"}
)

// SetNoStore is h.Set("Cache-Control", "no-store") without allocating.
func SetNoStore(h http.Header) { h["Cache-Control"] = noStoreValue }

// ListResponse is the body of a query answer (RFC 7644 §3.4.2).
type ListResponse struct {
	Schemas      []string         `json:"schemas"`
	TotalResults int              `json:"totalResults"`
	StartIndex   int              `json:"startIndex"`
	ItemsPerPage int              `json:"itemsPerPage"`
	Resources    []map[string]any `json:"Resources"`
}

// NewListResponse builds a list response for one page. Resources is never null in JSON: Okta
// expects "Resources": [] when nothing matches.
func NewListResponse(total int, page Page, resources []map[string]any) *ListResponse {
	if resources == nil {
		resources = []map[string]any{}
	}
	return &ListResponse{
		Schemas:      []string{ListResponseSchema},
		TotalResults: total,
		StartIndex:   page.StartIndex,
		ItemsPerPage: len(resources),
		Resources:    resources,
	}
}

// Page is a requested page: 1-based StartIndex and Count (0 means "only totalResults").
type Page struct {
	StartIndex int
	Count      int
}

// Offset returns the 0-based offset of the page.
func (p Page) Offset() int { return p.StartIndex - 1 }

// maxQuickQueryParams bounds the queries Query parses itself; longer ones go to url.ParseQuery.
const maxQuickQueryParams = 8

// Query is u.Query() (url.ParseQuery of the raw query, its error ignored) in fewer
// allocations: for a short query without a semicolon (every query a SCIM client sends), the
// values share one array and the map is made at its size. Anything else is u.Query() itself.
// FuzzQueryMatchesURLQuery holds the two to the same values.
func Query(u *url.URL) url.Values {
	q := u.RawQuery
	n := strings.Count(q, "&") + 1
	if n > maxQuickQueryParams || strings.Contains(q, ";") {
		return u.Query()
	}
	m := make(url.Values, n)
	values := make([]string, 0, n)
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(key)
		if err != nil {
			continue
		}
		if value, err = url.QueryUnescape(value); err != nil {
			continue
		}
		if prev, ok := m[key]; ok {
			// prev's capacity ends at its length: this append copies it out of values.
			m[key] = append(prev, value)
			continue
		}
		values = append(values, value)
		m[key] = values[len(values)-1 : len(values) : len(values)]
	}
	return m
}

// ParsePage reads startIndex and count from the query with the RFC 7644 §3.4.2.4 rules: startIndex
// below 1 is 1, a negative count is 0, a missing count is DefaultCount, and count is capped at
// MaxResults. A value that is not an integer is 400 invalidValue.
func ParsePage(q url.Values) (Page, error) {
	p := Page{StartIndex: 1, Count: DefaultCount}
	if s := strings.TrimSpace(q.Get("startIndex")); s != "" {
		n, err := parseInt(s)
		if err != nil {
			return Page{}, scimerr.BadRequest(scimerr.InvalidValue, "startIndex must be an integer")
		}
		if n > 1 {
			p.StartIndex = n
		}
	}
	if s := strings.TrimSpace(q.Get("count")); s != "" {
		n, err := parseInt(s)
		if err != nil {
			return Page{}, scimerr.BadRequest(scimerr.InvalidValue, "count must be an integer")
		}
		p.Count = max(0, min(n, MaxResults))
	}
	return p, nil
}

// parseInt parses a decimal integer, saturating at the int range so that an absurd startIndex
// means "past the end" rather than an error.
func parseInt(s string) (int, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	var ne *strconv.NumError
	if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
		err = nil // ParseInt already saturated n
	}
	if err != nil {
		return 0, err
	}
	const maxInt = int64(^uint(0) >> 1)
	if n > maxInt/2 {
		n = maxInt / 2
	}
	return int(n), nil
}

// Slice returns the page of items (already in the stable order) and the total.
func Slice[T any](items []T, p Page) []T {
	off := p.Offset()
	if off >= len(items) || p.Count == 0 {
		return nil
	}
	end := len(items)
	if p.Count < end-off {
		end = off + p.Count
	}
	return items[off:end]
}
