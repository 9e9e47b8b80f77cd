// Gatehouse web UI: a small client-side router and views, vanilla JS.
// DOM is built with h() and textContent only (never innerHTML), so nothing
// the server returns can inject markup.

import { userSyncTile } from "./usersync.js";

const API = "/v1/webapi";
const CSRF_COOKIE = "__Host-gatehouse_csrf";
const main = document.getElementById("main");
let session = null; // {user, roles, csrf_token} once signed in

// ---------- helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function csrfToken() {
  if (session && session.csrf_token) return session.csrf_token;
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === CSRF_COOKIE) return decodeURIComponent(v.join("="));
  }
  return "";
}

class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: { "Accept": "application/json" } };
  if (method !== "GET") opts.headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(API + path, opts);
  let data = null;
  try { data = await resp.json(); } catch { /* empty body */ }
  if (!resp.ok) {
    const msg = (data && (typeof data.error === "string" ? data.error : data.error && data.error.message)) || resp.statusText;
    throw new APIError(resp.status, msg);
  }
  return data;
}

let toastTimer;
function toast(msg) {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove("show"), 2600);
}

async function copyText(text, label) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Clipboard API unavailable (permissions): fall back to a selection.
    const ta = h("textarea", { class: "sr-only", "aria-hidden": "true" }, text);
    document.body.append(ta);
    ta.select();
    try { document.execCommand("copy"); } catch { /* nothing else to try */ }
    ta.remove();
  }
  toast(`${label} copied to the clipboard`);
}

function copyable(value, label, opts = {}) {
  return h("div", { class: "copy" + (opts.secret ? " secret" : "") },
    h("code", { id: opts.id, "aria-label": label }, value),
    h("button", { type: "button", class: "btn btn-sm", id: opts.buttonId, "aria-label": `Copy ${label}`, onclick: () => copyText(value, label) }, "Copy"));
}

function fmtTime(iso) {
  if (!iso) return "Never";
  const d = new Date(iso);
  const secs = Math.round((Date.now() - d.getTime()) / 1000);
  let rel;
  if (secs < 60) rel = "just now";
  else if (secs < 3600) rel = `${Math.floor(secs / 60)} min ago`;
  else if (secs < 86400) rel = `${Math.floor(secs / 3600)} h ago`;
  else rel = `${Math.floor(secs / 86400)} d ago`;
  return `${d.toLocaleString()} (${rel})`;
}

const STATES = {
  not_configured: ["Not configured", "badge-off"],
  sso_only: ["SSO only", "badge-info"],
  sso_scim: ["SSO + SCIM", "badge-ok"],
  error: ["Error", "badge-err"],
};
function stateBadge(state, id) {
  const [label, cls] = STATES[state] || [state, "badge-off"];
  return h("span", { class: `badge ${cls}`, id, "data-state": state }, label);
}

// confirmDialog resolves true when the user confirms. <dialog> gives focus
// trapping, Escape to cancel and focus return for free.
function confirmDialog({ title, body, confirm, danger }) {
  return new Promise((resolve) => {
    const dlg = h("dialog", { "aria-labelledby": "dlg-title", id: "confirm-dialog" },
      h("form", { method: "dialog", class: "dialog-body" },
        h("h2", { id: "dlg-title" }, title),
        ...body.map((p) => h("p", {}, p)),
        h("div", { class: "actions" },
          h("button", { type: "submit", value: "cancel", class: "btn", id: "dlg-cancel" }, "Cancel"),
          h("button", { type: "submit", value: "ok", class: danger ? "btn btn-danger-solid" : "btn btn-primary", id: "dlg-confirm" }, confirm))));
    dlg.addEventListener("close", () => { resolve(dlg.returnValue === "ok"); dlg.remove(); });
    document.body.append(dlg);
    dlg.showModal();
    dlg.querySelector("#dlg-cancel").focus();
  });
}

function setPage(title, ...nodes) {
  document.title = title ? `${title} · Gatehouse` : "Gatehouse";
  main.replaceChildren(...nodes);
  main.focus({ preventScroll: true });
}

