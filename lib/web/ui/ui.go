// Package ui serves the Gatehouse web UI: hand-written HTML, CSS and
// vanilla JavaScript modules embedded in the binary, so building or running
// the server needs no Node toolchain, and the pages fetch nothing from
// other origins (a strict Content-Security-Policy enforces it).
//
// Every path under /web/ that is not an asset answers index.html; the
// client-side router picks the page. The UI talks only to the web API
// under /v1/webapi/.
package ui

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Prefix is where the UI is mounted on the web listener.
const Prefix = "/web/"

// ContentSecurityPolicy allows only this origin: no inline script or
// style, no framing, no other hosts.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Assets returns the embedded files (rooted at the assets directory).
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		// The directory is embedded at build time; this cannot happen.
		panic(err)
	}
	return sub
}

// Handler serves the UI under Prefix.
type Handler struct {
	files fs.FS
	index []byte
	// modTime is the build's start, for caching validators.
	modTime time.Time
}

// NewHandler returns the UI handler.
func NewHandler() (*Handler, error) {
	files := Assets()
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		return nil, err
	}
	return &Handler{files: files, index: index, modTime: time.Now()}, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	rel := strings.TrimPrefix(r.URL.Path, Prefix)
	if name, ok := strings.CutPrefix(rel, "assets/"); ok {
		name = path.Clean("/" + name)[1:]
		if name == "" || name == "index.html" {
			http.NotFound(w, r)
			return
		}
		data, err := fs.ReadFile(h.files, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		// Assets change with the binary: revalidate rather than cache
		// blindly, so an upgrade is picked up on the next load.
		hdr.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, name, h.modTime, bytes.NewReader(data))
		return
	}
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	http.ServeContent(w, r, "index.html", h.modTime, bytes.NewReader(h.index))
}
