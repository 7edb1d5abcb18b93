// Chat: the session list (create, switch, revoke) and the conversation with the agent:
// streamed replies in a live region, a live card per execution, the raw event log.

import { h, replace, field, formatTime, shortId, toMillis } from "../dom.js";
import { api, tokens, describeError } from "../api.js";
import { ExecutionCard, renderError, eventSummary } from "../render.js";
import { TERMINAL } from "../conversation.js";

const LOG_LIMIT = 1000;
const HISTORY_PAGE = 500;

export async function render(main, { app }) {
  const sessionsAlert = h("div", { class: "alert", role: "alert" });
  const sessionList = h("ul", { "aria-label": "Your sessions" });
  const newButton = h("button", { type: "button", onClick: () => createSession() }, "New session");
  const conversationArea = h("section", { class: "conversation", "aria-label": "Conversation" });
  main.append(
    h("h1", { tabindex: "-1" }, "Chat"),
    h("div", { class: "chat" },
      h("aside", { class: "sessions", "aria-labelledby": "sessions-heading" },
        h("h2", { id: "sessions-heading" }, "Sessions"), newButton, sessionsAlert, sessionList),
      conversationArea));

  let sessions = [];
  let detachConversation = () => {};

  async function loadSessions() {
    try {
      const data = await api("/api/sessions");
      sessions = data.items || [];
      sessionsAlert.textContent = "";
    } catch (err) {
      sessionsAlert.textContent = `Cannot list sessions: ${describeError(err)}`;
    }
    renderSessions();
  }

  function renderSessions() {
    const currentId = app.session?.id;
    const rows = [...sessions].sort((a, b) => (toMillis(b.created_at) || 0) - (toMillis(a.created_at) || 0));
    if (rows.length === 0) {
      replace(sessionList, h("li", { class: "muted" }, "No sessions yet."));
      return;
    }
    replace(sessionList, rows.map((s) => {
      const current = s.session_id === currentId;
      const label = `session ${shortId(s.session_id)}`;
      return h("li", { "aria-current": current ? "true" : null, "data-session-id": s.session_id },
        h("div", { class: "sid" }, shortId(s.session_id), current ? " (open)" : ""),
        h("div", { class: "hint" }, formatTime(s.created_at), " · ", s.active ? "active" : "revoked or expired",
          tokens.sessionToken(s.session_id) ? "" : " · read-only here"),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "secondary", disabled: current, "aria-label": `Open ${label}`, onClick: () => app.openSession(s.session_id) }, "Open"),
          s.active ? h("button", { type: "button", class: "danger", "aria-label": `Revoke ${label}`, onClick: () => revoke(s) }, "Revoke") : null));
    }));
  }

  async function createSession() {
    newButton.disabled = true;
    try {
      await app.createSession();
      await loadSessions();
      conversationArea.querySelector("input[name=message]")?.focus();
    } catch (err) {
      sessionsAlert.textContent = `Cannot create a session: ${describeError(err)}`;
    } finally {
      newButton.disabled = false;
    }
  }

  async function revoke(session) {
    if (!confirm(`Revoke session ${shortId(session.session_id)}? Its connections are closed.`)) return;
    try {
      // Close our own socket first: a revoked session's sockets end with 4401.
      if (app.session?.id === session.session_id) app.closeSession();
      await api(`/api/sessions/${encodeURIComponent(session.session_id)}`, { method: "DELETE" });
      tokens.forgetSession(session.session_id);
      await loadSessions();
    } catch (err) {
      sessionsAlert.textContent = `Cannot revoke: ${describeError(err)}`;
    }
  }

  function showSession(session) {
    detachConversation();
    detachConversation = () => {};
    renderSessions();
    if (!session) {
      replace(conversationArea,
        h("p", {}, "Open a session or create a new one to talk to the agent."),
        h("button", { type: "button", onClick: () => createSession() }, "Start a new session"));
      return;
    }
    detachConversation = mountConversation(conversationArea, app, session);
  }

  const offSession = app.onSessionChange((session) => showSession(session));
  showSession(app.session);
  await loadSessions();
  return () => { offSession(); detachConversation(); };
}