function forbiddenState(what) {
  return h("div", { class: "card state", id: "forbidden", role: "alert" },
    h("div", { class: "state-icon", "aria-hidden": "true" }, "!"),
    h("h2", {}, "You lack permission"),
    h("p", {}, `Your roles (${(session && session.roles || []).join(", ") || "none"}) do not allow ${what}.`),
    h("p", {}, "Ask a Gatehouse administrator for a role that allows the plugin verbs (read, create, update on kind \"plugin\" and \"saml\"), such as the preset editor role."));
}

function errorNote(err) {
  return h("div", { class: "note note-err", role: "alert" }, h("strong", {}, "Something went wrong"), err.message);
}

// ---------- router ----------

const routes = [
  [/^\/web\/login\/?$/, viewLogin, false],
  [/^\/web\/password\/?$/, viewSetPassword, false],
  [/^\/web\/?$/, () => navigate("/web/integrations", true), true],
  [/^\/web\/integrations\/?$/, viewIntegrations, true],
  [/^\/web\/integrations\/okta\/?$/, viewOkta, true],
];

function navigate(path, replace) {
  if (replace) history.replaceState({}, "", path); else history.pushState({}, "", path);
  route();
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", route);

async function loadSession() {
  try {
    session = await api("GET", "/sessions/current");
  } catch (err) {
    if (err.status === 401) session = null; else throw err;
  }
}

function showChrome(on) {
  document.getElementById("topbar").hidden = !on;
  if (on) document.getElementById("user-name").textContent = session.user;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (location.pathname.startsWith("/web/" + a.dataset.nav)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function route() {
  const path = location.pathname;
  const match = routes.find(([re]) => re.test(path));
  if (!match) { showChrome(!!session); setPage("Not found", h("div", { class: "page" }, h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "/web/integrations", "data-link": true }, "Go to Integrations")))); return; }
  const [, view, needsSession] = match;
  if (needsSession && !session) {
    await loadSession().catch(() => {});
    if (!session) { navigate("/web/login?next=" + encodeURIComponent(path), true); return; }
  }
  showChrome(needsSession);
  try {
    await view();
  } catch (err) {
    if (err.status === 401) { session = null; navigate("/web/login", true); return; }
    setPage("Error", h("div", { class: "page" }, errorNote(err)));
  }
}

document.getElementById("sign-out").addEventListener("click", async () => {
  try { await api("DELETE", "/sessions/current"); } catch { /* already gone */ }
  session = null;
  navigate("/web/login", true);
});

// ---------- sign-in ----------

