package standin

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func newTestConsole(t *testing.T) (*httptest.Server, *Directory, *fakeGatehouse) {
	t.Helper()
	d, fake, _ := newTestDirectory(t)
	c := &Console{dir: d, log: slog.Default(), gatehouseURL: "https://localhost:3080", sshHint: "ssh ..."}
	mux := http.NewServeMux()
	c.register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, d, fake
}

func post(t *testing.T, url string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := browser(t).Do(req)
	require.NoError(t, err)
	readBody(t, resp)
	return resp
}

// The page changes real accounts: a form posted from another site does
// nothing.
func TestConsoleRefusesCrossSitePosts(t *testing.T) {
	t.Parallel()
	srv, d, fake := newTestConsole(t)
	for _, path := range []string{"/people/ada/assign", "/people/ada/deactivate", "/people/ada/groups/Auditors/add"} {
		resp := post(t, srv.URL+path, http.Header{"Sec-Fetch-Site": {"cross-site"}})
		require.Equal(t, http.StatusForbidden, resp.StatusCode, path)
	}
	require.Empty(t, fake.take(), "nothing reached Gatehouse")
	p, err := d.Get("ada")
	require.NoError(t, err)
	require.False(t, p.Assigned)
	require.True(t, p.Active)
	require.Empty(t, p.Groups)
}

func TestConsoleActions(t *testing.T) {
	t.Parallel()
	srv, d, _ := newTestConsole(t)
	same := http.Header{"Sec-Fetch-Site": {"same-origin"}}
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/people/ada/assign", http.StatusSeeOther},
		{"/people/ada/groups/Auditors/add", http.StatusSeeOther},
		{"/people/ada/deactivate", http.StatusSeeOther},
		{"/people/ada/explode", http.StatusNotFound},
		{"/people/nobody/assign", http.StatusNotFound},
		{"/people/ada/groups/Auditors/toggle", http.StatusNotFound},
	} {
		resp := post(t, srv.URL+tc.path, same)
		require.Equal(t, tc.status, resp.StatusCode, tc.path)
	}
	p, err := d.Get("ada")
	require.NoError(t, err)
	require.True(t, p.Assigned)
	require.False(t, p.Active)
	require.Equal(t, []string{GroupAuditors}, p.Groups)

	// The page shows the outcome once, then the state.
	resp, err := http.Get(srv.URL + "/")
	require.NoError(t, err)
	page := readBody(t, resp)
	require.Contains(t, page, `id="flash"`)
	require.Contains(t, page, `id="status-ada">Deactivated<`)
	require.Contains(t, page, `id="reactivate-ada"`)
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	resp, err = http.Get(srv.URL + "/")
	require.NoError(t, err)
	require.False(t, strings.Contains(readBody(t, resp), `id="flash"`), "the flash is shown once")

	// A refused change says why.
	post(t, srv.URL+"/people/ada/unassign", same)
	post(t, srv.URL+"/people/ada/assign", same)
	resp, err = http.Get(srv.URL + "/")
	require.NoError(t, err)
	page = readBody(t, resp)
	require.Contains(t, page, `class="note bad" id="flash"`)
	require.Contains(t, page, "reactivate them before assigning the app")
}
