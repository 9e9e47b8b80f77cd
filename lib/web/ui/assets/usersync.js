// User sync card of the Okta page: Okta user sync, the pull alternative to
// SCIM (docs/usersync.md). It loads its own state from
// /v1/webapi/plugins/okta/usersync and is given app.js's helpers, so that it
// builds the DOM the same way (h() and textContent only, never innerHTML).
// The stored credential is never shown: the server never returns it.
// ui: {h, api, tile, fmtTime, toast, refresh(focusId)}.

export function userSyncTile(ui, readOnly, scimOn) {
  const { h, tile } = ui;
  const box = tile("usersync-tile", "User sync", h("span", { class: "badge badge-off", id: "usersync-badge" }, "…"),
    h("p", { class: "muted small" }, "Loading…"));
  load(ui, box, readOnly, scimOn);
  return box;
}

async function load(ui, box, readOnly, scimOn) {
  const { h, api } = ui;
  let st;
  try {
    st = await api("GET", "/plugins/okta/usersync");
  } catch (err) {
    box.replaceChildren(head(ui, false, "Off"), h("p", { class: "muted small", id: "usersync-error" },
      err.status === 403 ? "Your roles do not allow viewing user sync." : err.message));
    return;
  }
  render(ui, box, st, readOnly, scimOn);
}

function head(ui, on, label) {
  const { h } = ui;
  return h("div", { class: "tile-head" }, h("h2", { id: "usersync-tile-title" }, "User sync"),
    h("span", { class: `badge ${on ? "badge-ok" : "badge-off"}`, id: "usersync-badge" }, label));
}

function render(ui, box, st, readOnly, scimOn) {
  const { h, fmtTime } = ui;
  const s = st.settings || {};
  const run = st.state || {};
  let outcome = "Never run";
  if (run.running) outcome = "Running";
  else if (run.last_run_start) outcome = run.last_run_ok ? "OK" : "Failed";
  const facts = h("dl", { class: "facts", id: "usersync-facts" },
    h("dt", {}, "Okta org"), h("dd", { id: "usersync-org" }, s.org_url || "—"),
    h("dt", {}, "App ID"), h("dd", { id: "usersync-app" }, s.app_id || "—"),
    h("dt", {}, "Credential"), h("dd", { id: "usersync-credential" }, st.credential_kind || "None stored"),
    h("dt", {}, "Interval"), h("dd", {}, `${s.interval || "10m"} (full pass every ${s.full_pass_interval || "1h"})`),
    h("dt", {}, "Last run"), h("dd", { id: "usersync-last-run" },
      run.last_run_start ? `${fmtTime(run.last_run_start)} — ${run.last_run_full ? "full pass" : "incremental"} — ` : "",
      h("span", { id: "usersync-outcome", class: run.last_run_start && !run.running && !run.last_run_ok ? "outcome-failure" : "" }, outcome)),
    h("dt", {}, "Next run"), h("dd", { id: "usersync-next-run" }, s.enabled && run.next_run ? fmtTime(run.next_run) : "—"),
    // A clean run's "last error" is a warning (users not applied, the System
    // Log refused): shown, but not in the failure colour.
    h("dt", {}, "Last error"), h("dd", { id: "usersync-last-error" }, run.last_error ? h("span", { class: run.last_run_ok ? "" : "outcome-failure" }, run.last_error) : h("span", { class: "muted" }, "None")));
  const stats = h("dl", { class: "stats" },
    [["Seen", "users_seen"], ["Created", "users_created"], ["Updated", "users_updated"], ["Locked", "users_locked"], ["Not applied", "users_refused"], ["Okta calls", "api_calls"]]
      .map(([label, key]) => h("div", { class: "stat" }, h("dt", {}, label), h("dd", { id: `usersync-${key.replace("_", "-")}` }, String(run[key] || 0)))));
  const parts = [head(ui, !!s.enabled, s.enabled ? "On" : "Off"),
    h("p", { class: "muted small" }, "Gatehouse reads the users assigned to the Okta app from Okta's API every interval (no inbound access from Okta needed). A plugin runs SCIM or user sync, not both."),
    facts, stats];
  if (!readOnly) parts.push(form(ui, box, st, scimOn));
  box.replaceChildren(...parts);
}

function field(h, id, label, attrs) {
  const tag = attrs.tag || "input";
  const type = tag === "input" ? attrs.type || "text" : null;
  return h("div", { class: "field" }, h("label", { for: id }, label), h(tag, { id, ...attrs, type, tag: null }));
}

