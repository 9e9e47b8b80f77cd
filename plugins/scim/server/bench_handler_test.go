package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// lookupUserBody is a user as Okta creates it, with an enterprise extension and a group.
const lookupUserBody = `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],` +
	`"userName":"jane.doe@example.com","name":{"givenName":"Jane","familyName":"Doe <&>"},` +
	`"emails":[{"primary":true,"value":"jane.doe@example.com","type":"work"}],"displayName":"Jane Doe","locale":"en-US",` +
	`"externalId":"00u1abcd","password":"Pl@ceholder-1","phoneNumbers":[],` +
	`"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"42","costCenter":"CC \u2028 1"}}`

// newLookupServer is a server over the fake provisioner holding the user of lookupUserBody.
func newLookupServer(tb testing.TB) *Server {
	tb.Helper()
	fake := newFake()
	srv, err := New(Config{Users: fake, Groups: fake, Tokens: fake, Status: fake, Registerer: prometheus.NewRegistry(),
		DefaultRateLimit: 1 << 30, DefaultRateBurst: 1 << 30, PublicURL: "https://gatehouse.example.com", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(tb, err)
	r := httptest.NewRequest(http.MethodPost, base+"/Users", strings.NewReader(lookupUserBody))
	r.Header.Set("Authorization", "Bearer secret-token")
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	require.Equal(tb, http.StatusCreated, w.Code, w.Body.String())
	return srv
}

func lookupRequest() *http.Request {
	return lookupRequestWith("")
}

// lookupRequestWith is lookupRequest with more query parameters (extra starts with "&").
func lookupRequestWith(extra string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, base+"/Users?filter="+url.QueryEscape(`userName eq "jane.doe@example.com"`)+extra, nil)
	r.RemoteAddr = "192.0.2.1:40000"
	r.Header.Set("Authorization", "Bearer secret-token")
	return r
}

// BenchmarkLookupHandler is Okta's lookup through the handler alone (fake provisioner, no TLS, no
// SQLite): the CPU the SCIM layer adds to every lookup, steadier than BenchmarkLookupHTTPS on a
// busy machine.
func BenchmarkLookupHandler(b *testing.B) {
	benchLookupHandler(b, lookupRequest())
}

// BenchmarkLookupHandlerProjected is BenchmarkLookupHandler with an attributes selection, which
// the representation is built and projected for (no fast path): what a lookup cost before the
// fast path, and what a client that selects attributes still pays.
func BenchmarkLookupHandlerProjected(b *testing.B) {
	benchLookupHandler(b, lookupRequestWith("&attributes=userName,emails,name.givenName"))
}

// benchLookupHandler serves r through the handler alone, over and over.
func benchLookupHandler(b *testing.B, r *http.Request) {
	srv := newLookupServer(b)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// TestLookupResponseBytes pins the lookup answer byte for byte (id aside, which is random): the
// response encoder must write exactly what encoding/json wrote for the map representation.
func TestLookupResponseBytes(t *testing.T) {
	t.Parallel()
	srv := newLookupServer(t)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, lookupRequest())
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "application/scim+json", w.Header().Get("Content-Type"))
	require.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	var id string
	for u := range srv.cfg.Users.(*fakeProvisioner).users {
		id = u
	}
	require.NotEmpty(t, id)
	const want = `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":1,"startIndex":1,"itemsPerPage":1,"Resources":[{"active":true,"displayName":"Jane Doe","emails":[{"primary":true,"type":"work","value":"jane.doe@example.com"}],"externalId":"00u1abcd","id":"ID","locale":"en-US","meta":{"created":"2025-01-02T03:04:05.000Z","lastModified":"2025-01-02T03:04:05.000Z","location":"https://gatehouse.example.com/v1/webapi/scim/okta/Users/ID","resourceType":"User","version":"W/\"1\""},"name":{"familyName":"Doe \u003c\u0026\u003e","givenName":"Jane"},"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"costCenter":"CC \u2028 1","employeeNumber":"42"},"userName":"jane.doe@example.com"}]}`
	require.Equal(t, want, strings.ReplaceAll(w.Body.String(), id, "ID"))
}
