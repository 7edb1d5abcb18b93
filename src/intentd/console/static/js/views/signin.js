// Sign-in page, with a clear message for each way signing in can fail.

import { h, field } from "../dom.js";
import { login, tokens } from "../api.js";

function explain(err) {
  switch (err.code) {
    case "invalid_credentials":
      return "Wrong email or password.";
    case "rate_limited": {
      const wait = err.retryAfter ? ` Try again in ${err.retryAfter} seconds.` : " Try again later.";
      return `Too many failed attempts: signing in is temporarily locked.${wait}`;
    }
    case "account_disabled":
      return "This account is disabled. Ask an administrator.";
    case "network_error":
      return err.message;
    default:
      return `Signing in failed: ${err.message}`;
  }
}

export async function render(main, { app }) {
  if (tokens.access && app.me) {
    app.navigate("/", { replaceState: true });
    return;
  }
  const flash = app.flash;
  app.flash = null;
  const email = field("Email", h("input", { type: "email", name: "email", autocomplete: "username", required: true }));
  const password = field("Password", h("input", { type: "password", name: "password", autocomplete: "current-password", required: true }));
  const alert = h("div", { class: "alert", role: "alert", id: "signin-error" });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "panel", novalidate: true, "aria-describedby": "signin-error" },
    email.wrap, password.wrap, alert, button);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    if (!email.input.value.trim() || !password.input.value) {
      alert.textContent = "Enter your email and password.";
      (email.input.value.trim() ? password.input : email.input).focus();
      return;
    }
    button.disabled = true;
    button.textContent = "Signing in…";
    try {
      await login(email.input.value.trim(), password.input.value);
      password.input.value = "";
      await app.signedIn();
      app.navigate("/");
    } catch (err) {
      alert.textContent = explain(err);
      password.input.select();
      password.input.focus();
    } finally {
      button.disabled = false;
      button.textContent = "Sign in";
    }
  });

  main.append(h("div", { class: "signin" },
    h("h1", { tabindex: "-1" }, "Sign in to intentd"),
    h("p", { class: "notice", role: "status", id: "signin-notice" }, flash || ""),
    form));
}
