// Admin: the route contract and the result of checking it against the served routes.

import { h } from "../dom.js";
import { api, describeError } from "../api.js";
import { dataTable, alertBox } from "./admin-common.js";
import { prettyJson } from "../render.js";

export async function render(main) {
  main.append(h("h1", { tabindex: "-1" }, "Routes"));
  let data;
  try {
    data = await api("/api/admin/routes");
  } catch (err) {
    const alert = alertBox();
    alert.textContent = `Cannot load the route contract: ${describeError(err)}`;
    main.append(alert);
    return;
  }
  const check = data.check || {};
  const problems = check.problems || [];
  main.append(
    h("h2", {}, "Route check"),
    check.ok
      ? h("p", { class: "notice", role: "status" }, "✔ Route check passed: every contract entry is served by its owner and every served route is covered.")
      : h("div", { class: "alert", role: "alert" }, h("p", {}, `✘ Route check failed (${problems.length} problem${problems.length === 1 ? "" : "s"}):`),
        h("ul", {}, problems.map((p) => h("li", {}, typeof p === "string" ? p : prettyJson(p))))),
    h("h2", {}, "Contract"),
    dataTable([
      { label: "Prefix", mono: true, cell: (r) => r.prefix },
      { label: "Owner", cell: (r) => r.owner },
      { label: "Kind", cell: (r) => r.kind },
      { label: "Priority", cell: (r) => String(r.priority ?? "") },
      { label: "Public", cell: (r) => (r.public === false ? "no" : "yes") },
    ], data.contract || []));
}