async function viewLogin() {
  const next = new URLSearchParams(location.search).get("next");
  const dest = next && next.startsWith("/web/") && !next.startsWith("//") ? next : "/web/integrations";
  let connectors = [];
  try { connectors = (await api("GET", "/auth/connectors")).connectors || []; } catch { /* SSO list unavailable: password only */ }
  const err = h("div", { class: "note note-err", role: "alert", id: "login-error", hidden: true });
  const form = h("form", { id: "login-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "login-user" }, "Username"),
      h("input", { type: "text", id: "login-user", name: "user", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" })),
    h("div", { class: "field" }, h("label", { for: "login-password" }, "Password"),
      h("input", { type: "password", id: "login-password", name: "password", autocomplete: "current-password", required: true })),
    err,
    h("button", { type: "submit", class: "btn btn-primary", id: "login-submit" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.hidden = true;
    const user = form.user.value.trim(), password = form.password.value;
    if (!user || !password) { err.textContent = "Enter your username and password."; err.hidden = false; return; }
    const btn = form.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      await api("POST", "/sessions", { user, password });
      await loadSession();
      navigate(dest, true);
    } catch (ex) {
      err.textContent = ex.status === 401 || ex.status === 403 ? "Wrong username or password." : ex.message;
      err.hidden = false;
      btn.disabled = false;
      form.password.focus();
    }
  });
  const sso = connectors.length ? [
    h("div", { class: "divider" }, "or"),
    h("div", { class: "sso-list" }, connectors.map((c) =>
      h("a", { class: "btn", href: `${API}/saml/sso?connector_id=${encodeURIComponent(c.name)}&redirect_url=${encodeURIComponent(dest)}` }, `Sign in with ${c.display || c.name}`))),
  ] : [];
  document.getElementById("topbar").hidden = true;
  setPage("Sign in", h("div", { class: "signin" },
    h("div", { class: "card signin-card" },
      h("div", { class: "signin-brand" }, h("img", { src: "/web/assets/favicon.svg", alt: "", width: 32, height: 32 }), "Gatehouse"),
      h("h1", {}, "Sign in"),
      form, ...sso)));
  form.user.focus();
}

// ---------- one-time password link (gatectl users add) ----------

async function viewSetPassword() {
  const token = new URLSearchParams(location.search).get("token") || "";
  // Keep the one-time token out of the address bar and history.
  history.replaceState({}, "", "/web/password");
  const err = h("div", { class: "note note-err", role: "alert", id: "password-error", hidden: true });
  const form = h("form", { id: "password-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "new-password" }, "New password"),
      h("input", { type: "password", id: "new-password", name: "password", autocomplete: "new-password", required: true, minlength: 12, maxlength: 72, "aria-describedby": "new-password-hint" }),
      h("span", { class: "hint", id: "new-password-hint" }, "12 to 72 characters.")),
    h("div", { class: "field" }, h("label", { for: "confirm-password" }, "Confirm password"),
      h("input", { type: "password", id: "confirm-password", name: "confirm", autocomplete: "new-password", required: true })),
    err,
    h("button", { type: "submit", class: "btn btn-primary", id: "password-submit" }, "Set password"));
  const card = h("div", { class: "card signin-card" },
    h("div", { class: "signin-brand" }, h("img", { src: "/web/assets/favicon.svg", alt: "", width: 32, height: 32 }), "Gatehouse"),
    h("h1", {}, "Set your password"),
    token ? form : h("div", { class: "note note-err", role: "alert" }, "This link has no token. Ask your administrator for a new one."));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.hidden = true;
    const pw = form.password.value;
    if (pw.length < 12) { err.textContent = "Use at least 12 characters."; err.hidden = false; return; }
    if (pw !== form.confirm.value) { err.textContent = "The two passwords differ."; err.hidden = false; return; }
    const btn = form.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      const r = await api("POST", "/users/password", { token, password: pw });
      card.replaceChildren(card.firstChild, h("h1", {}, "Password set"),
        h("div", { class: "note note-ok", role: "status", id: "password-done" }, `The password of ${r.user} is set. This link no longer works.`),
        h("a", { class: "btn btn-primary", href: "/web/login", "data-link": true }, "Sign in"));
    } catch (ex) {
      // 404: unknown, used or expired. 403 says why the link is void (made for an
      // earlier account of that name, or the account is locked): show the reason.
      err.textContent = ex.status === 404 || (ex.status === 403 && !ex.message)
        ? "This link has expired or was already used. Ask your administrator for a new one." : ex.message;
      err.hidden = false;
      btn.disabled = false;
    }
  });
  document.getElementById("topbar").hidden = true;
  setPage("Set password", h("div", { class: "signin" }, card));
  if (token) form.password.focus();
}

// ---------- integrations ----------

async function viewIntegrations() {
  let list;
  try {
    list = await api("GET", "/plugins");
  } catch (err) {
    if (err.status === 403) { setPage("Integrations", h("div", { class: "page" }, pageHead("Integrations"), forbiddenState("viewing integrations"))); return; }
    throw err;
  }
  const desc = { okta: "SAML single sign-on and SCIM user provisioning from Okta." };
  setPage("Integrations", h("div", { class: "page" },
    pageHead("Integrations", "Connect Gatehouse to your identity provider."),
    h("ul", { class: "card list", "aria-label": "Integrations" }, list.integrations.map((it) =>
      h("li", {}, h("a", { class: "row", href: `/web/integrations/${it.name}`, "data-link": true, id: `integration-${it.name}` },
        h("div", { class: "logo", "aria-hidden": "true" }, it.title[0]),
        h("div", { class: "row-main" }, h("div", { class: "row-title" }, it.title), h("div", { class: "row-desc" }, it.error || desc[it.name] || "")),
        stateBadge(it.state, `integration-${it.name}-state`),
        h("span", { class: "chev", "aria-hidden": "true" }, "›")))))));
}

