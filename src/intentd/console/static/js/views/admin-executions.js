// Admin: executions of this tenant, filtered by status, intent and user, paged by cursor.

import { h, append, formatTime, shortId } from "../dom.js";
import { api, describeError } from "../api.js";
import { dataTable, itemsOf, select, alertBox } from "./admin-common.js";
import { statusBadge, durationOf } from "../render.js";

const STATUSES = ["accepted", "running", "compensating", "completed", "failed", "cancelled"];
const PAGE = 50;

export async function render(main) {
  const alert = alertBox();
  const results = h("div", {});
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  let users = [];
  let intents = [];
  try { users = itemsOf(await api("/api/admin/users")); } catch { /* filter by id only */ }
  try { intents = itemsOf(await api("/api/intent/types")).map((t) => t.name); } catch { /* free text still works */ }
  const emailOf = new Map(users.map((u) => [u.id, u.email]));
  const query = new URLSearchParams(location.search);

  const status = select("Status", "status", [["", "Any status"], ...STATUSES.map((s) => [s, s])], query.get("status") || "");
  const intent = h("input", { id: "filter-intent", name: "intent", list: "intent-names", value: query.get("intent") || "", autocomplete: "off" });
  const user = select("User", "user_id", [["", "Any user"], ...users.map((u) => [u.id, u.email])], query.get("user_id") || "");
  const filters = h("form", { class: "row", "aria-label": "Filter executions" },
    status.wrap,
    h("div", { class: "field" }, h("label", { for: "filter-intent" }, "Intent"), intent,
      h("datalist", { id: "intent-names" }, ["agent.turn", ...intents].map((n) => h("option", { value: n })))),
    user.wrap,
    h("div", { class: "field" }, h("button", { type: "submit" }, "Apply")));
  main.append(h("h1", { tabindex: "-1" }, "Executions"), filters, alert, results, more);

  let cursor = null;
  const columns = [
    { label: "Execution", mono: true, cell: (x) => h("a", { href: `/admin/executions/${encodeURIComponent(x.execution_id)}`, "data-link": true, "aria-label": `Execution ${x.execution_id}` }, shortId(x.execution_id)) },
    { label: "Intent", mono: true, cell: (x) => x.intent },
    { label: "Status", cell: (x) => statusBadge(x.status) },
    { label: "Progress", cell: (x) => `${Math.round((x.progress || 0) * 100)}%` },
    { label: "User", cell: (x) => emailOf.get(x.user_id) || x.user_id || "" },
    { label: "Created", cell: (x) => formatTime(x.created_at) },
    { label: "Duration", cell: (x) => durationOf(x) },
  ];

  async function load(reset) {
    alert.textContent = "";
    const params = { status: status.el.value, intent: intent.value.trim(), user_id: user.el.value, limit: PAGE };
    if (!reset && cursor) params.cursor = cursor;
    try {
      const page = await api("/api/admin/executions", { query: params });
      const rows = itemsOf(page);
      cursor = page.next_cursor || null;
      if (reset) results.replaceChildren(dataTable(columns, rows));
      else append(results.querySelector("tbody"), dataTable(columns, rows).querySelectorAll("tbody tr"));
      more.hidden = !cursor;
    } catch (err) {
      alert.textContent = `Cannot list executions: ${describeError(err)}`;
    }
  }

  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const shown = new URLSearchParams(Object.entries({ status: status.el.value, intent: intent.value.trim(), user_id: user.el.value }).filter(([, v]) => v));
    history.replaceState(null, "", `${location.pathname}${shown.size ? `?${shown}` : ""}`);
    load(true);
  });
  more.addEventListener("click", () => load(false));
  await load(true);
}
