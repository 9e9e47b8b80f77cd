package ui_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/web/ui"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	h, err := ui.NewHandler()
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name, method, path string
		code               int
		contentType        string
		body               string
	}{
		{"index", "GET", "/web/", 200, "text/html; charset=utf-8", `<main id="main"`},
		{"client route", "GET", "/web/integrations/okta", 200, "text/html; charset=utf-8", `src="/web/assets/app.js"`},
		{"users page", "GET", "/web/users", 200, "text/html; charset=utf-8", `href="/web/users"`},
		{"locks page", "GET", "/web/locks", 200, "text/html; charset=utf-8", `href="/web/locks"`},
		// The SSH access page's link is in the top bar for every signed-in
		// user, and the script calls the session's certificate endpoint.
		{"ssh page", "GET", "/web/ssh", 200, "text/html; charset=utf-8", `<a href="/web/ssh" data-link data-nav="ssh" id="nav-ssh">SSH access</a>`},
		{"ssh page script", "GET", "/web/assets/app.js", 200, "text/javascript; charset=utf-8", `api("POST", "/sessions/certs"`},
		{"script", "GET", "/web/assets/app.js", 200, "text/javascript; charset=utf-8", "function route()"},
		{"style", "GET", "/web/assets/style.css", 200, "text/css; charset=utf-8", ":focus-visible"},
		{"icon", "GET", "/web/assets/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"missing asset", "GET", "/web/assets/nope.js", 404, "", ""},
		{"traversal", "GET", "/web/assets/../ui.go", 404, "", ""},
		{"post", "POST", "/web/", 405, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.code, resp.StatusCode)
			if tc.code != 200 {
				return
			}
			require.Equal(t, tc.contentType, resp.Header.Get("Content-Type"))
			require.Contains(t, string(body), tc.body)
			require.Equal(t, ui.ContentSecurityPolicy, resp.Header.Get("Content-Security-Policy"))
		})
	}
}

// TestAssetsAreSelfContained: nothing in the UI loads from another origin,
// and no markup is built from strings (the CSP also forbids inline code).
func TestAssetsAreSelfContained(t *testing.T) {
	t.Parallel()
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//|fetch\(\s*["']https?:`)
	files := ui.Assets()
	n := 0
	require.NoError(t, fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := fs.ReadFile(files, path)
		require.NoError(t, err)
		s := string(b)
		require.Nil(t, external.FindStringIndex(s), "%s loads from another origin: %q", path, external.FindString(s))
		if strings.HasSuffix(path, ".js") {
			require.NotContains(t, s, ".innerHTML", path)
			require.NotContains(t, s, "eval(", path)
		}
		if strings.HasSuffix(path, ".html") {
			require.NotRegexp(t, `<script>|<style>|\sstyle=|\son[a-z]+=`, s, "%s has inline code or styles", path)
		}
		return nil
	}))
	require.GreaterOrEqual(t, n, 4)
}