function pageHead(title, subtitle, extra) {
  return h("div", { class: "page-head" },
    extra && extra.logo,
    h("div", {}, h("h1", {}, title, extra && extra.badge ? " " : "", extra && extra.badge), subtitle && h("p", {}, subtitle)));
}

// ---------- Okta ----------

let freshToken = null; // the token just generated; kept in memory only, never stored

async function viewOkta() {
  let st;
  try {
    st = await api("GET", "/plugins/okta");
  } catch (err) {
    if (err.status === 403) {
      setPage("Okta", h("div", { class: "page" }, crumbs(), pageHead("Okta"), forbiddenState("viewing or changing the Okta integration")));
      return;
    }
    throw err;
  }
  renderOkta(st);
}

function crumbs() {
  return h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("ol", {},
    h("li", {}, h("a", { href: "/web/integrations", "data-link": true }, "Integrations")),
    h("li", { "aria-current": "page" }, "Okta")));
}

function renderOkta(st) {
  const readOnly = !st.permissions.manage;
  const tiles = h("div", { class: "tiles" }, ssoTile(st, readOnly), scimTile(st, readOnly),
    userSyncTile({ h, api, tile, fmtTime, toast, refresh: refreshOkta }, readOnly, st.scim.enabled), statusTile(st));
  const page = h("div", { class: "page" },
    crumbs(),
    pageHead("Okta", "Users sign in through Okta (SAML); Okta creates, updates and deactivates their Gatehouse accounts (SCIM).",
      { logo: h("div", { class: "logo", "aria-hidden": "true" }, "O"), badge: stateBadge(st.state, "okta-state") }),
    st.error ? h("div", { class: "note note-err", role: "alert" }, h("strong", {}, "The integration has an error"), st.error) : null,
    readOnly ? h("div", { class: "note note-info", id: "read-only" }, h("strong", {}, "Read-only"), "Your roles allow viewing this integration but not changing it.") : null,
    tiles);
  setPage("Okta", page);
  if (st.permissions.events) loadEvents();
}

async function refreshOkta(focusId) {
  const st = await api("GET", "/plugins/okta");
  renderOkta(st);
  if (focusId) { const el = document.getElementById(focusId); if (el) el.focus(); }
}

function tile(id, title, badge, ...body) {
  return h("section", { class: "card tile", id, "aria-labelledby": `${id}-title` },
    h("div", { class: "tile-head" }, h("h2", { id: `${id}-title` }, title), badge), ...body);
}

function onOff(on, onLabel, offLabel, id) {
  return h("span", { class: `badge ${on ? "badge-ok" : "badge-off"}`, id }, on ? onLabel : offLabel);
}

// SSO tile

