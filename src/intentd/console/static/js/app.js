// The console shell: router, top bar (navigation, connection state, user), the open
// agent session (its socket lives here so it survives page changes) and sign-out paths.

import { h, replace } from "./dom.js";
import { api, tokens, authEvents, logout } from "./api.js";
import { AgentSocket } from "./socket.js";
import { Conversation } from "./conversation.js";
import * as signin from "./views/signin.js";
import * as chat from "./views/chat.js";
import * as intents from "./views/intents.js";
import * as adminUsers from "./views/admin-users.js";
import * as adminSessions from "./views/admin-sessions.js";
import * as adminExecutions from "./views/admin-executions.js";
import * as adminExecution from "./views/admin-execution.js";
import * as adminRoutes from "./views/admin-routes.js";
import * as adminStats from "./views/admin-stats.js";
import * as adminAudit from "./views/admin-audit.js";

const ROUTES = [
  { pattern: /^\/signin\/?$/, view: signin, public: true },
  { pattern: /^\/$/, view: chat },
  { pattern: /^\/intents\/?$/, view: intents },
  { pattern: /^\/intents\/([^/]+)$/, view: intents },
  { pattern: /^\/admin\/?$/, redirect: "/admin/users" },
  { pattern: /^\/admin\/users$/, view: adminUsers, admin: true },
  { pattern: /^\/admin\/sessions$/, view: adminSessions, admin: true },
  { pattern: /^\/admin\/executions$/, view: adminExecutions, admin: true },
  { pattern: /^\/admin\/executions\/([^/]+)$/, view: adminExecution, admin: true },
  { pattern: /^\/admin\/routes$/, view: adminRoutes, admin: true },
  { pattern: /^\/admin\/stats$/, view: adminStats, admin: true },
  { pattern: /^\/admin\/audit$/, view: adminAudit, admin: true },
];

const NAV = [
  { href: "/", label: "Chat" },
  { href: "/intents", label: "Intents" },
];
const ADMIN_NAV = [
  { href: "/admin/users", label: "Users" },
  { href: "/admin/sessions", label: "Sessions" },
  { href: "/admin/executions", label: "Executions" },
  { href: "/admin/routes", label: "Routes" },
  { href: "/admin/stats", label: "Stats" },
  { href: "/admin/audit", label: "Audit" },
];

const main = document.getElementById("main");
const topbar = document.getElementById("topbar");
const nav = document.getElementById("nav");
const connection = document.getElementById("connection");
const who = document.getElementById("who");

let cleanupView = null;
let reconnectCountdown = null;

export const app = {
  me: null,
  /** The open agent session: {id, conversation, socket|null (read-only when null)}. */
  session: null,
  /** A message for the next sign-in page (why the user was signed out). */
  flash: null,
  sessionListeners: new Set(),

  navigate(path, { replaceState = false } = {}) {
    if (replaceState) history.replaceState(null, "", path);
    else history.pushState(null, "", path);
    render();
  },

  async signedIn() {
    this.me = await api("/api/auth/me");
    const current = tokens.currentSession;
    if (current) this.openSession(current);
  },

  /** Sign out locally (and on the server unless it already ended the sign-in). */
  async signOut(message, { callServer = true } = {}) {
    this.closeSession();
    if (callServer) await logout();
    else tokens.clear();
    this.me = null;
    this.flash = message || null;
    this.navigate("/signin");
  },

  async createSession() {
    const created = await api("/api/sessions", { method: "POST", body: { metadata: { client: "console" } } });
    tokens.saveSessionToken(created.session_id, created.session_token);
    this.openSession(created.session_id);
    return created;
  },

  /** Open a session: live over the socket when this tab holds its token, read-only otherwise. */
  openSession(sessionId) {
    if (this.session?.id === sessionId) return;
    this.closeSession();
    const conversation = new Conversation(sessionId);
    const sessionToken = tokens.sessionToken(sessionId);
    let socket = null;
    if (sessionToken) {
      socket = new AgentSocket({ sessionId, sessionToken });
      socket.addEventListener("event", (e) => conversation.apply(e.detail));
      socket.addEventListener("state", (e) => showConnection(e.detail));
      socket.addEventListener("unauthorized", (e) =>
        this.signOut(`You were signed out: ${e.detail.message || "this session was revoked or has expired"}. Please sign in again.`, { callServer: false }));
      socket.start();
    } else {
      showConnection({ state: "idle", message: "Read-only session" });
    }
    tokens.currentSession = sessionId;
    this.session = { id: sessionId, conversation, socket, sessionToken };
    this.notifySession();
  },

  closeSession() {
    if (!this.session) return;
    this.session.socket?.stop();
    this.session = null;
    tokens.currentSession = null;
    showConnection({ state: "idle", message: "No session" });
    this.notifySession();
  },

  onSessionChange(listener) {
    this.sessionListeners.add(listener);
    return () => this.sessionListeners.delete(listener);
  },

  notifySession() {
    for (const listener of this.sessionListeners) listener(this.session);
  },
};

