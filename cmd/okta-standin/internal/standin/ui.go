package standin

import (
	"context"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gravitational/trace"
)

// The page's look: one small stylesheet, no script (the SAML response
// form's auto-submit is crewjam's).
const pageStyle = `
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1d2433}
header{background:#00297a;color:#fff;padding:12px 24px}header b{font-size:18px}
header span{opacity:.8;margin-left:12px}main{max-width:1100px;margin:24px auto;padding:0 16px}
.card{background:#fff;border:1px solid #d9dee6;border-radius:8px;padding:16px 20px;margin-bottom:18px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:8px 6px;border-bottom:1px solid #eceff3;vertical-align:top}
th{font-size:13px;color:#5b6475;font-weight:600}button{font:inherit;padding:4px 10px;border-radius:6px;border:1px solid #9aa3b2;background:#fff;cursor:pointer;margin:2px 0}
button.primary{background:#1662dd;border-color:#1662dd;color:#fff}button.danger{border-color:#c0392b;color:#c0392b}
form{display:inline}.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:13px}
.ok{background:#e3f4e8;color:#1e6b34}.off{background:#fbe7e6;color:#9b2c22}.muted{color:#6b7383;font-size:13px}
.note{padding:10px 14px;border-radius:6px;margin-bottom:14px}.note.good{background:#e3f4e8}.note.bad{background:#fbe7e6}
code{background:#eef1f5;padding:1px 4px;border-radius:4px;font-size:13px}pre{background:#eef1f5;padding:8px;border-radius:6px;overflow:auto;font-size:13px}
.log td{font:12px ui-monospace,monospace;word-break:break-all}.pick{display:block;width:100%;text-align:left;padding:10px;margin:6px 0}
`

