// Admin: sessions of this tenant, filterable by user and state; revoke.

import { h, replace, formatTime, shortId } from "../dom.js";
import { api, describeError } from "../api.js";
import { dataTable, itemsOf, select, alertBox, statusLine } from "./admin-common.js";

export async function render(main) {
  const alert = alertBox();
  const status = statusLine();
  const tableArea = h("div", {});
  let users = [];
  try { users = itemsOf(await api("/api/admin/users")); } catch { /* filter by id only */ }
  const emailOf = new Map(users.map((u) => [u.id, u.email]));
  const userFilter = select("User", "user_id", [["", "Any user"], ...users.map((u) => [u.id, u.email])]);
  const activeFilter = select("State", "active", [["true", "Active"], ["false", "Ended"], ["", "All"]], "true");
  const filters = h("form", { class: "row", "aria-label": "Filter sessions" }, userFilter.wrap, activeFilter.wrap,
    h("div", { class: "field" }, h("button", { type: "submit" }, "Apply")));
  filters.addEventListener("submit", (e) => { e.preventDefault(); load(); });
  main.append(h("h1", { tabindex: "-1" }, "Sessions"), filters, alert, status, tableArea);

  async function revoke(session) {
    if (!confirm(`Revoke session ${shortId(session.session_id)}? Its sockets are closed at once.`)) return;
    alert.textContent = "";
    try {
      await api(`/api/admin/sessions/${encodeURIComponent(session.session_id)}`, { method: "DELETE" });
      status.textContent = `Session ${shortId(session.session_id)} revoked.`;
    } catch (err) {
      alert.textContent = `Cannot revoke: ${describeError(err)}`;
    }
    await load();
  }

  async function load() {
    try {
      const sessions = itemsOf(await api("/api/admin/sessions", { query: { user_id: userFilter.el.value, active: activeFilter.el.value } }));
      replace(tableArea, dataTable([
        { label: "Session", mono: true, cell: (s) => s.session_id },
        { label: "User", cell: (s) => emailOf.get(s.user_id) || s.user_id || "anonymous" },
        { label: "Created", cell: (s) => formatTime(s.created_at) },
        { label: "Expires", cell: (s) => formatTime(s.expires_at) },
        { label: "State", cell: (s) => (s.active ? "active" : s.revoked_at ? `revoked ${formatTime(s.revoked_at)}` : "expired") },
        { label: "Events", cell: (s) => String(s.last_seq ?? "") },
        { label: "Actions", cell: (s) => (s.active
          ? h("button", { type: "button", class: "danger", "aria-label": `Revoke session ${s.session_id}`, onClick: () => revoke(s) }, "Revoke")
          : "") },
      ], sessions));
    } catch (err) {
      alert.textContent = `Cannot list sessions: ${describeError(err)}`;
    }
  }
  await load();
}
