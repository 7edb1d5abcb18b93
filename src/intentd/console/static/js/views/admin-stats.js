// Admin: live stats polled every few seconds, with a small SVG chart (no library).

import { h, svg, replace } from "../dom.js";
import { api, describeError } from "../api.js";
import { alertBox, dataTable } from "./admin-common.js";

const POLL_MS = 3000;
const POINTS = 40;
const W = 300;
const H = 100;
const PAD = 14;

export async function render(main) {
  const alert = alertBox();
  const cards = h("div", { class: "stats-grid" });
  const byStatus = h("div", {});
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "chart-title" });
  const updated = h("p", { class: "hint", role: "status" });
  main.append(h("h1", { tabindex: "-1" }, "Live stats"), alert, cards,
    h("h2", { id: "chart-title" }, `Events per second and open sockets (last ${(POINTS * POLL_MS) / 1000} s)`),
    chart, h("div", { class: "legend" }, h("span", { class: "l1" }, "events/s"), h("span", { class: "l2" }, "sockets")),
    updated, h("h2", {}, "Executions by status"), byStatus);

  const history = [];
  let timer = null;
  let stopped = false;

  async function poll() {
    try {
      const stats = await api("/api/admin/stats");
      alert.textContent = "";
      history.push({ eps: Number(stats.events_per_second) || 0, sockets: Number(stats.sockets) || 0 });
      if (history.length > POINTS) history.shift();
      replace(cards,
        stat("Open sockets", stats.sockets),
        stat("Active sessions", stats.sessions_active),
        stat("Events per second", (Number(stats.events_per_second) || 0).toFixed(2)));
      const statuses = Object.entries(stats.executions_by_status || {}).map(([status, count]) => ({ status, count }));
      replace(byStatus, dataTable([
        { label: "Status", cell: (r) => r.status },
        { label: "Executions", cell: (r) => String(r.count) },
      ], statuses));
      drawChart(chart, history);
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      alert.textContent = `Cannot load stats: ${describeError(err)}`;
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }

  await poll();
  return () => { stopped = true; clearTimeout(timer); };
}

function stat(label, value) {
  return h("div", { class: "stat" }, h("div", { class: "hint" }, label), h("div", { class: "value" }, String(value ?? "–")));
}

function drawChart(chart, history) {
  const max = Math.max(1, ...history.map((p) => Math.max(p.eps, p.sockets)));
  const x = (i) => PAD + (i * (W - 2 * PAD)) / (POINTS - 1);
  const y = (v) => H - PAD - (v / max) * (H - 2 * PAD);
  const line = (key) => history.map((p, i) => `${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
  const latest = history.at(-1) || { eps: 0, sockets: 0 };
  replace(chart,
    svg("title", { id: "chart-svg-title" }, `Latest: ${latest.eps.toFixed(2)} events per second, ${latest.sockets} sockets; scale 0 to ${max}`),
    svg("line", { class: "axis", x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD }),
    svg("line", { class: "axis", x1: PAD, y1: PAD, x2: PAD, y2: H - PAD }),
    svg("text", { x: 2, y: PAD }, String(max)),
    svg("text", { x: 2, y: H - PAD + 3 }, "0"),
    svg("polyline", { class: "line", points: line("eps") }),
    svg("polyline", { class: "line second", points: line("sockets") }));
  chart.dataset.points = String(history.length);
}
