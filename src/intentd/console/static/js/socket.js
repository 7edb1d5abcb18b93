// The agent WebSocket: authenticates with a first `auth` message (the token never goes
// into the URL), reconnects with backoff, resumes by `seq` and delivers every session
// event exactly once and in order.

const PING_EVERY_MS = 20000;
const PONG_WITHIN_MS = 10000;
const REQUEST_TIMEOUT_MS = 15000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 8000;
// Close codes after which retrying cannot help.
const FATAL_CLOSES = new Map([
  [4403, "The server refused this connection (origin or tenant not allowed)."],
  [4400, "The connection was closed after repeated protocol errors."],
]);

let nextId = 0;
function requestId() {
  nextId += 1;
  return `c${Date.now().toString(36)}-${nextId}`;
}

/**
 * Events (EventTarget):
 *  - "state"  {state, attempt, retryAt, message}: idle | connecting | open | reconnecting | closed | failed
 *  - "event"  a session event (has seq), each seq at most once, in order
 *  - "unauthorized" {message}: closed 4401, do not retry
 *  - "problem" {code, message}: an error message not tied to a request
 */
export class AgentSocket extends EventTarget {
  constructor({ sessionId, sessionToken, afterSeq = 0, path = "/api/runtime/agent" }) {
    super();
    this.sessionId = sessionId;
    this.sessionToken = sessionToken;
    this.lastSeq = afterSeq;
    this.path = path;
    this.state = "idle";
    this.attempt = 0;
    this.pending = new Map();
    this.stopped = false;
    this.ws = null;
    this.resumeRequestedAfter = null;
    this.lastError = null;
    this.delivered = false;
    this.onOnline = () => { if (this.state === "reconnecting") this.connectNow(); };
  }

  start() {
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    clearTimeout(this.retryTimer);
    this.stopTimers();
    if (this.ws) {
      this.detach(this.ws);
      this.ws.close(1000, "client closing");
      this.ws = null;
    }
    this.failPending("The connection was closed.");
    this.setState("idle");
  }

  setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, attempt: this.attempt, ...extra } }));
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // after_seq is a position in the stream, not a secret; the token goes in the first message.
    const url = `${scheme}//${location.host}${this.path}?after_seq=${this.lastSeq}`;
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting", { message: "connecting…" });
    this.lastError = null;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", session_token: this.sessionToken }));
    ws.onmessage = (msg) => this.receive(msg.data);
    ws.onclose = (ev) => this.closed(ws, ev.code, ev.reason);
  }

  detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = null;
  }

  connectNow() {
    clearTimeout(this.retryTimer);
    if (!this.stopped && (!this.ws || this.ws.readyState === WebSocket.CLOSED)) this.connect();
  }

  receive(raw) {
    let msg;
    try { msg = JSON.parse(raw); } catch { return; }
    switch (msg.type) {
      case "ready":
        this.attempt = 0;
        this.resumeRequestedAfter = null;
        this.setState("open");
        this.startPing();
        return;
      case "ack":
        this.settle(msg.id, (p) => p.resolve(msg));
        return;
      case "pong":
        clearTimeout(this.pongTimer);
        return;
      case "error":
        this.lastError = msg;
        if (msg.reply_to && this.pending.has(msg.reply_to)) {
          this.settle(msg.reply_to, (p) => p.reject(Object.assign(new Error(msg.message), { code: msg.code, errors: msg.errors || [] })));
        } else {
          this.dispatchEvent(new CustomEvent("problem", { detail: msg }));
        }
        return;
      default:
        if (typeof msg.seq === "number") this.deliver(msg);
    }
  }

  /** Deliver strictly the next seq; drop repeats; on a gap ask the server to resend. */
  deliver(event) {
    if (event.seq <= this.lastSeq) return;
    // Replaying a session from the start: older events may have passed their retention.
    const historyPruned = this.lastSeq === 0 && !this.delivered;
    if (event.seq > this.lastSeq + 1 && !historyPruned) {
      if (this.resumeRequestedAfter !== this.lastSeq) {
        this.resumeRequestedAfter = this.lastSeq;
        this.sendRaw({ type: "resume", after_seq: this.lastSeq });
      }
      return;
    }
    this.delivered = true;
    this.lastSeq = event.seq;
    this.dispatchEvent(new CustomEvent("event", { detail: event }));
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return;
    this.stopTimers();
    this.ws = null;
    this.failPending("The connection was lost before the server answered.");
    if (this.stopped) return;
    if (code === 4401) {
      const message = this.lastError?.message || reason || "Your session is no longer valid.";
      this.stopped = true;
      this.setState("closed", { message: "signed out" });
      this.dispatchEvent(new CustomEvent("unauthorized", { detail: { message } }));
      return;
    }
    if (FATAL_CLOSES.has(code)) {
      this.stopped = true;
      this.setState("failed", { message: FATAL_CLOSES.get(code) });
      return;
    }
    this.scheduleReconnect(code);
  }

  scheduleReconnect(code) {
    this.attempt += 1;
    const slow = code === 1013 || code === 4429; // server at capacity / rate limited: back off harder
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (this.attempt - 1)) * (slow ? 2 : 1);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    const retryAt = Date.now() + delay;
    this.setState("reconnecting", { retryAt, code });
    this.retryTimer = setTimeout(() => this.connectNow(), delay);
  }

  startPing() {
    this.stopTimers();
    this.pingTimer = setInterval(() => {
      if (!this.sendRaw({ type: "ping", id: requestId() })) return;
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => this.dropDeadConnection(), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  dropDeadConnection() {
    const ws = this.ws;
    if (!ws) return;
    this.detach(ws);
    ws.close();
    this.closed(ws, 1006, "no pong");
  }

  stopTimers() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }

  sendRaw(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Send a request ({type, ...}); resolves with its ack, rejects with its error. */
  request(msg) {
    if (this.state !== "open") return Promise.reject(Object.assign(new Error("Not connected: wait for the connection to come back."), { code: "not_connected" }));
    const id = requestId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.settle(id, (p) => p.reject(Object.assign(new Error("The server did not answer in time."), { code: "timeout" }))), REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.sendRaw({ ...msg, id });
    });
  }

  settle(id, fn) {
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    fn(pending);
  }

  failPending(message) {
    for (const id of [...this.pending.keys()]) {
      this.settle(id, (p) => p.reject(Object.assign(new Error(message), { code: "disconnected" })));
    }
  }
}
