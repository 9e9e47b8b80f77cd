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
  sso_usersync: ["SSO + user sync", "badge-ok"],
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

function forbiddenState(what, need) {
  return h("div", { class: "card state", id: "forbidden", role: "alert" },
    h("div", { class: "state-icon", "aria-hidden": "true" }, "!"),
    h("h2", {}, "You lack permission"),
    h("p", {}, `Your roles (${(session && session.roles || []).join(", ") || "none"}) do not allow ${what}.`),
    h("p", {}, need || "Ask a Gatehouse administrator for a role that allows the plugin verbs (read, create, update on kind \"plugin\" and \"saml\"), such as the preset editor role."));
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
  [/^\/web\/users\/?$/, viewUsers, true],
  [/^\/web\/locks\/?$/, viewLocks, true],
  [/^\/web\/ssh\/?$/, viewSSH, true],
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
    st.state === "not_configured" ? null : settingsTile(st, readOnly),
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

// Provisioning settings tile: default roles, grantable roles, lock TTL.

// A Go duration as time.ParseDuration reads it, positive: "720h", "1h30m".
const DURATION_RE = /^([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))*$/;

function roleList(text) {
  return text.split(",").map((r) => r.trim()).filter(Boolean);
}

// checkRoles returns an error message for a role list, or "".
function checkRoles(label, roles) {
  const seen = new Set();
  for (const r of roles) {
    if (/[\s/]/.test(r)) return `${label}: “${r}” is not a role name (no spaces or slashes; separate roles with commas).`;
    if (r.length > 253) return `${label}: “${r.slice(0, 20)}…” is over 253 characters.`;
    if (seen.has(r)) return `${label}: “${r}” is listed twice.`;
    seen.add(r);
  }
  return "";
}

// checkLockTTL returns an error message for a lock TTL, or "".
function checkLockTTL(ttl) {
  if (ttl === "") return "";
  if (!DURATION_RE.test(ttl)) return `Lock TTL: “${ttl}” is not a duration. Use hours, such as 720h for 30 days, or leave it empty to keep locks until they are lifted.`;
  if (!/[1-9]/.test(ttl)) return "Lock TTL must be longer than zero, or empty to keep locks until they are lifted.";
  return "";
}

function settingsTile(st, readOnly) {
  const set = st.settings || { default_roles: [], grantable_roles: [], lock_ttl: "" };
  const list = (roles, none) => roles.length ? roles.join(", ") : h("span", { class: "muted" }, none);
  const facts = h("dl", { class: "facts facts-stacked", id: "settings-view" },
    h("dt", {}, "Default roles"), h("dd", { id: "settings-default-roles-view" }, list(set.default_roles, "None: SCIM users get only the roles of their groups.")),
    h("dt", {}, "Grantable roles"), h("dd", { id: "settings-grantable-roles-view" }, list(set.grantable_roles, "Not set: every role that cannot administer Gatehouse.")),
    h("dt", {}, "Lock TTL"), h("dd", { id: "settings-lock-ttl-view" }, set.lock_ttl || h("span", { class: "muted" }, "Not set: a deactivation lock stays until it is lifted.")));
  if (readOnly) {
    return tile("settings-tile", "Provisioning settings", onOff(false, "", "Read-only"), facts);
  }
  const err = h("div", { class: "note note-err", role: "alert", id: "settings-error", hidden: true });
  const field = (id, label, value, hint, placeholder) => h("div", { class: "field" },
    h("label", { for: id }, label),
    h("input", { type: "text", id, name: id, value, autocomplete: "off", spellcheck: "false", placeholder, "aria-describedby": `${id}-hint` }),
    h("span", { class: "hint", id: `${id}-hint` }, hint));
  const form = h("form", { id: "settings-form", novalidate: true },
    field("settings-default-roles", "Default roles", set.default_roles.join(", "), "Every user Okta provisions gets these, plus the roles their pushed groups map to. Comma-separated.", "access"),
    field("settings-grantable-roles", "Grantable roles", set.grantable_roles.join(", "), "The most SCIM may grant; other roles are dropped and shown in Status. Empty: every role that cannot administer Gatehouse.", "access, auditor"),
    field("settings-lock-ttl", "Lock TTL", set.lock_ttl, "How long a deactivation lock lasts, such as 720h. It must outlast the longest session a role allows. Empty: until lifted on the Locks page.", "720h"),
    err,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary", id: "settings-save" }, "Save settings")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.hidden = true;
    const body = {
      default_roles: roleList(form["settings-default-roles"].value),
      grantable_roles: roleList(form["settings-grantable-roles"].value),
      lock_ttl: form["settings-lock-ttl"].value.trim(),
    };
    const msg = checkRoles("Default roles", body.default_roles) || checkRoles("Grantable roles", body.grantable_roles) || checkLockTTL(body.lock_ttl);
    if (msg) { err.textContent = msg; err.hidden = false; return; }
    const btn = form.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      const st2 = await api("PUT", "/plugins/okta/settings", body);
      renderOkta(st2);
      toast("Settings saved");
      document.getElementById("settings-tile-title")?.focus?.();
      const ok = document.getElementById("settings-saved");
      if (ok) ok.hidden = false;
    } catch (ex) {
      err.textContent = ex.status === 403 ? `Refused: ${ex.message}` : ex.message;
      err.hidden = false;
      btn.disabled = false;
    }
  });
  return tile("settings-tile", "Provisioning settings", onOff(true, "Editable", ""),
    h("div", { class: "note note-ok", role: "status", id: "settings-saved", hidden: true }, "Saved. SCIM applies them from its next write of each user."),
    form);
}