function form(ui, box, st, scimOn) {
  const { h, api, toast } = ui;
  const s = st.settings || {};
  const result = h("div", { id: "usersync-result", role: "status", "aria-live": "polite" });
  const show = (ok, msg) => result.replaceChildren(h("div", { class: `note ${ok ? "note-info" : "note-err"}` }, msg));
  const val = (id) => document.getElementById(id).value.trim();
  const reload = async () => { const fresh = await api("GET", "/plugins/okta/usersync"); render(ui, box, fresh, false, scimOn && !fresh.settings?.enabled); };
  const guard = (fn) => async (ev) => {
    ev.preventDefault();
    try { await fn(); } catch (err) { show(false, err.message); }
  };
  const save = (enabled) => guard(async () => {
    const body = {
      enabled, org_url: val("usersync-org-url"), app_id: val("usersync-app-id"), credential_kind: val("usersync-kind"),
      interval: val("usersync-interval"), full_pass_interval: val("usersync-full-pass"),
      switch_from_scim: enabled && document.getElementById("usersync-switch").checked,
    };
    await api("PUT", "/plugins/okta/usersync", body);
    toast(enabled ? "User sync is on" : "User sync is off");
    // The switch may have turned SCIM off: redraw the whole page.
    await ui.refresh("usersync-tile-title");
  });
  return h("form", { id: "usersync-form", class: "form" },
    field(h, "usersync-org-url", "Okta org URL", { placeholder: "https://example.okta.com", value: s.org_url || "" }),
    field(h, "usersync-app-id", "App ID", { placeholder: "0oa…", value: s.app_id || "" }),
    h("div", { class: "field" }, h("label", { for: "usersync-kind" }, "Credential"),
      h("select", { id: "usersync-kind" },
        h("option", { value: "oauth_private_key_jwt", selected: s.credential_kind !== "api_token" }, "OAuth service app (private_key_jwt)"),
        h("option", { value: "api_token", selected: s.credential_kind === "api_token" }, "API token (SSWS)"))),
    field(h, "usersync-interval", "Interval", { placeholder: "10m", value: s.interval || "" }),
    field(h, "usersync-full-pass", "Full pass every", { placeholder: "1h", value: s.full_pass_interval || "" }),
    h("fieldset", { class: "field" }, h("legend", {}, "Credential (stored sealed; never shown again)"),
      field(h, "usersync-client-id", "Client ID", { autocomplete: "off" }),
      field(h, "usersync-key-id", "Key ID (kid, optional)", { autocomplete: "off" }),
      field(h, "usersync-private-key", "Private key (PEM)", { tag: "textarea", rows: "4", autocomplete: "off", spellcheck: "false" }),
      field(h, "usersync-api-token", "or API token", { type: "password", autocomplete: "off" }),
      h("button", { type: "button", class: "btn btn-sm", id: "usersync-store-credential", onclick: guard(async () => {
        const token = val("usersync-api-token");
        const body = token ? { api_token: token } : { client_id: val("usersync-client-id"), key_id: val("usersync-key-id"), private_key_pem: document.getElementById("usersync-private-key").value };
        const out = await api("PUT", "/plugins/okta/usersync/credentials", body);
        for (const id of ["usersync-api-token", "usersync-private-key"]) document.getElementById(id).value = "";
        toast(`Stored a ${out.credential_kind} credential`);
        await reload();
      }) }, "Store credential")),
    scimOn ? h("label", { class: "check" }, h("input", { type: "checkbox", id: "usersync-switch" }), " Turn SCIM off (its token is deleted) and user sync on; accounts SCIM created stay") : h("input", { type: "hidden", id: "usersync-switch" }),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "btn btn-primary", id: "usersync-save", onclick: save(true) }, "Save and turn on"),
      h("button", { type: "button", class: "btn btn-sm", id: "usersync-test", onclick: guard(async () => {
        const out = await api("POST", "/plugins/okta/usersync/test");
        show(out.ok, out.message);
      }) }, "Test connection"),
      h("button", { type: "button", class: "btn btn-sm", id: "usersync-sync-now", disabled: !s.enabled, onclick: guard(async () => {
        const { trigger_id: id } = await api("POST", "/plugins/okta/usersync/sync", {});
        show(true, "Sync requested…");
        for (let i = 0; i < 600; i++) {
          await new Promise((r) => setTimeout(r, 1000));
          const fresh = await api("GET", "/plugins/okta/usersync");
          if (fresh.state && fresh.state.last_trigger_id === id && !fresh.state.running) {
            render(ui, box, fresh, false, false);
            const res = document.getElementById("usersync-result");
            const st2 = fresh.state;
            if (res) res.replaceChildren(h("div", { class: `note ${st2.last_run_ok ? "note-info" : "note-err"}` },
              st2.last_run_ok ? `Sync done: ${st2.users_created || 0} created, ${st2.users_updated || 0} updated, ${st2.users_locked || 0} locked.` : `Sync failed: ${st2.last_error}`));
            return;
          }
        }
        show(false, "No server finished the run in 10 minutes.");
      }) }, "Sync now"),
      s.enabled ? h("button", { type: "button", class: "btn btn-sm", id: "usersync-off", onclick: save(false) }, "Turn off") : null),
    result);
}