/** Render one session's conversation and keep it live; returns a cleanup function. */
function mountConversation(area, app, session) {
  const { conversation, socket } = session;
  const transcript = h("ol", { class: "transcript", "aria-label": "Transcript" });
  const logList = h("ol", { class: "event-list" });
  const logSummary = h("summary", {}, "Event log");
  const composerAlert = h("div", { class: "alert", role: "alert" });
  const message = field("Message to the agent", h("input", {
    type: "text", name: "message", autocomplete: "off", placeholder: "Try /help", disabled: !socket,
  }));
  const send = h("button", { type: "submit", disabled: !socket }, "Send");
  const composer = h("form", { class: "composer", "aria-label": "Send a message" }, message.wrap, send);
  const readOnlyNote = socket ? null : h("p", { class: "notice" },
    "This session was opened in another tab or client: its token is not available here, so the history is read-only.");

  replace(area,
    h("p", { class: "hint" }, `Session ${session.id}`),
    readOnlyNote,
    transcript, composerAlert, composer,
    h("details", { class: "event-log" }, logSummary, logList));

  const components = new Map();

  function addItem(kind, id) {
    const component = kind === "turn" ? new TurnView(conversation.turns.get(id)) : new ExecutionCard(conversation.executions.get(id), { onCancel: cancel });
    components.set(id, component);
    transcript.append(h("li", { "data-item": id }, component.el));
  }

  async function cancel(executionId) {
    await api(`/api/intent/executions/${encodeURIComponent(executionId)}/cancel`, { method: "POST" });
  }

  function onChange({ detail }) {
    if (!components.has(detail.id)) addItem(detail.kind, detail.id);
    const component = components.get(detail.id);
    if (detail.kind === "turn") component.update(conversation.turns.get(detail.id), detail.delta);
    else component.update(conversation.executions.get(detail.id));
  }

  function onRekey({ detail }) {
    const component = components.get(detail.from);
    if (!component) return;
    components.delete(detail.from);
    components.set(detail.to, component);
    transcript.querySelector(`[data-item="${CSS.escape(detail.from)}"]`)?.setAttribute("data-item", detail.to);
  }

  function onRemove({ detail }) {
    components.delete(detail.id);
    transcript.querySelector(`[data-item="${CSS.escape(detail.id)}"]`)?.remove();
  }

  function appendLog(event) {
    logList.append(h("li", { "data-seq": event.seq }, `#${event.seq} ${event.type} ${eventSummary(event)}`));
    while (logList.childElementCount > LOG_LIMIT) logList.firstElementChild.remove();
    logSummary.textContent = `Event log (${conversation.log.length} events, last seq ${event.seq})`;
  }

  for (const item of conversation.order) {
    addItem(item.kind, item.id);
    onChange({ detail: item });
  }
  conversation.log.slice(-LOG_LIMIT).forEach(appendLog);
  const onLog = ({ detail }) => appendLog(detail);
  conversation.addEventListener("change", onChange);
  conversation.addEventListener("rekey", onRekey);
  conversation.addEventListener("remove", onRemove);
  conversation.addEventListener("log", onLog);

  const onProblem = ({ detail }) => {
    if (detail.code !== "unauthorized") composerAlert.textContent = `${detail.code}: ${detail.message}`;
  };
  socket?.addEventListener("problem", onProblem);

  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = message.input.value.trim();
    composerAlert.textContent = "";
    if (!text) {
      composerAlert.textContent = "Type a message first.";
      message.input.focus();
      return;
    }
    if (socket.state !== "open") {
      composerAlert.textContent = "Not connected yet: the message was not sent. Wait for “Connected”.";
      return;
    }
    message.input.value = "";
    const key = conversation.addLocalTurn(text);
    try {
      const ack = await socket.request({ type: "message", text });
      if (ack.execution_id) conversation.bindLocalTurn(key, ack.execution_id);
    } catch (err) {
      conversation.failLocalTurn(key, { code: err.code || "error", message: err.message });
    }
  });

  // Running cards show a live duration.
  const ticker = setInterval(() => {
    for (const [id, component] of components) {
      const exec = conversation.executions.get(id);
      if (exec && !TERMINAL.has(exec.status)) component.tick();
    }
  }, 1000);

  if (!socket) loadHistory(conversation).catch((err) => { composerAlert.textContent = `Cannot load the history: ${describeError(err)}`; });

  return () => {
    clearInterval(ticker);
    conversation.removeEventListener("change", onChange);
    conversation.removeEventListener("rekey", onRekey);
    conversation.removeEventListener("remove", onRemove);
    conversation.removeEventListener("log", onLog);
    socket?.removeEventListener("problem", onProblem);
  };
}

/** Read-only sessions: replay the event log over REST with the user's own credential. */
async function loadHistory(conversation) {
  let after = conversation.log.at(-1)?.seq ?? 0;
  for (;;) {
    const page = await api(`/api/sessions/${encodeURIComponent(conversation.sessionId)}/events`, { query: { after_seq: after, limit: HISTORY_PAGE } });
    for (const event of page.items || []) {
      if (event.seq > after) { conversation.apply(event); after = event.seq; }
    }
    if (!page.items?.length || after >= (page.last_seq ?? after)) return;
  }
}

/** A user message and the agent's streamed reply. */
class TurnView {
  constructor(turn) {
    this.user = h("div", { class: "bubble user" });
    this.reply = h("div", { class: "bubble agent", "aria-live": "polite", "aria-label": "Agent reply" });
    this.status = h("div", { class: "hint" });
    this.error = h("div", {});
    this.el = h("div", { class: "turn" }, this.user, this.reply, this.status, this.error);
    this.update(turn);
  }

  update(turn, delta) {
    if (!turn) return;
    this.el.dataset.turnId = turn.id;
    this.user.hidden = turn.userText == null;
    this.user.textContent = turn.userText ?? "";
    if (delta) {
      this.reply.append(document.createTextNode(delta));
    } else if (this.reply.textContent !== turn.reply) {
      this.reply.textContent = turn.reply;
    }
    this.reply.hidden = !turn.reply;
    const waiting = !turn.reply && !TERMINAL.has(turn.status);
    this.status.textContent = turn.status === "sending" ? "Sending…" : waiting ? "The agent is thinking…" : "";
    replace(this.error, turn.error ? renderError(turn.error) : null);
  }
}