// ---------- SSH access (every signed-in user) ----------

// Key types ssh-keygen makes, and the file name it gives each by default:
// the certificate must sit next to the private key as <name>-cert.pub.
const SSH_KEY_FILES = {
  "ssh-ed25519": "id_ed25519",
  "sk-ssh-ed25519@openssh.com": "id_ed25519_sk",
  "ssh-rsa": "id_rsa",
  "ecdsa-sha2-nistp256": "id_ecdsa",
  "ecdsa-sha2-nistp384": "id_ecdsa",
  "ecdsa-sha2-nistp521": "id_ecdsa",
  "sk-ecdsa-sha2-nistp256@openssh.com": "id_ecdsa_sk",
};

// checkPublicKey returns {error} or {line, keyFile} for pasted text. It
// only screens obvious mistakes (the server parses the key): above all a
// private key, which must never be sent anywhere.
function checkPublicKey(text) {
  const t = text.trim();
  if (!t) return { error: "Paste your public key first: the one line in ~/.ssh/id_ed25519.pub." };
  if (/PRIVATE KEY/.test(t) || /PuTTY-User-Key-File/.test(t)) {
    return { error: "This is a private key. It was not sent, and the box has been cleared. Never paste a private key anywhere: paste the .pub file instead, such as ~/.ssh/id_ed25519.pub.", private: true };
  }
  if (/^---- BEGIN SSH2 PUBLIC KEY/.test(t)) return { error: "This public key is in the SSH2 (RFC 4716) format. Convert it to one line with ssh-keygen -i -f key.pub, or paste ~/.ssh/id_ed25519.pub." };
  const lines = t.split(/\r?\n/).filter((l) => l.trim());
  if (lines.length > 1) return { error: "Paste one key: a single line, as in ~/.ssh/id_ed25519.pub." };
  const [type, blob] = t.split(/\s+/);
  if (/-cert-v01@openssh\.com$/.test(type)) return { error: "This is a certificate, not a public key. Paste the .pub file of your key, such as ~/.ssh/id_ed25519.pub." };
  if (!SSH_KEY_FILES[type] || !/^AAAA[A-Za-z0-9+/]+={0,3}$/.test(blob || "")) {
    return { error: "This does not look like an SSH public key. A public key is one line such as “ssh-ed25519 AAAAC3Nza… you@laptop”, as in ~/.ssh/id_ed25519.pub." };
  }
  return { line: t, keyFile: SSH_KEY_FILES[type] };
}