function ssoTile(st, readOnly) {
  const c = st.sso.connector;
  if (c) {
    return tile("sso-tile", "SSO", onOff(true, "Connected", ""),
      h("p", { class: "muted small" }, "Users sign in with the Okta SAML app through this connector."),
      h("dl", { class: "facts facts-stacked" },
        h("dt", {}, "Connector"), h("dd", { id: "sso-connector" }, c.name, c.display ? ` (button “Sign in with ${c.display}”)` : ""),
        h("dt", {}, "IdP entity ID"), h("dd", { id: "sso-idp-entity" }, h("code", {}, c.idp_entity_id || "—")),
        h("dt", {}, "Single sign-on URL (ACS)"), h("dd", {}, copyable(c.acs_url, "ACS URL", { id: "sso-acs" })),
        h("dt", {}, "Audience URI (SP entity ID)"), h("dd", {}, copyable(c.audience, "Audience URI")),
        h("dt", {}, "Roles"), h("dd", {}, c.attributes_to_roles.length
          ? h("ul", { class: "small" }, c.attributes_to_roles.map((m) => h("li", {}, h("code", {}, `${m.name} = ${m.value}`), " → ", m.roles.join(", "))))
          : h("span", { class: "muted" }, "No attribute mappings: SAML users get no roles until SCIM or an admin assigns them."))),
      h("p", { class: "small muted" }, "In Okta, paste the ACS URL into “Single sign-on URL” and the audience into “Audience URI (SP Entity ID)”."));
  }
  if (st.sso.error) {
    return tile("sso-tile", "SSO", onOff(false, "", "Error"), h("div", { class: "note note-err", role: "alert" }, st.sso.error));
  }
  if (readOnly) {
    return tile("sso-tile", "SSO", onOff(false, "", "Not configured"), h("p", { class: "muted" }, "No SAML connector is configured for Okta."));
  }
  const nameInput = h("input", { type: "text", id: "saml-name", name: "name", value: "okta", required: true, pattern: "[a-z0-9][a-z0-9._-]*", autocomplete: "off", "aria-describedby": "saml-name-hint" });
  const acsCode = h("code", { id: "saml-acs-preview" }, st.sso.acs_url_base + "okta");
  nameInput.addEventListener("input", () => { acsCode.textContent = st.sso.acs_url_base + (nameInput.value || "okta"); });
  const err = h("div", { class: "note note-err", role: "alert", hidden: true });
  const form = h("form", { id: "saml-form", novalidate: true },
    h("div", { class: "note note-info" }, h("strong", {}, "1. In Okta, create a SAML 2.0 app"),
      "Use this as its Single sign-on URL and Audience URI, then copy the app’s IdP metadata:",
      h("div", { class: "copy" }, acsCode, h("button", { type: "button", class: "btn btn-sm", "aria-label": "Copy ACS URL", onclick: () => copyText(acsCode.textContent, "ACS URL") }, "Copy"))),
    h("div", { class: "field" }, h("label", { for: "saml-name" }, "Connector name"), nameInput,
      h("span", { class: "hint", id: "saml-name-hint" }, "Lowercase letters, digits, dots, dashes.")),
    h("div", { class: "field" }, h("label", { for: "saml-display" }, "Sign-in button label"),
      h("input", { type: "text", id: "saml-display", name: "display", value: "Okta", autocomplete: "off" })),
    h("div", { class: "field" }, h("label", { for: "saml-metadata" }, "2. Okta IdP metadata (XML)"),
      h("textarea", { id: "saml-metadata", name: "metadata", required: true, spellcheck: "false", "aria-describedby": "saml-metadata-hint", placeholder: "<md:EntityDescriptor entityID=\"http://www.okta.com/…\">…" }),
      h("span", { class: "hint", id: "saml-metadata-hint" }, "Okta: Applications → your app → Sign On → SAML Signing Certificates → Actions → View IdP metadata.")),
    h("fieldset", { class: "field" }, h("legend", {}, "Roles from an Okta attribute (optional)"),
      h("div", { class: "grid3" },
        h("div", { class: "field" }, h("label", { for: "saml-attr" }, "Attribute"), h("input", { type: "text", id: "saml-attr", name: "attr", value: "groups", autocomplete: "off" })),
        h("div", { class: "field" }, h("label", { for: "saml-value" }, "Value"), h("input", { type: "text", id: "saml-value", name: "value", placeholder: "gatehouse-admins", autocomplete: "off" })),
        h("div", { class: "field" }, h("label", { for: "saml-roles" }, "Roles"), h("input", { type: "text", id: "saml-roles", name: "roles", placeholder: "editor, access", autocomplete: "off" })))),
    err,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary", id: "saml-submit" }, "Create SAML connector")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.hidden = true;
    const roles = form.roles.value.split(",").map((s) => s.trim()).filter(Boolean);
    const mappings = form.value.value.trim() && roles.length ? [{ name: form.attr.value.trim(), value: form.value.value.trim(), roles }] : [];
    const btn = form.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      const st2 = await api("POST", "/plugins/okta/saml", { name: form.name.value.trim(), display: form.display.value.trim(), entity_descriptor: form.metadata.value, attributes_to_roles: mappings });
      renderOkta(st2);
      toast("SAML connector created");
      document.getElementById("sso-tile-title").focus?.();
    } catch (ex) {
      err.textContent = ex.message;
      err.hidden = false;
      btn.disabled = false;
    }
  });
  return tile("sso-tile", "SSO", onOff(false, "", "Not configured"), form);
}

