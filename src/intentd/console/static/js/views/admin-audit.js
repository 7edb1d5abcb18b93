// Admin: the audit log, newest first, filterable by action, paged by cursor.

import { h, append, formatTime } from "../dom.js";
import { api, describeError } from "../api.js";
import { dataTable, itemsOf, alertBox } from "./admin-common.js";

const PAGE = 50;

export async function render(main) {
  const alert = alertBox();
  const results = h("div", {});
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  const action = h("input", { id: "filter-action", name: "action", autocomplete: "off", placeholder: "e.g. user.create" });
  const filters = h("form", { class: "row", "aria-label": "Filter the audit log" },
    h("div", { class: "field" }, h("label", { for: "filter-action" }, "Action"), action),
    h("div", { class: "field" }, h("button", { type: "submit" }, "Apply")));
  main.append(h("h1", { tabindex: "-1" }, "Audit log"), filters, alert, results, more);

  const columns = [
    { label: "Time", cell: (e) => formatTime(e.created_at) },
    { label: "Actor", mono: true, cell: (e) => e.actor_id || "" },
    { label: "Action", mono: true, cell: (e) => e.action },
    { label: "Target", mono: true, cell: (e) => (typeof e.target === "string" ? e.target : JSON.stringify(e.target ?? "")) },
    { label: "Detail", mono: true, cell: (e) => (e.detail == null ? "" : JSON.stringify(e.detail)) },
    { label: "IP", mono: true, cell: (e) => e.ip || "" },
  ];
  let cursor = null;

  async function load(reset) {
    alert.textContent = "";
    const query = { action: action.value.trim(), limit: PAGE };
    if (!reset && cursor) query.cursor = cursor;
    try {
      const page = await api("/api/admin/audit", { query });
      cursor = page.next_cursor || null;
      const table = dataTable(columns, itemsOf(page));
      if (reset) results.replaceChildren(table);
      else append(results.querySelector("tbody"), table.querySelectorAll("tbody tr"));
      more.hidden = !cursor;
    } catch (err) {
      alert.textContent = `Cannot load the audit log: ${describeError(err)}`;
    }
  }
  filters.addEventListener("submit", (e) => { e.preventDefault(); load(true); });
  more.addEventListener("click", () => load(false));
  await load(true);
}
