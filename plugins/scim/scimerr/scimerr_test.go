package scimerr

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		err      error
		status   int
		scimType string
		detail   string
		header   map[string]string
	}{
		{"scim error", BadRequest(InvalidFilter, "bad filter"), 400, InvalidFilter, "bad filter", nil},
		{"wrapped scim error", trace.Wrap(Conflict("user exists")), 409, Uniqueness, "user exists", nil},
		{"not found", trace.NotFound(`user "alice" not found`), 404, "", `user "alice" not found`, nil},
		{"already exists", trace.AlreadyExists("dup"), 409, Uniqueness, "dup", nil},
		{"compare failed", trace.CompareFailed("rev 3 != 4 in backend key /x"), 412, "", "resource has changed; fetch it and retry", nil},
		{"bad parameter", trace.BadParameter("userName is required"), 400, InvalidValue, "userName is required", nil},
		{"access denied", trace.AccessDenied("role x lacks verb y"), 403, "", "access denied", nil},
		{"limit", trace.LimitExceeded("slow down"), 429, "", "too many requests", map[string]string{"Retry-After": "1"}},
		{"retry after", TooManyRequests(2500 * time.Millisecond), 429, "", "too many requests", map[string]string{"Retry-After": "3"}},
		{"internal", errors.New("sqlite: disk I/O error at /var/lib/x"), 500, "", "internal error", nil},
		{"storage unavailable", trace.Wrap(trace.ConnectionProblem(nil, "etcd at 10.0.0.1 did not answer")), 503, "", "internal error", map[string]string{"Retry-After": "3"}},
		{"5xx scim error hides detail", New(503, "", "etcd down at 10.0.0.1"), 503, "", "internal error", nil},
		{"not implemented keeps its detail", New(501, "", "/Me is not supported"), 501, "", "/Me is not supported", nil},
		{"unauthorized", Unauthorized(), 401, "", "authentication required", map[string]string{"WWW-Authenticate": `Bearer realm="gatehouse-scim"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			Write(rec, nil, tc.err)
			require.Equal(t, tc.status, rec.Code)
			require.Equal(t, ContentType, rec.Header().Get("Content-Type"))
			for k, v := range tc.header {
				require.Equal(t, v, rec.Header().Get(k))
			}
			var raw map[string]any
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
			require.Equal(t, []any{ErrorSchema}, raw["schemas"])
			require.Equal(t, http.StatusText(tc.status) != "", true)
			require.IsType(t, "", raw["status"], "status must be a JSON string")
			require.Equal(t, tc.detail, raw["detail"])
			if tc.scimType == "" {
				require.NotContains(t, raw, "scimType")
			} else {
				require.Equal(t, tc.scimType, raw["scimType"])
			}
		})
	}
}
