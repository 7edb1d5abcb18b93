// Small building blocks shared by the admin pages.

import { h } from "../dom.js";

/** columns: [{label, cell(row) -> Node|string}] */
export function dataTable(columns, rows, caption) {
  return h("div", { class: "table-wrap" }, h("table", {},
    caption ? h("caption", { class: "muted" }, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
    h("tbody", {}, rows.length
      ? rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.mono ? "mono" : null }, c.cell(row)))))
      : h("tr", {}, h("td", { colspan: String(columns.length), class: "muted" }, "Nothing to show.")))));
}

export function itemsOf(data) {
  return Array.isArray(data) ? data : data?.items || [];
}

/** A label + select pair; options: [[value, text]]. */
export function select(labelText, name, options, value = "") {
  const id = `filter-${name}`;
  const el = h("select", { id, name }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  return { el, wrap: h("div", { class: "field" }, h("label", { for: id }, labelText), el) };
}

export function alertBox() {
  return h("div", { class: "alert", role: "alert" });
}

export function statusLine() {
  return h("div", { class: "notice", role: "status" });
}