var pageTemplates = template.Must(template.New("layout").Parse(`{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.}} · Okta stand-in</title><style>` + pageStyle + `</style></head>
<body><header><b>Okta stand-in</b><span>a local IdP for the Gatehouse demo, never for production</span></header><main>{{end}}
{{define "foot"}}</main></body></html>{{end}}

{{define "console"}}{{template "head" "Directory"}}
{{with .Flash}}<div class="note {{if .Err}}bad{{else}}good{{end}}" id="flash" role="status">{{.Text}}</div>{{end}}
<div class="card"><h2>People</h2>
<p class="muted">Assigning the <b>Gatehouse</b> app provisions the person over SCIM (POST /Users); unassigning or deactivating sends
PATCH active:false, which deletes and locks the Gatehouse account and ends its sessions; reactivating sends PATCH active:true.
Group changes are pushed with PATCH /Groups. The group <b>{{.Auditors}}</b> maps to Gatehouse's <code>auditor</code> role; everyone provisioned gets <code>{{.DemoRole}}</code>.</p>
<table><thead><tr><th>Person</th><th>Okta status</th><th>Gatehouse app</th><th>Groups</th></tr></thead><tbody>
{{range .People}}<tr id="person-{{.ID}}">
<td><b>{{.Name}}</b><br><span class="muted">{{.Email}}</span></td>
<td><span class="badge {{if .Active}}ok{{else}}off{{end}}" id="status-{{.ID}}">{{if .Active}}Active{{else}}Deactivated{{end}}</span><br>
{{if .Active}}<form method="post" action="/people/{{.ID}}/deactivate"><button class="danger" id="deactivate-{{.ID}}">Deactivate</button></form>
{{else}}<form method="post" action="/people/{{.ID}}/reactivate"><button id="reactivate-{{.ID}}">Reactivate</button></form>{{end}}</td>
<td><span class="badge {{if .Assigned}}ok{{else}}off{{end}}" id="app-{{.ID}}">{{if .Assigned}}Assigned{{else}}Not assigned{{end}}</span>
{{if .SCIMID}}<br><span class="muted" id="scim-{{.ID}}">SCIM id {{.SCIMID}}</span>{{end}}<br>
{{if .Assigned}}<form method="post" action="/people/{{.ID}}/unassign"><button id="unassign-{{.ID}}">Unassign</button></form>
{{else}}<form method="post" action="/people/{{.ID}}/assign"><button class="primary" id="assign-{{.ID}}">Assign</button></form>{{end}}</td>
<td>{{$p := .}}{{range $.Groups}}<form method="post" action="/people/{{$p.ID}}/groups/{{.}}/{{if $p.InGroup .}}remove{{else}}add{{end}}">
<button id="group-{{$p.ID}}-{{.}}" aria-pressed="{{$p.InGroup .}}">{{if $p.InGroup .}}✓ {{.}}{{else}}+ {{.}}{{end}}</button></form> {{end}}</td>
</tr>{{end}}</tbody></table></div>
<div class="card"><h2>Try it</h2><ol>
<li>Assign <b>Ada Lovelace</b> above.</li>
<li>Open Gatehouse at <a href="{{.GatehouseURL}}/web/login">{{.GatehouseURL}}</a>, click <b>Sign in with Okta</b> and pick Ada.</li>
<li>Get Ada an SSH certificate and SSH in:<pre>{{.SSHHint}}</pre></li>
<li>Click <b>Deactivate</b> on Ada: the SSH session ends with <code>lock targeting user "ada@example.com" is in force</code>.</li></ol></div>
<div class="card log"><h2>SCIM requests sent to Gatehouse</h2><table><thead><tr><th>Time</th><th>Request</th><th>Status</th><th>Body / error</th></tr></thead><tbody id="scim-log">
{{range .Calls}}<tr><td>{{.Time.Format "15:04:05"}}</td><td>{{.Method}} {{.Path}}</td><td>{{.Status}}</td><td>{{.Body}}{{with .Err}}<br><b>{{.}}</b>{{end}}</td></tr>{{else}}<tr><td colspan="4" class="muted">None yet.</td></tr>{{end}}
</tbody></table></div>
{{template "foot"}}{{end}}

{{define "picker"}}{{template "head" "Sign in"}}
<div class="card" style="max-width:520px;margin:auto"><h2>Sign in to Gatehouse</h2>
<p class="muted">A real Okta asks for a password and MFA here. The stand-in lets you pick a person; only people who are active and assigned to the Gatehouse app get in.</p>
{{with .Error}}<div class="note bad" id="picker-error" role="alert">{{.}}</div>{{end}}
{{range .People}}<form method="post" action="/sso/pick"><input type="hidden" name="person" value="{{.ID}}"><input type="hidden" name="request" value="{{$.Request}}">
<button class="pick" id="pick-{{.ID}}"><b>{{.Name}}</b> <span class="muted">{{.Email}} · {{if not .Active}}deactivated{{else if not .Assigned}}not assigned{{else}}assigned{{end}}</span></button></form>{{end}}
</div>{{template "foot"}}{{end}}

{{define "error"}}{{template "head" "Error"}}<div class="card"><h2>Something went wrong</h2><p id="error">{{.Text}}</p>
<p>{{if .Link}}<a href="{{.Link}}" id="error-link">{{.LinkText}}</a>{{else}}<a href="/">Back to the directory</a>{{end}}</p></div>{{template "foot"}}{{end}}
`))

// personView adds a helper for the template.
type personView struct {
	PersonState
}

// InGroup says whether the person is in group g.
func (p personView) InGroup(g string) bool { return slices.Contains(p.Groups, g) }

type flash struct {
	Text string
	Err  bool
}

// Console is the stand-in's admin page: people, assignments, lifecycle
// and groups, and the log of SCIM requests sent.
type Console struct {
	dir          *Directory
	log          *slog.Logger
	gatehouseURL string
	sshHint      string

	mu    sync.Mutex
	calls []Call
	flash *flash
}

// maxCalls bounds the page's request log.
const maxCalls = 30

// record keeps a SCIM call for the log (newest first).
func (c *Console) record(call Call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append([]Call{call}, c.calls...)
	if len(c.calls) > maxCalls {
		c.calls = c.calls[:maxCalls]
	}
}

// Calls returns the logged SCIM calls, newest first.
func (c *Console) Calls() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

func (c *Console) takeFlash() *flash {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.flash
	c.flash = nil
	return f
}

func (c *Console) setFlash(text string, isErr bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flash = &flash{Text: text, Err: isErr}
}

