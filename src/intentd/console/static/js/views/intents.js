// The intent catalog: every registered intent, and a form generated from its schema
// that submits into the open session (a new one is created when none is open).

import { h, replace } from "../dom.js";
import { api, describeError } from "../api.js";
import { schemaFields, splitServerErrors } from "../schema-form.js";
import { ExecutionCard, prettyJson } from "../render.js";

export async function render(main, { app, params }) {
  const selected = params[0] || null;
  main.append(h("h1", { tabindex: "-1" }, selected ? `Intent ${selected}` : "Intents"));
  let types;
  try {
    types = (await api("/api/intent/types")).items || [];
  } catch (err) {
    main.append(h("p", { class: "alert", role: "alert" }, `Cannot load the intents: ${describeError(err)}`));
    return undefined;
  }
  const list = h("ul", { "aria-label": "Intents" }, types.map((t) =>
    h("li", {}, h("a", { href: `/intents/${encodeURIComponent(t.name)}`, "data-link": true, "aria-current": t.name === selected ? "page" : null }, t.name))));
  const detail = h("section", { class: "intent-detail", "aria-label": "Intent details" });
  main.append(h("div", { class: "catalog" }, h("nav", { "aria-label": "Intent catalog" }, list), detail));

  if (!selected) {
    replace(detail, h("p", {}, "Choose an intent to see what it does and run it."),
      h("dl", { class: "result" }, types.map((t) => [h("dt", {}, t.name), h("dd", {}, t.description || "")])));
    return undefined;
  }
  const spec = types.find((t) => t.name === selected);
  if (!spec) {
    replace(detail, h("p", { class: "alert", role: "alert" }, `There is no intent named ${selected}.`));
    return undefined;
  }
  return renderForm(detail, app, spec);
}

function renderForm(detail, app, spec) {
  const form = schemaFields(spec.params_schema || {});
  const alert = h("div", { class: "alert", role: "alert" });
  const status = h("div", { role: "status" });
  const submit = h("button", { type: "submit" }, `Run ${spec.name}`);
  const el = h("form", { class: "panel", novalidate: true, "aria-label": `Parameters of ${spec.name}` }, form.el, alert, submit, status);
  const cards = h("div", { class: "submitted" });
  let detach = () => {};

  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    status.textContent = "";
    const { values, errors } = form.read();
    form.showErrors(errors);
    if (Object.keys(errors).length) {
      alert.textContent = `Fix ${Object.keys(errors).length === 1 ? "the highlighted field" : "the highlighted fields"} before running.`;
      return;
    }
    submit.disabled = true;
    try {
      if (!app.session?.sessionToken) await app.createSession();
      const accepted = await api("/api/intent/submit", {
        method: "POST", token: app.session.sessionToken, body: { intent: spec.name, params: values },
      });
      status.textContent = `Submitted: execution ${accepted.execution_id} is ${accepted.status}.`;
      detach();
      detach = followExecution(cards, app, accepted.execution_id, spec.name);
    } catch (err) {
      if (err.code === "invalid_params" || err.code === "invalid_request") {
        const { byField, general } = splitServerErrors(err.errors, form.fields.map((f) => f.name));
        form.showErrors(byField);
        alert.textContent = `The server rejected the parameters${general.length ? `: ${general.join("; ")}` : "."}`;
      } else {
        alert.textContent = `Cannot run ${spec.name}: ${describeError(err)}`;
      }
    } finally {
      submit.disabled = false;
    }
  });

  replace(detail,
    h("p", {}, spec.description || ""),
    spec.examples?.length ? h("div", {}, h("h2", {}, "Examples"), h("ul", {}, spec.examples.map((x) => h("li", {}, x)))) : null,
    h("h2", {}, "Run it"), el, cards,
    h("details", {}, h("summary", {}, "Parameter schema"), prettyJson(spec.params_schema || {})));
  return () => detach();
}

/** Show the live card of an execution submitted from the form (its events arrive on the session socket). */
function followExecution(container, app, executionId, intent) {
  const conversation = app.session?.conversation;
  const placeholder = { execution_id: executionId, intent, status: "accepted", progress: 0, events: [] };
  const card = new ExecutionCard(conversation?.executions.get(executionId) || placeholder, {
    onCancel: (id) => api(`/api/intent/executions/${encodeURIComponent(id)}/cancel`, { method: "POST" }),
  });
  replace(container, h("h2", {}, "Result"), card.el);
  if (!conversation) return () => {};
  const onChange = ({ detail }) => {
    if (detail.id === executionId) card.update(conversation.executions.get(executionId));
  };
  conversation.addEventListener("change", onChange);
  const ticker = setInterval(() => card.tick(), 1000);
  return () => { conversation.removeEventListener("change", onChange); clearInterval(ticker); };
}