// splitHostPort splits "host:port" or "[v6]:port".
function splitHostPort(addr) {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(addr || "");
  return m ? { host: m[1], port: m[2] } : null;
}

let certURL = null; // the object URL of the last certificate download

async function viewSSH() {
  const err = h("div", { class: "note note-err", role: "alert", id: "ssh-error", hidden: true });
  const result = h("div", { id: "ssh-result", hidden: true });
  const key = h("textarea", { id: "ssh-pubkey", name: "public_key", rows: 3, autocomplete: "off", spellcheck: "false", autocapitalize: "none", "aria-describedby": "ssh-pubkey-hint", placeholder: "ssh-ed25519 AAAAC3Nza… you@laptop" });
  const form = h("form", { id: "ssh-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "ssh-pubkey" }, "Your SSH public key"), key,
      h("span", { class: "hint", id: "ssh-pubkey-hint" }, "The one line in ~/.ssh/id_ed25519.pub: the .pub file, never the private key. No key yet? Run ssh-keygen -t ed25519.")),
    err,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary", id: "ssh-sign" }, "Get certificate")));
  setPage("SSH access", h("div", { class: "page" },
    pageHead("SSH access", "Gatehouse signs your public key with a short-lived SSH certificate for the logins your roles allow."),
    h("p", { class: "muted lead", id: "ssh-about" }, "The certificate ends when your web session does, or sooner if your roles say so; a lock on your account voids it at once."),
    h("section", { class: "card tile", "aria-labelledby": "ssh-form-title" }, h("h2", { id: "ssh-form-title" }, "Sign your key"), form),
    result));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.hidden = true;
    result.hidden = true; // never show an old certificate next to a new error
    const k = checkPublicKey(key.value);
    if (k.error) {
      if (k.private) key.value = "";
      err.textContent = k.error; err.hidden = false; key.focus();
      return;
    }
    const btn = form.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      const cert = await api("POST", "/sessions/certs", { public_key: k.line });
      renderCert(result, cert, k.keyFile);
      toast("Certificate issued");
    } catch (ex) {
      // The session ended (expired, or signed out elsewhere): sign in again
      // and come back here.
      if (ex.status === 401) { session = null; navigate("/web/login?next=" + encodeURIComponent("/web/ssh"), true); return; }
      err.replaceChildren(h("strong", {}, ex.status === 403 ? "Refused" : ex.status === 400 ? "The server refused the key" : "Something went wrong"), ex.message);
      err.hidden = false;
    } finally {
      btn.disabled = false;
    }
  });
  key.focus();
}