func (c *Console) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", c.serveConsole)
	mux.HandleFunc("POST /people/{id}/{action}", c.serveAction)
	mux.HandleFunc("POST /people/{id}/groups/{group}/{op}", c.serveGroup)
}

func (c *Console) serveConsole(w http.ResponseWriter, _ *http.Request) {
	var people []personView
	for _, p := range c.dir.People() {
		people = append(people, personView{p})
	}
	data := map[string]any{
		"Flash":        c.takeFlash(),
		"People":       people,
		"Groups":       DemoGroups,
		"Auditors":     GroupAuditors,
		"DemoRole":     DemoRole,
		"GatehouseURL": c.gatehouseURL,
		"SSHHint":      c.sshHint,
		"Calls":        c.Calls(),
	}
	render(w, c.log, http.StatusOK, "console", data)
}

// actionTimeout bounds one page action: a few SCIM calls, each of which
// Okta would give 60 s.
const actionTimeout = 90 * time.Second

func (c *Console) serveAction(w http.ResponseWriter, r *http.Request) {
	if !c.sameOrigin(w, r) {
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	var (
		err  error
		done string
	)
	switch action {
	case "assign":
		err, done = c.dir.Assign(ctx, id), "assigned to Gatehouse and provisioned"
	case "unassign":
		err, done = c.dir.Unassign(ctx, id), "unassigned: Gatehouse deactivated the account"
	case "deactivate":
		err, done = c.dir.SetActive(ctx, id, false), "deactivated in Okta"
	case "reactivate":
		err, done = c.dir.SetActive(ctx, id, true), "reactivated in Okta"
	default:
		renderError(w, c.log, http.StatusNotFound, "No such action.")
		return
	}
	c.finish(w, r, id, done, err)
}

func (c *Console) serveGroup(w http.ResponseWriter, r *http.Request) {
	if !c.sameOrigin(w, r) {
		return
	}
	id, group, op := r.PathValue("id"), r.PathValue("group"), r.PathValue("op")
	if op != "add" && op != "remove" {
		renderError(w, c.log, http.StatusNotFound, "No such action.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	defer cancel()
	done := "added to " + group
	if op == "remove" {
		done = "removed from " + group
	}
	c.finish(w, r, id, done, c.dir.SetGroup(ctx, id, group, op == "add"))
}

// finish reports an action on the next page view (post, redirect, get).
func (c *Console) finish(w http.ResponseWriter, r *http.Request, id, done string, err error) {
	p, gerr := c.dir.Get(id)
	switch {
	case gerr != nil:
		renderError(w, c.log, http.StatusNotFound, trace.UserMessage(gerr))
		return
	case err != nil:
		c.log.Warn("action failed", "person", p.Email, "error", err)
		c.setFlash(p.Name()+": "+trace.UserMessage(err), true)
	default:
		c.log.Info("action done", "person", p.Email, "what", done)
		c.setFlash(p.Name()+" "+done+".", false)
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// sameOrigin refuses a form posted from another site: the page changes
// real accounts in Gatehouse.
func (c *Console) sameOrigin(w http.ResponseWriter, r *http.Request) bool {
	if err := http.NewCrossOriginProtection().Check(r); err != nil {
		renderError(w, c.log, http.StatusForbidden, "This form must be posted from the Okta stand-in's own page.")
		return false
	}
	return true
}

func (i *IdP) renderPicker(w http.ResponseWriter, r *http.Request, errText string) {
	render(w, i.log, http.StatusOK, "picker", map[string]any{
		"People":  i.dir.People(),
		"Request": r.URL.RawQuery,
		"Error":   errText,
	})
}

func (i *IdP) renderError(w http.ResponseWriter, status int, text string) {
	renderError(w, i.log, status, text)
}

// errorPage is the error template's data; without Link, the page links
// back to the directory.
type errorPage struct {
	Text, Link, LinkText string
}

func renderError(w http.ResponseWriter, log *slog.Logger, status int, text string) {
	render(w, log, status, "error", errorPage{Text: text})
}

func render(w http.ResponseWriter, log *slog.Logger, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https:; frame-ancestors 'none'")
	w.WriteHeader(status)
	if err := pageTemplates.ExecuteTemplate(w, name, data); err != nil {
		log.Warn("rendering a page", "page", name, "error", err)
	}
}