// SCIM tile

function oktaSettings(baseURL) {
  const row = (k, v) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v));
  return h("table", { class: "okta-table", id: "okta-settings" },
    h("caption", { class: "sr-only" }, "Values to enter in Okta"),
    h("tbody", {},
      row("SCIM connector base URL", h("code", {}, baseURL)),
      row("Unique identifier field for users", h("code", {}, "userName")),
      row("Supported provisioning actions", "Push New Users, Push Profile Updates (Push Groups optional)"),
      row("Authentication Mode", h("code", {}, "HTTP Header")),
      row("Authorization", "The bearer token Gatehouse generated (shown once)"),
      row("Provisioning → To App", "Enable Create Users, Update User Attributes, Deactivate Users"),
      row("Sync Password", "Leave off: Gatehouse never stores Okta passwords")));
}

function scimTile(st, readOnly) {
  const base = st.scim.base_url;
  if (!st.sso.connector) {
    return tile("scim-tile", "SCIM", onOff(false, "", "Off"),
      h("p", { class: "muted" }, "Set up SSO first. SCIM provisions the users who sign in through the Okta SAML connector, and adopts the temporary accounts of those who signed in before SCIM was on."));
  }
  if (freshToken && !st.scim.enabled) {
    // Step 2 of enabling: the token is on screen, once.
    const err = h("div", { class: "note note-err", role: "alert", hidden: true });
    return tile("scim-tile", "SCIM", onOff(false, "", "Off — not saved yet"),
      h("ol", { class: "steps" },
        h("li", {}, h("h3", {}, "Copy the bearer token"),
          h("div", { class: "note note-warn", id: "token-once" }, h("strong", {}, "Shown once"), "Gatehouse keeps only a hash. Copy it now into Okta; you can regenerate it later, but not see it again."),
          copyable(freshToken, "SCIM bearer token", { secret: true, id: "scim-token", buttonId: "copy-token" })),
        h("li", {}, h("h3", {}, "Enter these values in Okta"),
          h("p", { class: "small muted" }, "Okta: your app → General → App Settings → enable SCIM provisioning; then Provisioning → Integration."),
          copyable(base, "SCIM base URL", { id: "scim-base-url" }),
          oktaSettings(base)),
        h("li", {}, h("h3", {}, "Save and test"),
          h("p", { class: "small muted" }, "Save here, then click “Test API Credentials” in Okta."),
          err,
          h("div", { class: "actions" },
            h("button", { type: "button", class: "btn btn-primary", id: "scim-save", onclick: async (e) => {
              e.target.disabled = true;
              try {
                await api("PUT", "/plugins/okta/scim", { enabled: true });
                freshToken = null;
                toast("SCIM is on");
                await refreshOkta("scim-tile-title");
              } catch (ex) { err.textContent = ex.message; err.hidden = false; e.target.disabled = false; }
            } }, "Save SCIM Configuration"),
            // Cancel deletes the token just generated: an update that leaves
            // SCIM off deletes the plugin's token, so no token shown here
            // outlives the Cancel (turning SCIM on later needs a new one).
            h("button", { type: "button", class: "btn", id: "scim-cancel", onclick: async (e) => {
              e.target.disabled = true;
              try {
                await api("PUT", "/plugins/okta/scim", { enabled: false });
                freshToken = null;
                toast("SCIM stays off; the token was deleted");
                await refreshOkta("scim-tile-title");
              } catch (ex) { err.textContent = ex.message; err.hidden = false; e.target.disabled = false; }
            } }, "Cancel")))));
  }
  if (!st.scim.enabled) {
    const err = h("div", { class: "note note-err", role: "alert", hidden: true });
    return tile("scim-tile", "SCIM", onOff(false, "", "Off"),
      h("p", {}, "Let Okta create, update and deactivate Gatehouse users. A user deactivated or unassigned in Okta is deleted and locked at once: live sessions end and issued credentials stop working."),
      err,
      readOnly ? null : h("div", { class: "actions" },
        h("button", { type: "button", class: "btn btn-primary", id: "scim-enable", onclick: async (e) => {
          e.target.disabled = true;
          try {
            const r = await api("POST", "/plugins/okta/scim/token");
            freshToken = r.token;
            st.scim.base_url = r.base_url || base;
            renderOkta(st);
            document.getElementById("scim-token")?.focus?.();
            document.getElementById("copy-token")?.focus();
          } catch (ex) { err.textContent = ex.message; err.hidden = false; e.target.disabled = false; }
        } }, "Enable")));
  }
  // Enabled.
  const err = h("div", { class: "note note-err", role: "alert", hidden: true });
  const parts = [
    h("p", {}, "Okta provisions users to this endpoint."),
    h("dl", { class: "facts facts-stacked" },
      h("dt", {}, "SCIM base URL"), h("dd", {}, copyable(base, "SCIM base URL", { id: "scim-base-url" })),
      freshToken ? null : h("dt", {}, "Bearer token"),
      freshToken ? null : h("dd", { class: "muted", id: "scim-token-hidden" }, "Hidden. It was shown once when generated; regenerate it if it was lost.")),
  ];
  if (freshToken) {
    parts.push(h("div", { class: "note note-warn", id: "token-once" }, h("strong", {}, "New token — shown once"),
      "Paste it into Okta (Provisioning → Integration → API Token) and click “Test API Credentials”. The previous token no longer works."),
    copyable(freshToken, "SCIM bearer token", { secret: true, id: "scim-token", buttonId: "copy-token" }),
    h("div", { class: "actions" }, h("button", { type: "button", class: "btn btn-sm", id: "token-done", onclick: async () => { freshToken = null; await refreshOkta("scim-tile-title"); } }, "I have copied it")));
  }
  parts.push(h("details", {}, h("summary", {}, "Okta provisioning settings"), oktaSettings(base)), err);
  if (!readOnly) {
    parts.push(h("div", { class: "actions" },
      h("button", { type: "button", class: "btn", id: "scim-regenerate", onclick: async (e) => {
        const ok = await confirmDialog({
          title: "Regenerate the SCIM token?",
          body: ["The current token stops working at once. Okta cannot provision or deactivate users until you paste the new token into Okta."],
          confirm: "Regenerate token",
        });
        if (!ok) { e.target.focus(); return; }
        try {
          const r = await api("POST", "/plugins/okta/scim/token");
          freshToken = r.token;
          await refreshOkta("copy-token");
        } catch (ex) { err.textContent = ex.message; err.hidden = false; }
      } }, "Regenerate token"),
      h("button", { type: "button", class: "btn btn-danger", id: "scim-disable", onclick: async (e) => {
        const ok = await confirmDialog({
          title: "Disable SCIM?",
          body: ["Okta’s requests will be refused: new hires are not created and, more importantly, deactivations in Okta will no longer remove access in Gatehouse.", "Existing users and locks stay as they are.", "The bearer token is deleted: enabling SCIM again generates a new token, which you paste into Okta."],
          confirm: "Disable SCIM",
          danger: true,
        });
        if (!ok) { e.target.focus(); return; }
        try {
          await api("PUT", "/plugins/okta/scim", { enabled: false });
          freshToken = null;
          toast("SCIM is off");
          await refreshOkta("scim-enable");
        } catch (ex) { err.textContent = ex.message; err.hidden = false; }
      } }, "Disable")));
  }
  return tile("scim-tile", "SCIM", onOff(true, "On", ""), ...parts);
}

