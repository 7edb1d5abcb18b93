// The state of one session, folded from its events: agent turns and execution cards.
// Views subscribe to "change" ({kind: "turn"|"execution", id, isNew}), "rekey" and "log".

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const AGENT_TURN = "agent.turn";
const STATUS_BY_EVENT = {
  "execution.accepted": "accepted",
  "execution.started": "running",
  "execution.compensating": "compensating",
  "execution.completed": "completed",
  "execution.failed": "failed",
  "execution.cancelled": "cancelled",
};

let localCount = 0;

export class Conversation extends EventTarget {
  constructor(sessionId) {
    super();
    this.sessionId = sessionId;
    this.turns = new Map();      // key (execution id of the agent.turn, or local-N before its ack) -> turn
    this.executions = new Map(); // execution id -> execution (intents other than agent turns)
    this.order = [];             // [{kind, id}] in order of first appearance
    this.log = [];               // every event applied, in seq order
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Show a message the user just sent, before the server has acknowledged it. */
  addLocalTurn(text) {
    localCount += 1;
    const key = `local-${localCount}`;
    this.turns.set(key, { id: key, userText: text, reply: "", status: "sending", error: null, local: true });
    this.order.push({ kind: "turn", id: key });
    this.emit("change", { kind: "turn", id: key, isNew: true });
    return key;
  }

  /** The server acknowledged a local message: it is the agent.turn execution `executionId`. */
  bindLocalTurn(key, executionId) {
    const local = this.turns.get(key);
    if (!local) return;
    if (this.turns.has(executionId)) {
      this.dropTurn(key);
    } else {
      this.rekey(key, executionId);
      if (local.status === "sending") local.status = "accepted";
      this.emit("change", { kind: "turn", id: executionId });
    }
  }

  failLocalTurn(key, error) {
    const turn = this.turns.get(key);
    if (!turn) return;
    turn.status = "failed";
    turn.error = error;
    this.emit("change", { kind: "turn", id: key });
  }

  dropTurn(key) {
    this.turns.delete(key);
    this.order = this.order.filter((item) => item.id !== key);
    this.emit("remove", { id: key });
  }

  rekey(from, to) {
    const turn = this.turns.get(from);
    this.turns.delete(from);
    turn.id = to;
    turn.local = false;
    this.turns.set(to, turn);
    for (const item of this.order) if (item.id === from) item.id = to;
    this.emit("rekey", { from, to });
  }

  turn(id) {
    let turn = this.turns.get(id);
    if (!turn) {
      turn = { id, userText: null, reply: "", status: "accepted", error: null, local: false };
      this.turns.set(id, turn);
      this.order.push({ kind: "turn", id });
      this.emit("change", { kind: "turn", id, isNew: true });
    }
    return turn;
  }

  execution(id, event) {
    let exec = this.executions.get(id);
    if (!exec) {
      exec = {
        execution_id: id, intent: null, params: null, status: "accepted", progress: 0, progress_message: "",
        result: undefined, error: null, created_at: event.created_at, started_at: null, finished_at: null, events: [],
      };
      this.executions.set(id, exec);
      this.order.push({ kind: "execution", id });
      this.emit("change", { kind: "execution", id, isNew: true });
    }
    return exec;
  }

  apply(event) {
    this.log.push(event);
    this.emit("log", event);
    const data = event.data || {};
    const id = event.execution_id || data.turn_id;
    if (event.type === "agent.delta" || event.type === "agent.message") {
      this.applyAgent(id, event, data);
      return;
    }
    if (!id) return;
    if (event.type === "execution.accepted" && data.intent === AGENT_TURN) {
      this.acceptTurn(id, data);
      return;
    }
    if (this.turns.has(id)) {
      this.applyTurnExecution(this.turns.get(id), event, data);
      return;
    }
    this.applyExecution(this.execution(id, event), event, data);
  }

  applyAgent(id, event, data) {
    const turn = this.turn(id);
    if (event.type === "agent.delta") {
      turn.reply += data.text || "";
      this.emit("change", { kind: "turn", id: turn.id, delta: data.text || "" });
    } else {
      if (typeof data.text === "string") turn.reply = data.text;
      turn.answered = true;
      this.emit("change", { kind: "turn", id: turn.id });
    }
  }

  acceptTurn(id, data) {
    const text = data.params?.text ?? data.params?.message ?? null;
    if (!this.turns.has(id)) {
      // The accepted event may overtake the ack of a message sent from this page.
      const local = [...this.turns.values()].find((t) => t.local && t.userText === text);
      if (local) this.rekey(local.id, id);
    }
    const turn = this.turn(id);
    if (text != null) turn.userText = text;
    if (turn.status === "sending") turn.status = "accepted";
    this.emit("change", { kind: "turn", id });
  }

  applyTurnExecution(turn, event, data) {
    const status = STATUS_BY_EVENT[event.type];
    if (!status) return;
    turn.status = status;
    if (event.type === "execution.failed") turn.error = { code: data.code, message: data.message };
    this.emit("change", { kind: "turn", id: turn.id });
  }

  applyExecution(exec, event, data) {
    exec.events.push(event);
    switch (event.type) {
      case "execution.accepted":
        exec.intent = data.intent ?? exec.intent;
        exec.params = data.params ?? exec.params;
        exec.created_at = event.created_at;
        break;
      case "execution.started":
        exec.started_at = event.created_at;
        break;
      case "execution.progress":
        if (typeof data.fraction === "number") exec.progress = data.fraction;
        exec.progress_message = data.message ?? exec.progress_message;
        break;
      case "execution.completed":
        exec.result = data.result;
        exec.progress = 1;
        break;
      case "execution.failed":
        exec.error = { code: data.code, message: data.message };
        break;
      default:
        break;
    }
    const status = STATUS_BY_EVENT[event.type];
    if (status) exec.status = status;
    if (TERMINAL.has(exec.status) && !exec.finished_at) exec.finished_at = event.created_at;
    this.emit("change", { kind: "execution", id: exec.execution_id });
  }
}
