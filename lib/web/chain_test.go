package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSecurityHeaders: every answer carries the security headers, each once, under its
// canonical name, and a handler may still change or add to them without touching another
// response's.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	want := http.Header{
		"Strict-Transport-Security": {"max-age=31536000"},
		"X-Content-Type-Options":    {"nosniff"},
		"X-Frame-Options":           {"DENY"},
		"Referrer-Policy":           {"no-referrer"},
	}
	for k := range want {
		require.Equal(t, textproto.CanonicalMIMEHeaderKey(k), k)
	}
	h := withSecurityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/change" {
			w.Header().Add("X-Frame-Options", "SAMEORIGIN")
			w.Header()["Referrer-Policy"][0] = "same-origin"
		}
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/change", nil))
	require.Equal(t, []string{"DENY", "SAMEORIGIN"}, w.Header().Values("X-Frame-Options"))
	require.Equal(t, "same-origin", w.Header().Get("Referrer-Policy"))
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	require.Equal(t, want, w.Header())
}

// BenchmarkWebChain is what the listener adds around a mounted handler on every request: panic
// recovery, the security headers and the mux.
func BenchmarkWebChain(b *testing.B) {
	s, err := New(Config{Addr: "127.0.0.1:0", TLS: TLSConfig{SelfSignedDir: b.TempDir()}, Logger: discardLogger()})
	require.NoError(b, err)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	require.NoError(b, s.Mount("/v1/webapi/scim/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})))
	r := httptest.NewRequest(http.MethodGet, "/v1/webapi/scim/okta/Users?filter=userName+eq+%22x%22", nil)
	w := &nopWriter{}
	b.ReportAllocs()
	for b.Loop() {
		// A fresh header map, as net/http gives every response.
		w.header = make(http.Header, 8)
		s.srv.Handler.ServeHTTP(w, r)
	}
	require.Equal(b, http.StatusOK, w.status)
}

type nopWriter struct {
	header http.Header
	status int
}

func (w *nopWriter) Header() http.Header         { return w.header }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(code int)        { w.status = code }

// TestRouteMatchesMux holds route's fast path to the mux: for every method and a range of paths
// (clean and not, escaped and not, under nested mounts, on the health endpoints and under no
// mount), both give the same status, body, pattern and redirect and Allow headers.
func TestRouteMatchesMux(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Addr: "127.0.0.1:0", TLS: TLSConfig{SelfSignedDir: t.TempDir()}, Logger: discardLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	for _, prefix := range []string{"/v1/webapi/", "/v1/webapi/scim/", "/web/", "/v1/webapi/saml/"} {
		require.NoError(t, s.Mount(prefix, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "mount "+prefix+" pattern "+r.Pattern+" path "+r.URL.Path)
		})))
	}
	viaMux := withSecurityHeaders(s.mux)
	viaRoute := withSecurityHeaders(http.HandlerFunc(s.route))
	targets := []string{
		"/", "/healthz", "/readyz", "/healthz/", "/healthz/x", "/readyz?x=1",
		"/v1/webapi/scim/okta/Users?filter=userName+eq+%22x%22", "/v1/webapi/scim/okta/Users/abc",
		"/v1/webapi/scim/", "/v1/webapi/scim", "/v1/webapi", "/v1/webapi/", "/v1/webapi/other",
		"/v1/webapi/saml/acs", "/v1/webapi/scim/okta%2FUsers", "/v1%2Fwebapi/scim/x", "/v1/webapi%2Fscim/x",
		"/v1/webapi/scim/a/../b", "/v1/webapi/scim/../saml/x", "/v1/webapi/scim//x", "/v1/webapi/scim/./x",
		"/v1/webapi/scim/x/", "/v1/webapi/scim/x/..", "/V1/webapi/scim/x", "/v1/webapi/scim/%41",
		"/v1/webapi/scim/a%20b", "/v1/webapi/scim/\u00e9", "/v1/webapi/scim/%C3%A9", "/web/", "/web",
		"/web/index.html", "/nope", "//v1/webapi/scim/x", "/v1/webapi/scim/x?y=/../z", "*",
	}
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "get", "FOO"}
	fast := 0
	for _, target := range targets {
		for _, method := range methods {
			serve := func(h http.Handler) (*httptest.ResponseRecorder, string) {
				r := httptest.NewRequest(method, target, nil)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return w, r.Pattern
			}
			want, wantPattern := serve(viaMux)
			got, gotPattern := serve(viaRoute)
			name := method + " " + target
			require.Equal(t, want.Code, got.Code, name)
			require.Equal(t, want.Body.String(), got.Body.String(), name)
			require.Equal(t, want.Header(), got.Header(), name)
			require.Equal(t, wantPattern, gotPattern, name)
			if h, _ := s.fastRoute(httptest.NewRequest(method, target, nil)); h != nil {
				fast++
			}
		}
	}
	// The fast path is taken, for the common case at least.
	h, pattern := s.fastRoute(httptest.NewRequest(http.MethodGet, "/v1/webapi/scim/okta/Users?filter=x", nil))
	require.NotNil(t, h)
	require.Equal(t, "/v1/webapi/scim/", pattern)
	require.Greater(t, fast, len(methods)*5)
}
