// HTTP API client: bearer tokens kept in sessionStorage (never in URLs, never logged),
// problem+json errors turned into ApiError, one transparent token refresh on 401.

const KEYS = { access: "intentd.access_token", refresh: "intentd.refresh_token", sessions: "intentd.session_tokens", current: "intentd.current_session" };

/** Fires "expired" (detail: {message}) when the sign-in can no longer be refreshed. */
export const authEvents = new EventTarget();

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code || (status === 0 ? "network_error" : "error");
    this.problem = problem || {};
    this.errors = Array.isArray(problem?.errors) ? problem.errors : [];
    this.retryAfter = retryAfter;
  }
}

export const tokens = {
  get access() { return sessionStorage.getItem(KEYS.access); },
  get refresh() { return sessionStorage.getItem(KEYS.refresh); },
  save(pair) {
    sessionStorage.setItem(KEYS.access, pair.access_token);
    if (pair.refresh_token) sessionStorage.setItem(KEYS.refresh, pair.refresh_token);
  },
  sessionToken(sessionId) { return readSessionTokens()[sessionId] || null; },
  saveSessionToken(sessionId, token) {
    const all = readSessionTokens();
    all[sessionId] = token;
    sessionStorage.setItem(KEYS.sessions, JSON.stringify(all));
  },
  forgetSession(sessionId) {
    const all = readSessionTokens();
    delete all[sessionId];
    sessionStorage.setItem(KEYS.sessions, JSON.stringify(all));
    if (this.currentSession === sessionId) this.currentSession = null;
  },
  get currentSession() { return sessionStorage.getItem(KEYS.current); },
  set currentSession(id) {
    if (id) sessionStorage.setItem(KEYS.current, id);
    else sessionStorage.removeItem(KEYS.current);
  },
  clear() { for (const key of Object.values(KEYS)) sessionStorage.removeItem(key); },
};

function readSessionTokens() {
  try { return JSON.parse(sessionStorage.getItem(KEYS.sessions) || "{}") || {}; } catch { return {}; }
}

let refreshing = null;

/** Exchange the refresh token for a new pair; concurrent callers share one request. */
function refreshTokens() {
  if (!tokens.refresh) return Promise.resolve(false);
  refreshing ??= (async () => {
    try {
      const res = await fetch("/api/auth/refresh", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: tokens.refresh }),
      });
      if (!res.ok) return false;
      tokens.save(await res.json());
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function parseError(res) {
  let problem = null;
  try { problem = await res.json(); } catch { /* not JSON: keep the status only */ }
  const retryAfter = Number(res.headers.get("Retry-After")) || null;
  return new ApiError(res.status, problem, retryAfter);
}

/**
 * Call the API. `token` overrides the signed-in user's access token (e.g. a session token);
 * `anonymous: true` sends no credential at all.
 */
export async function api(path, { method = "GET", body, token, anonymous = false, query } = {}) {
  const url = query ? `${path}?${new URLSearchParams(Object.entries(query).filter(([, v]) => v !== "" && v != null))}` : path;
  const send = () => {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const bearer = anonymous ? null : token || tokens.access;
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    return fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  };
  let res;
  try {
    res = await send();
    if (res.status === 401 && !token && !anonymous && tokens.refresh) {
      if (await refreshTokens()) res = await send();
      else expire("Your sign-in has expired. Please sign in again.");
    }
  } catch (err) {
    throw new ApiError(0, { detail: "The server cannot be reached. Check your connection." });
  }
  if (!res.ok) throw await parseError(res);
  if (res.status === 204) return null;
  const type = res.headers.get("Content-Type") || "";
  return type.includes("json") ? res.json() : res.text();
}

function expire(message) {
  authEvents.dispatchEvent(new CustomEvent("expired", { detail: { message } }));
}

export async function login(email, password) {
  const pair = await api("/api/auth/login", { method: "POST", body: { email, password }, anonymous: true });
  tokens.save(pair);
  return pair;
}

export async function logout() {
  const refresh = tokens.refresh;
  try {
    if (tokens.access) await api("/api/auth/logout", { method: "POST", body: refresh ? { refresh_token: refresh } : {} });
  } catch { /* signing out locally is what matters */ }
  tokens.clear();
}

/** Best-effort readable message for an ApiError. */
export function describeError(err) {
  if (!(err instanceof ApiError)) return String(err?.message || err);
  return `${err.message} (${err.code})`;
}
