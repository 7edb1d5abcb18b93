// Admin: users of this tenant: create, change role, disable / enable.

import { h, replace, field, formatTime } from "../dom.js";
import { api, describeError } from "../api.js";
import { dataTable, itemsOf, alertBox, statusLine } from "./admin-common.js";

const ROLES = ["user", "admin"];

function isDisabled(user) {
  return Boolean(user.disabled ?? user.disabled_at);
}

export async function render(main, { app }) {
  const alert = alertBox();
  const status = statusLine();
  const tableArea = h("div", {});
  main.append(h("h1", { tabindex: "-1" }, "Users"), alert, status, tableArea);

  async function load() {
    try {
      const users = itemsOf(await api("/api/admin/users"));
      replace(tableArea, dataTable([
        { label: "Email", cell: (u) => u.email },
        { label: "Role", cell: (u) => roleSelect(u) },
        { label: "Status", cell: (u) => (isDisabled(u) ? "disabled" : "active") },
        { label: "Created", cell: (u) => formatTime(u.created_at) },
        { label: "Actions", cell: (u) => toggleButton(u) },
      ], users));
    } catch (err) {
      alert.textContent = `Cannot list users: ${describeError(err)}`;
    }
  }

  async function patch(user, body, done) {
    alert.textContent = "";
    status.textContent = "";
    try {
      await api(`/api/admin/users/${encodeURIComponent(user.id)}`, { method: "PATCH", body });
      status.textContent = done;
    } catch (err) {
      alert.textContent = `Cannot update ${user.email}: ${describeError(err)}`;
    }
    await load();
  }

  function roleSelect(user) {
    const roles = ROLES.includes(user.role) ? ROLES : [...ROLES, user.role];
    const el = h("select", { "aria-label": `Role of ${user.email}`, disabled: user.id === app.me?.id },
      roles.map((r) => h("option", { value: r, selected: r === user.role }, r)));
    el.addEventListener("change", () => patch(user, { role: el.value }, `${user.email} is now ${el.value}.`));
    return el;
  }

  function toggleButton(user) {
    if (user.id === app.me?.id) return h("span", { class: "muted" }, "(you)");
    const disabled = isDisabled(user);
    return h("button", {
      type: "button", class: disabled ? "secondary" : "danger", "aria-label": `${disabled ? "Enable" : "Disable"} ${user.email}`,
      onClick: () => patch(user, { disabled: !disabled }, `${user.email} is ${disabled ? "enabled" : "disabled"}.`),
    }, disabled ? "Enable" : "Disable");
  }

  const email = field("Email", h("input", { type: "email", name: "email", autocomplete: "off", required: true }));
  const password = field("Password", h("input", { type: "password", name: "password", autocomplete: "new-password", required: true }));
  const role = field("Role", h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r }, r))));
  const createAlert = alertBox();
  const form = h("form", { class: "panel narrow", novalidate: true, "aria-labelledby": "create-user" },
    h("h2", { id: "create-user" }, "Create a user"), email.wrap, password.wrap, role.wrap, createAlert,
    h("button", { type: "submit" }, "Create user"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    createAlert.textContent = "";
    if (!email.input.value.trim() || !password.input.value) {
      createAlert.textContent = "Enter an email and a password.";
      return;
    }
    try {
      await api("/api/admin/users", { method: "POST", body: { email: email.input.value.trim(), password: password.input.value, role: role.input.value } });
      status.textContent = `Created ${email.input.value.trim()}.`;
      form.reset();
      await load();
    } catch (err) {
      const details = err.errors.map((e) => `${(e.loc || []).at(-1)}: ${e.msg}`).join("; ");
      createAlert.textContent = `Cannot create the user: ${describeError(err)}${details ? ` — ${details}` : ""}`;
    }
  });
  main.append(form);
  await load();
}
