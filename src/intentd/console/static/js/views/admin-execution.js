// Admin: one execution with its event timeline; cancel and retry.

import { h, replace, formatTime } from "../dom.js";
import { api, describeError } from "../api.js";
import { alertBox, statusLine } from "./admin-common.js";
import { renderValue, renderError, statusBadge, timeline, durationOf, prettyJson } from "../render.js";
import { TERMINAL } from "../conversation.js";

const REFRESH_MS = 2000;

export async function render(main, { app, params }) {
  const id = params[0];
  const alert = alertBox();
  const status = statusLine();
  const body = h("div", {});
  main.append(h("h1", { tabindex: "-1" }, "Execution"),
    h("p", {}, h("a", { href: "/admin/executions", "data-link": true }, "← All executions")), alert, status, body);
  let timer = null;
  let stopped = false;

  async function act(action) {
    alert.textContent = "";
    try {
      const answer = await api(`/api/admin/executions/${encodeURIComponent(id)}/${action}`, { method: "POST" });
      if (action === "retry" && answer?.execution_id) {
        app.navigate(`/admin/executions/${encodeURIComponent(answer.execution_id)}`);
        return;
      }
      status.textContent = action === "cancel" ? "Cancellation requested." : "";
    } catch (err) {
      alert.textContent = `Cannot ${action}: ${describeError(err)}`;
    }
    await load();
  }

  async function load() {
    let x;
    try {
      x = await api(`/api/admin/executions/${encodeURIComponent(id)}`);
    } catch (err) {
      alert.textContent = `Cannot load execution ${id}: ${describeError(err)}`;
      return;
    }
    const done = TERMINAL.has(x.status);
    const facts = [
      ["Id", h("span", { class: "mono" }, x.execution_id)],
      ["Intent", h("span", { class: "mono" }, x.intent)],
      ["Status", statusBadge(x.status)],
      ["Progress", h("span", {}, h("progress", { max: "100", value: String(Math.round((x.progress || 0) * 100)), "aria-label": "Progress" }), ` ${Math.round((x.progress || 0) * 100)}% ${x.progress_message || ""}`)],
      ["Session", h("span", { class: "mono" }, x.session_id || "")],
      ["User", h("span", { class: "mono" }, x.user_id || "")],
      ["Parent", x.parent_id ? h("a", { href: `/admin/executions/${encodeURIComponent(x.parent_id)}`, "data-link": true }, x.parent_id) : "–"],
      ["Retry of", x.retry_of ? h("a", { href: `/admin/executions/${encodeURIComponent(x.retry_of)}`, "data-link": true }, x.retry_of) : "–"],
      ["Created", formatTime(x.created_at)],
      ["Started", formatTime(x.started_at)],
      ["Finished", formatTime(x.finished_at)],
      ["Duration", durationOf(x)],
    ];
    // Re-rendering replaces the buttons: keep keyboard focus on the same control.
    const focused = body.contains(document.activeElement) ? document.activeElement.textContent : null;
    replace(body,
      h("dl", { class: "result" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("div", { class: "row" },
        done ? null : h("button", { type: "button", class: "danger", onClick: () => act("cancel") }, "Cancel execution"),
        done ? h("button", { type: "button", onClick: () => act("retry") }, "Retry execution") : null),
      h("h2", {}, "Parameters"), prettyJson(x.params ?? {}),
      x.status === "completed" ? [h("h2", {}, "Result"), renderValue(x.result)] : null,
      x.error ? [h("h2", {}, "Error"), renderError(x.error)] : null,
      h("h2", {}, "Event timeline"), timeline(x.events || []));
    if (focused != null) {
      const same = [...body.querySelectorAll("button, a")].find((el) => el.textContent === focused);
      (same || main.querySelector("h1")).focus();
    }
    clearTimeout(timer);
    if (!done && !stopped) timer = setTimeout(load, REFRESH_MS);
  }

  await load();
  return () => { stopped = true; clearTimeout(timer); };
}