function renderCert(result, cert, keyFile) {
  const file = `${keyFile}-cert.pub`;
  if (certURL) URL.revokeObjectURL(certURL);
  certURL = URL.createObjectURL(new Blob([cert.ssh_cert.trim() + "\n"], { type: "text/plain" }));
  const logins = cert.principals || [];
  const addr = splitHostPort(session && session.ssh_addr);
  const login = logins[0] || "<login>";
  const command = addr ? `ssh -i ~/.ssh/${keyFile} -p ${addr.port} ${login}@${addr.host}` : `ssh -i ~/.ssh/${keyFile} ${login}@<host>`;
  result.replaceChildren(
    h("section", { class: "card tile", "aria-labelledby": "ssh-cert-title" },
      h("div", { class: "tile-head" }, h("h2", { id: "ssh-cert-title", tabindex: "-1" }, "Your certificate"), h("span", { class: "badge badge-ok" }, "Issued")),
      h("dl", { class: "facts" },
        h("dt", {}, "Valid until"), h("dd", { id: "ssh-expiry" }, new Date(cert.valid_before).toLocaleString()),
        h("dt", {}, "Logins"), h("dd", { id: "ssh-principals" }, logins.length ? logins.join(", ") : h("span", { class: "muted" }, "none"))),
      logins.length ? null : h("div", { class: "note note-warn", id: "ssh-no-logins" }, h("strong", {}, "No logins"), "Your roles allow no SSH login, so this certificate opens no session. Ask a Gatehouse administrator for a role with logins."),
      h("div", { class: "copy cert" },
        h("code", { id: "ssh-cert", "aria-label": "SSH certificate" }, cert.ssh_cert.trim()),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "btn btn-sm", id: "ssh-copy", onclick: () => copyText(cert.ssh_cert.trim() + "\n", "Certificate") }, "Copy"),
          h("a", { class: "btn btn-sm", id: "ssh-download", href: certURL, download: file }, "Download"))),
      h("ol", { class: "steps" },
        h("li", {}, h("h3", {}, "Save it next to your private key"), h("p", {}, "As ", h("code", { id: "ssh-cert-path" }, `~/.ssh/${file}`), `: ssh then offers it with ~/.ssh/${keyFile}. If your key has another name, name the certificate after it.`)),
        h("li", {}, h("h3", {}, "Connect"),
          copyable(command, "ssh command", { id: "ssh-command", buttonId: "ssh-command-copy" }),
          addr ? null : h("p", { class: "muted small" }, "This server does not know its SSH address: ask your administrator for the host and port."),
          logins.length > 1 ? h("p", { class: "muted small" }, `Replace ${login} with any of your logins: ${logins.join(", ")}.`) : null))));
  result.hidden = false;
  document.getElementById("ssh-cert-title").focus();
}

// ---------- users ----------

const ORIGINS = { local: "Local", saml: "SAML (temporary)", scim: "SCIM" };
const USER_STATES = { active: ["Active", "badge-ok"], locked: ["Locked", "badge-err"], expiring: ["Expiring", "badge-info"] };

async function viewUsers() {
  const params = new URLSearchParams(location.search);
  const q = params.get("q") || "";
  // cursors[i] is the cursor of page i+1; the first page has none.
  const cursors = [""];
  const err = h("div", { class: "note note-err", role: "alert", id: "users-error", hidden: true });
  const search = h("input", { type: "search", id: "users-search", name: "q", value: q, autocomplete: "off", spellcheck: "false", maxlength: 253, "aria-describedby": "users-search-hint", placeholder: "alice" });
  const form = h("form", { class: "toolbar", id: "users-search-form", role: "search" },
    h("div", { class: "field grow" }, h("label", { for: "users-search" }, "Search by name"), search,
      h("span", { class: "hint", id: "users-search-hint" }, "Names starting with this text, in any case.")),
    h("button", { type: "submit", class: "btn", id: "users-search-submit" }, "Search"));
  const body = h("div", { id: "users-body" }, h("p", { class: "muted" }, "Loading…"));
  setPage("Users", h("div", { class: "page" },
    pageHead("Users", "Everyone with a Gatehouse account: where it comes from, whether it is locked, and its roles."),
    form, err, body));

  let page = 0;
  async function load() {
    err.hidden = true;
    const query = new URLSearchParams({ limit: "25" });
    if (search.value.trim()) query.set("q", search.value.trim());
    if (cursors[page]) query.set("cursor", cursors[page]);
    let data;
    try {
      data = await api("GET", "/admin/users?" + query);
    } catch (ex) {
      if (ex.status === 403) { body.replaceChildren(forbiddenState("listing users", "Ask a Gatehouse administrator for a role that allows list and read on kind \"user\", such as the preset auditor or editor role.")); return; }
      if (ex.status === 401) throw ex;
      err.textContent = ex.message; err.hidden = false; return;
    }
    cursors[page + 1] = data.next_cursor || "";
    body.replaceChildren(usersTable(data), pager("users", page, !!data.next_cursor, (p) => { page = p; load(); }));
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const v = search.value.trim();
    history.replaceState({}, "", v ? "/web/users?q=" + encodeURIComponent(v) : "/web/users");
    cursors.length = 1; page = 0;
    load();
  });
  await load();
}

