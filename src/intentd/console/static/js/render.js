// Shared renderers: results (tables for lists of records, pretty JSON otherwise),
// errors, event summaries and the live execution card.

import { h, append, replace, formatDuration, formatTime, shortId, toMillis } from "./dom.js";
import { TERMINAL } from "./conversation.js";

const MAX_ROWS = 200;

function isRecord(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function isScalar(value) {
  return value === null || ["string", "number", "boolean"].includes(typeof value);
}

export function prettyJson(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

function cellText(value) {
  if (value == null) return "";
  return isScalar(value) ? String(value) : JSON.stringify(value);
}

/** A table with one column per key found in the records. */
export function recordsTable(records, caption) {
  const columns = [...new Set(records.slice(0, MAX_ROWS).flatMap((r) => Object.keys(r)))];
  const table = h("table", {},
    caption ? h("caption", { class: "muted" }, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, records.slice(0, MAX_ROWS).map((r) => h("tr", {}, columns.map((c) => h("td", {}, cellText(r[c])))))),
  );
  const more = records.length > MAX_ROWS ? h("p", { class: "muted" }, `${records.length - MAX_ROWS} more rows not shown`) : null;
  return h("div", { class: "table-wrap" }, table, more);
}

/** Render a result readably: records become tables, small objects a definition list, the rest JSON. */
export function renderValue(value, depth = 0) {
  if (value === undefined || value === null) return h("span", { class: "muted" }, "(none)");
  if (isScalar(value)) return h("span", {}, String(value));
  if (Array.isArray(value)) {
    if (value.length === 0) return h("span", { class: "muted" }, "(empty list)");
    if (value.every(isRecord) && value.every((r) => Object.values(r).every(isScalar))) return recordsTable(value);
    if (value.every(isScalar) && value.length <= 50) return h("span", {}, value.join(", "));
    return prettyJson(value);
  }
  const entries = Object.entries(value);
  if (depth < 2 && entries.length > 0 && entries.length <= 20) {
    return h("dl", { class: "result" }, entries.map(([k, v]) => [h("dt", {}, k), h("dd", {}, renderValue(v, depth + 1))]));
  }
  return prettyJson(value);
}

export function renderError(error) {
  if (!error) return null;
  return h("div", { class: "error-box", role: "alert" },
    h("strong", {}, "Error "), h("code", {}, error.code || "error"), ": ", error.message || "");
}

export function statusBadge(status) {
  return h("span", { class: "status", "data-status": status }, status);
}

/** One line per event for timelines and the event log. */
export function eventSummary(event) {
  const d = event.data || {};
  switch (event.type) {
    case "execution.accepted": return `${d.intent ?? ""} ${d.params ? JSON.stringify(d.params) : ""}`;
    case "execution.progress": return `${Math.round((d.fraction ?? 0) * 100)}% ${d.message ?? ""}`;
    case "execution.completed": return "result " + JSON.stringify(d.result ?? null).slice(0, 120);
    case "execution.failed": return `${d.code}: ${d.message}`;
    case "agent.delta": return JSON.stringify(d.text ?? "");
    case "agent.message": return JSON.stringify((d.text ?? "").slice(0, 120));
    default: return Object.keys(d).length ? JSON.stringify(d).slice(0, 120) : "";
  }
}

function timelineItem(e) {
  return h("li", { "data-seq": e.seq ?? "" },
    h("span", { class: "mono" }, e.seq != null ? `#${e.seq} ` : ""),
    h("strong", {}, e.type), " ", h("span", { class: "muted" }, formatTime(e.created_at)), " ",
    h("span", { class: "mono" }, eventSummary(e)));
}

export function timeline(events) {
  return h("ol", { class: "timeline" }, events.map(timelineItem));
}

export function durationOf(exec, now = Date.now()) {
  const start = toMillis(exec.started_at ?? exec.created_at);
  if (Number.isNaN(start)) return "";
  const end = exec.finished_at != null ? toMillis(exec.finished_at) : now;
  return formatDuration(Math.max(0, end - start));
}

/** A live card for one execution; call update(exec) whenever it changes. */
export class ExecutionCard {
  constructor(exec, { onCancel }) {
    this.onCancel = onCancel;
    this.title = h("span", { class: "intent" });
    this.badge = h("span", { class: "status" });
    this.bar = h("progress", { max: "100", value: "0" });
    this.percent = h("span", { class: "percent" });
    this.message = h("span", { class: "progress-message" });
    this.duration = h("span", { class: "duration" });
    this.cancelButton = h("button", { type: "button", class: "danger", onClick: () => this.cancel() }, "Cancel");
    this.outcome = h("div", { class: "outcome" });
    this.eventsSummary = h("summary", {}, "Events");
    this.events = h("ol", { class: "timeline" });
    this.el = h("article", { class: "card", "data-execution-id": exec.execution_id },
      h("header", {}, h("div", {}, this.title, " ", this.badge), this.cancelButton),
      h("div", { class: "progress-row" }, this.bar),
      h("div", { class: "meta" }, this.percent, this.message, h("span", {}, "Duration: ", this.duration),
        h("span", { class: "mono" }, `id ${shortId(exec.execution_id)}`)),
      this.outcome,
      h("details", {}, this.eventsSummary, this.events));
    this.update(exec);
  }

  async cancel() {
    this.cancelButton.disabled = true;
    try {
      await this.onCancel(this.exec.execution_id);
    } catch (err) {
      replace(this.outcome, renderError({ code: err.code || "error", message: err.message }));
      this.cancelButton.disabled = false;
    }
  }

  update(exec) {
    this.exec = exec;
    const name = exec.intent || "execution";
    this.el.dataset.intent = name;
    this.el.dataset.status = exec.status;
    this.el.setAttribute("aria-label", `${name} execution, ${exec.status}`);
    this.title.textContent = name;
    this.badge.textContent = exec.status;
    this.badge.dataset.status = exec.status;
    const percent = Math.round(Math.min(1, Math.max(0, exec.progress || 0)) * 100);
    this.bar.value = percent;
    this.bar.setAttribute("aria-label", `Progress of ${name}`);
    this.bar.setAttribute("aria-valuetext", `${percent}% ${exec.progress_message || ""}`.trim());
    this.percent.textContent = `${percent}%`;
    this.message.textContent = exec.progress_message || "";
    this.cancelButton.hidden = TERMINAL.has(exec.status);
    this.cancelButton.setAttribute("aria-label", `Cancel ${name}`);
    this.tick();
    if (exec.status === "completed") replace(this.outcome, h("div", { class: "result-view" }, renderValue(exec.result)));
    else if (exec.status === "failed") replace(this.outcome, renderError(exec.error));
    else if (exec.status === "cancelled") replace(this.outcome, h("p", { class: "muted" }, "Cancelled."));
    // Events only ever get appended: add the new ones.
    const events = exec.events || [];
    if (events.length < this.events.childElementCount) this.events.replaceChildren();
    append(this.events, events.slice(this.events.childElementCount).map(timelineItem));
    this.eventsSummary.textContent = `Events (${events.length})`;
  }

  /** Refresh the running duration. */
  tick() {
    this.duration.textContent = durationOf(this.exec) || "–";
  }
}