// Status tile

function statusTile(st) {
  const s = st.status;
  return h("section", { class: "card tile tile-wide", id: "status-tile", "aria-labelledby": "status-tile-title" },
    h("div", { class: "tile-head" }, h("h2", { id: "status-tile-title" }, "Status"),
      onOff(st.scim.enabled, "SCIM enabled", "SCIM disabled", "status-scim")),
    h("dl", { class: "facts" },
      h("dt", {}, "Last request from Okta"), h("dd", { id: "status-last-request" }, fmtTime(s.last_scim_request)),
      h("dt", {}, "Last error"), h("dd", { id: "status-last-error" }, s.last_error ? [h("span", { class: "outcome-failure" }, s.last_error), s.last_error_time ? h("span", { class: "muted small" }, ` — ${fmtTime(s.last_error_time)}`) : null] : h("span", { class: "muted" }, "None")),
      h("dt", {}, "Roles not granted"), h("dd", { id: "status-roles-dropped" }, s.roles_dropped && s.roles_dropped.length
        ? [h("span", { class: "outcome-failure" }, s.roles_dropped.join(", ")), h("span", { class: "muted small" }, ` — SCIM may not grant them (grantable_roles)${s.roles_dropped_time ? ", " + fmtTime(s.roles_dropped_time) : ""}`)]
        : h("span", { class: "muted" }, "None"))),
    h("dl", { class: "stats" },
      h("div", { class: "stat" }, h("dt", {}, "Users provisioned"), h("dd", { id: "status-provisioned" }, s.users_provisioned)),
      h("div", { class: "stat" }, h("dt", {}, "Users deactivated"), h("dd", { id: "status-deactivated" }, s.users_deactivated)),
      h("div", { class: "stat" }, h("dt", {}, "Locks written"), h("dd", { id: "status-locks" }, s.locks_written))),
    h("div", { class: "note note-info", id: "okta-does-not-send" }, h("strong", {}, "What Okta does not send"),
      "Suspending a user in Okta sends nothing over SCIM, so a suspended user keeps Gatehouse access. To cut access, deactivate the user or unassign them from the app in Okta (Gatehouse deletes and locks the account), or lock the user in Gatehouse. Okta also never retries a failed deactivation: check the last error above."),
    h("div", { id: "events" },
      h("h3", {}, "Recent SCIM and integration events"),
      st.permissions.events ? h("p", { class: "muted small" }, "Loading…") : h("p", { class: "muted small" }, "Your roles do not allow reading the audit log.")));
}

async function loadEvents() {
  const box = document.getElementById("events");
  if (!box) return;
  let data;
  try { data = await api("GET", "/plugins/okta/events"); } catch (err) {
    box.replaceChildren(h("h3", {}, "Recent SCIM and integration events"), h("p", { class: "muted small" }, err.status === 403 ? "Your roles do not allow reading the audit log." : err.message));
    return;
  }
  const rows = data.events.map((e) => h("tr", {},
    h("td", {}, new Date(e.time).toLocaleString()),
    h("td", {}, h("code", {}, e.type)),
    h("td", {}, e.user || "—"),
    h("td", { class: `outcome-${e.outcome}` }, e.outcome),
    h("td", { class: "msg" }, [e.resource, e.message].filter(Boolean).join(" — "))));
  box.replaceChildren(h("h3", {}, "Recent SCIM and integration events"),
    rows.length ? h("div", { class: "table-wrap" }, h("table", { class: "events", id: "events-table" },
      h("thead", {}, h("tr", {}, ["Time", "Event", "Actor", "Outcome", "Detail"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows)))
      : h("p", { class: "muted small" }, "No events in the last 7 days."));
}

route();
