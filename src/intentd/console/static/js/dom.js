// Tiny DOM helpers: the whole "component framework" of the console.

/** Create an element: h("button", {type: "button", onClick}, "Save"). Never sets inline styles (CSP). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Create an SVG element; every prop is an attribute. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value != null) el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

// Props that must be set as DOM properties (their attribute only sets the initial state).
const PROPERTIES = new Set(["value", "checked", "selected", "disabled", "textContent", "hidden", "indeterminate"]);

function setProps(el, props) {
  for (const [key, value] of Object.entries(props ?? {})) {
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      if (value) el.className = value;
    } else if (PROPERTIES.has(key)) {
      el[key] = value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else if (value != null && value !== false) {
      el.setAttribute(key, String(value));
    }
  }
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children of el. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
/** A page-unique id for label/aria wiring. */
export function uniqueId(prefix = "id") {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** Milliseconds since the epoch of a server timestamp (epoch seconds or an ISO string); NaN if none. */
export function toMillis(value) {
  if (value == null || value === "") return NaN;
  if (typeof value === "number") return value < 1e12 ? value * 1000 : value;
  return Date.parse(value);
}

export function formatTime(value) {
  const ms = toMillis(value);
  return Number.isNaN(ms) ? (value == null ? "" : String(value)) : new Date(ms).toLocaleString();
}

export function formatDuration(ms) {
  if (ms == null || Number.isNaN(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds % 60)} s`;
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "";
}

/** A labelled form field: returns {wrap, input, error}. */
export function field(labelText, input, hintText) {
  const id = input.id || uniqueId("f");
  input.id = id;
  const error = h("div", { class: "field-error", id: `${id}-error` });
  const hint = hintText ? h("div", { class: "hint", id: `${id}-hint` }, hintText) : null;
  input.setAttribute("aria-describedby", [hint && hint.id, error.id].filter(Boolean).join(" "));
  const isCheck = input.type === "checkbox";
  const label = h("label", { for: id }, labelText);
  const wrap = isCheck
    ? h("div", { class: "field" }, h("div", { class: "field check" }, input, label), hint, error)
    : h("div", { class: "field" }, label, hint, input, error);
  return { wrap, input, error };
}

export function setFieldError(f, message) {
  f.error.textContent = message || "";
  if (message) f.input.setAttribute("aria-invalid", "true");
  else f.input.removeAttribute("aria-invalid");
}