function showConnection({ state, attempt, retryAt, message }) {
  clearInterval(reconnectCountdown);
  connection.dataset.state = state;
  const text = () => {
    switch (state) {
      case "open": return "Connected";
      case "connecting": return "Connecting…";
      case "reconnecting": {
        if (!retryAt) return `Reconnecting… (attempt ${attempt})`;
        const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
        return `Reconnecting in ${seconds} s (attempt ${attempt})`;
      }
      case "closed": return "Disconnected";
      case "failed": return `Connection refused: ${message}`;
      default: return message || "No session";
    }
  };
  connection.textContent = text();
  if (state === "reconnecting" && retryAt) {
    reconnectCountdown = setInterval(() => { connection.textContent = text(); }, 1000);
  }
}

function renderNav(path) {
  const links = [...NAV, ...(app.me?.role === "admin" ? ADMIN_NAV : [])];
  replace(nav, links.map(({ href, label }) => {
    const current = href === "/" ? path === "/" : path === href || path.startsWith(`${href}/`);
    return h("a", { href, "data-link": true, "aria-current": current ? "page" : null }, label);
  }));
}

function match(path) {
  for (const route of ROUTES) {
    const m = path.match(route.pattern);
    if (m) return { route, params: m.slice(1).map((p) => (p ? decodeURIComponent(p) : p)) };
  }
  return null;
}

let renderCount = 0;

async function render() {
  const renderId = ++renderCount;
  const path = location.pathname;
  renderedPath = path;
  const found = match(path);
  if (found?.route.redirect) return app.navigate(found.route.redirect, { replaceState: true });
  if (!found?.route.public && !tokens.access) return app.navigate("/signin", { replaceState: true });
  if (!found?.route.public && !app.me) {
    try {
      await app.signedIn();
    } catch (err) {
      if (renderId !== renderCount) return;
      if (err.status === 401) return app.signOut("Your sign-in has expired. Please sign in again.", { callServer: false });
      replace(main, h("h1", { tabindex: "-1" }, "The console cannot start"), h("p", { class: "alert", role: "alert" }, err.message));
      return;
    }
    if (renderId !== renderCount) return;
  }
  if (cleanupView) { cleanupView(); cleanupView = null; }
  topbar.hidden = !app.me || !!found?.route.public;
  who.textContent = app.me ? `${app.me.email} (${app.me.role})` : "";
  renderNav(path);
  main.replaceChildren();
  if (!found) {
    document.title = "Not found · intentd";
    append404();
  } else if (found.route.admin && app.me?.role !== "admin") {
    document.title = "Forbidden · intentd";
    main.append(h("h1", { tabindex: "-1" }, "Admins only"), h("p", {}, "This page needs the admin role."));
  } else {
    const cleanup = await found.route.view.render(main, { app, params: found.params });
    if (renderId !== renderCount) { if (typeof cleanup === "function") cleanup(); return; }
    cleanupView = typeof cleanup === "function" ? cleanup : null;
    document.title = `${main.querySelector("h1")?.textContent || "intentd"} · intentd`;
  }
  main.querySelector("h1")?.focus();
}

function append404() {
  main.append(h("h1", { tabindex: "-1" }, "Page not found"), h("p", {}, h("a", { href: "/", "data-link": true }, "Back to the chat")));
}

// Same-origin links navigate on the client.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-link]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  if (link.getAttribute("href") !== location.pathname) app.navigate(link.getAttribute("href"));
});
// Only a change of path re-renders (a fragment change, like the skip link's, does not).
let renderedPath = location.pathname;
window.addEventListener("popstate", () => {
  if (location.pathname !== renderedPath) render();
});
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  (main.querySelector("h1") || main).focus();
});
document.getElementById("signout").addEventListener("click", () => app.signOut("You signed out."));
authEvents.addEventListener("expired", (e) => app.signOut(e.detail.message, { callServer: false }));

render();