function usersTable(data) {
  if (!data.users.length) return h("p", { class: "card empty", id: "users-empty" }, "No user matches.");
  const rows = data.users.map((u) => {
    const [label, cls] = USER_STATES[u.state] || [u.state, "badge-off"];
    const origin = u.origin === "scim" ? `SCIM (${u.plugin})` : u.origin === "saml" ? `SAML (${u.connector || "?"}), temporary` : ORIGINS[u.origin] || u.origin;
    let scim = h("span", { class: "muted" }, "—");
    if (u.scim) {
      scim = u.scim.missing ? h("span", { class: "outcome-failure" }, "No SCIM record")
        : h("span", {}, u.scim.active ? "Active" : "Deactivated", u.scim.last_modified ? h("span", { class: "muted small" }, ` · ${fmtTime(u.scim.last_modified)}`) : null);
    }
    return h("tr", { "data-user": u.name },
      h("th", { scope: "row" }, u.name),
      h("td", {}, origin),
      h("td", {}, h("span", { class: `badge ${cls}`, "data-state": u.state, title: u.lock ? `${u.lock.name}: ${u.lock.message || ""}` : null }, label),
        u.lock ? h("div", { class: "small muted" }, h("a", { href: "/web/locks", "data-link": true }, u.lock.name)) : null),
      h("td", {}, u.roles.length ? u.roles.join(", ") : h("span", { class: "muted" }, "none")),
      h("td", {}, u.expires ? new Date(u.expires).toLocaleString() : h("span", { class: "muted" }, "Never")),
      h("td", {}, scim));
  });
  return h("div", {},
    data.locks_visible ? null : h("div", { class: "note note-info", id: "users-no-locks" }, "Your roles do not allow reading locks, so no user shows as locked here."),
    h("div", { class: "table-wrap card" }, h("table", { class: "events data", id: "users-table" },
      h("caption", { class: "sr-only" }, "Users"),
      h("thead", {}, h("tr", {}, ["Name", "Origin", "State", "Roles", "Expires", "Last SCIM event"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows))));
}

// pager renders Previous/Next for cursor paging; go(p) loads page p.
function pager(id, page, hasNext, go) {
  return h("nav", { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", class: "btn btn-sm", id: `${id}-prev`, disabled: page === 0, onclick: () => go(page - 1) }, "‹ Previous"),
    h("span", { class: "muted small", id: `${id}-page` }, `Page ${page + 1}`),
    h("button", { type: "button", class: "btn btn-sm", id: `${id}-next`, disabled: !hasNext, onclick: () => go(page + 1) }, "Next ›"));
}

// ---------- locks ----------

function lockTarget(t) {
  const parts = [];
  if (t.user) parts.push(`user ${t.user}`);
  if (t.role) parts.push(`role ${t.role}`);
  if (t.login) parts.push(`login ${t.login}`);
  if (t.node) parts.push(`node ${t.node}`);
  return parts.join(" + ");
}

const SCIM_LIFT_NOTE = [
  "Lifting it does not bring the account back: Okta deactivated or unassigned this person, and Gatehouse deleted the account. Certificates and sessions of the old account stay void.",
  "To give them access again, re-assign or reactivate them in Okta: SCIM creates a new account and lifts its own lock. Lift it here only to let a new account of this name be created some other way.",
];

async function viewLocks() {
  const cursors = [""];
  let page = 0;
  const err = h("div", { class: "note note-err", role: "alert", id: "locks-error", hidden: true });
  const result = h("div", { class: "note note-ok", role: "status", id: "lift-result", hidden: true });
  const body = h("div", { id: "locks-body" }, h("p", { class: "muted" }, "Loading…"));
  setPage("Locks", h("div", { class: "page" },
    pageHead("Locks", "A lock refuses new sign-ins and certificates and ends live sessions of what it targets."),
    h("div", { class: "note note-info", id: "locks-about" }, h("strong", {}, "Locks from SCIM"),
      "When Okta deactivates or unassigns a user, Gatehouse deletes the account and writes a lock on its name: permanent unless the Okta plugin sets a lock TTL. Re-assigning the person in Okta lifts that lock by itself."),
    result, err, body));

  async function load() {
    err.hidden = true;
    const query = new URLSearchParams({ limit: "25" });
    if (cursors[page]) query.set("cursor", cursors[page]);
    let data;
    try {
      data = await api("GET", "/admin/locks?" + query);
    } catch (ex) {
      if (ex.status === 403) { body.replaceChildren(forbiddenState("listing locks", "Ask a Gatehouse administrator for a role that allows list and read on kind \"lock\", such as the preset auditor or editor role.")); return; }
      if (ex.status === 401) throw ex;
      err.textContent = ex.message; err.hidden = false; return;
    }
    cursors[page + 1] = data.next_cursor || "";
    // replaceChildren would turn a null into the text "null": filter it.
    body.replaceChildren(...[
      data.can_lift ? null : h("div", { class: "note note-info", id: "locks-read-only" }, h("strong", {}, "Read-only"), "Your roles allow viewing locks but not lifting them."),
      locksTable(data, lift),
      pager("locks", page, !!data.next_cursor, (p) => { page = p; load(); }),
    ].filter(Boolean));
  }

  async function lift(l, btn) {
    const ok = await confirmDialog({
      title: `Lift the lock on ${lockTarget(l.target)}?`,
      body: l.scim ? SCIM_LIFT_NOTE : ["Whatever it targets can sign in, get certificates and connect again at once.", "This is audited under your name."],
      confirm: "Lift lock",
      danger: true,
    });
    if (!ok) { btn.focus(); return; }
    btn.disabled = true;
    try {
      const r = await api("DELETE", "/admin/locks/" + encodeURIComponent(l.name));
      result.replaceChildren(h("strong", {}, `Lock ${r.lifted.name} lifted`), r.note);
      result.hidden = false;
      toast("Lock lifted");
      await load();
      result.focus?.();
    } catch (ex) {
      err.textContent = ex.message; err.hidden = false; btn.disabled = false;
    }
  }
  await load();
}

function locksTable(data, lift) {
  if (!data.locks.length) return h("p", { class: "card empty", id: "locks-empty" }, "No locks.");
  const rows = data.locks.map((l) => h("tr", { "data-lock": l.name },
    h("th", { scope: "row" }, lockTarget(l.target), h("div", { class: "small muted" }, l.name)),
    h("td", { class: "msg" }, l.scim ? h("span", { class: "badge badge-info" }, `SCIM ${l.reason === "scim-deletion" ? "deletion" : "deactivation"}`) : null,
      l.scim ? " " : null, l.message || h("span", { class: "muted" }, "—")),
    h("td", {}, l.created_by || h("span", { class: "muted" }, "—")),
    h("td", {}, l.created_at ? new Date(l.created_at).toLocaleString() : "—"),
    h("td", {}, l.expires ? [new Date(l.expires).toLocaleString(), l.in_force ? null : h("span", { class: "muted small" }, " (expired)")] : "Until lifted"),
    data.can_lift ? h("td", {}, h("button", { type: "button", class: "btn btn-sm btn-danger lift", "data-lock": l.name, "aria-label": `Lift lock ${l.name}`, onclick: (e) => lift(l, e.currentTarget) }, "Lift")) : null));
  const cols = ["Target", "Reason", "Written by", "When", "Expires"];
  if (data.can_lift) cols.push("Action");
  return h("div", { class: "table-wrap card" }, h("table", { class: "events data", id: "locks-table" },
    h("caption", { class: "sr-only" }, "Locks"),
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows)));
}

route();
