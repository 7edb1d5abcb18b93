// Forms generated from an intent's JSON Schema (as Pydantic writes it): one labelled
// control per property, defaults filled in, validated before anything is sent.

import { h, field, setFieldError } from "./dom.js";

function deref(schema, root) {
  let current = schema || {};
  for (let hops = 0; current.$ref && hops < 10; hops += 1) {
    const path = current.$ref.replace(/^#\//, "").split("/");
    const target = path.reduce((node, key) => node?.[key], root) || {};
    const { $ref, ...rest } = current;
    current = { ...target, ...rest };
  }
  return current;
}

/** Flatten $ref / allOf / Optional (anyOf with null) into one property description. */
export function describeProperty(schema, root) {
  let prop = deref(schema, root);
  if (prop.allOf?.length === 1) {
    const { allOf, ...rest } = prop;
    prop = { ...deref(allOf[0], root), ...rest };
  }
  let nullable = false;
  const alternatives = prop.anyOf || prop.oneOf;
  if (alternatives) {
    const { anyOf, oneOf, ...rest } = prop;
    const nonNull = alternatives.map((a) => deref(a, root)).filter((a) => a.type !== "null");
    nullable = nonNull.length < alternatives.length;
    prop = nonNull.length === 1 ? { ...nonNull[0], ...rest } : { ...rest, type: "json" };
  }
  let type = prop.type;
  if (Array.isArray(type)) {
    nullable = nullable || type.includes("null");
    type = type.find((t) => t !== "null");
  }
  const values = prop.enum ?? (prop.const !== undefined ? [prop.const] : null);
  let kind = "json";
  if (values) kind = "enum";
  else if (type === "boolean") kind = "boolean";
  else if (type === "integer" || type === "number") kind = "number";
  else if (type === "string") kind = "string";
  return { ...prop, type, kind, values, nullable };
}

function constraintsHint(prop) {
  const parts = [];
  if (prop.kind === "number") parts.push(prop.type === "integer" ? "whole number" : "number");
  if (prop.minimum !== undefined) parts.push(`≥ ${prop.minimum}`);
  if (prop.exclusiveMinimum !== undefined) parts.push(`> ${prop.exclusiveMinimum}`);
  if (prop.maximum !== undefined) parts.push(`≤ ${prop.maximum}`);
  if (prop.exclusiveMaximum !== undefined) parts.push(`< ${prop.exclusiveMaximum}`);
  if (prop.minLength !== undefined) parts.push(`at least ${prop.minLength} characters`);
  if (prop.maxLength !== undefined) parts.push(`at most ${prop.maxLength} characters`);
  if (prop.kind === "json") parts.push(`JSON${prop.type ? ` ${prop.type}` : ""}`);
  return parts.join(", ");
}

const LONG_TEXT_NAMES = /^(text|body|content|prompt|document|input)$/;

function control(name, prop, required) {
  const common = { name, "aria-required": required ? "true" : null };
  switch (prop.kind) {
    case "boolean":
      return h("input", { ...common, type: "checkbox", checked: prop.default === true });
    case "enum":
      return h("select", common,
        required && prop.default === undefined ? h("option", { value: "" }, "Choose…") : null,
        !required ? h("option", { value: "" }, "(default)") : null,
        prop.values.map((v, i) => h("option", { value: String(i), selected: prop.default === v }, String(v))));
    case "number":
      return h("input", { ...common, type: "number", step: prop.type === "integer" ? "1" : "any", inputmode: prop.type === "integer" ? "numeric" : "decimal", value: prop.default ?? "" });
    case "string":
      if (LONG_TEXT_NAMES.test(name) || (prop.maxLength ?? 0) > 200 || prop.format === "textarea") {
        return h("textarea", { ...common, rows: "4", value: prop.default ?? "" });
      }
      return h("input", { ...common, type: prop.format === "email" ? "email" : "text", value: prop.default ?? "" });
    default:
      return h("textarea", { ...common, rows: "3", class: "mono", value: prop.default === undefined ? "" : JSON.stringify(prop.default, null, 2) });
  }
}

function checkNumber(raw, prop) {
  const value = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(value)) return [null, "Enter a number."];
  if (prop.type === "integer" && !Number.isInteger(value)) return [null, "Enter a whole number."];
  if (prop.minimum !== undefined && value < prop.minimum) return [null, `Must be at least ${prop.minimum}.`];
  if (prop.exclusiveMinimum !== undefined && value <= prop.exclusiveMinimum) return [null, `Must be more than ${prop.exclusiveMinimum}.`];
  if (prop.maximum !== undefined && value > prop.maximum) return [null, `Must be at most ${prop.maximum}.`];
  if (prop.exclusiveMaximum !== undefined && value >= prop.exclusiveMaximum) return [null, `Must be less than ${prop.exclusiveMaximum}.`];
  if (prop.multipleOf !== undefined && Math.abs(value / prop.multipleOf - Math.round(value / prop.multipleOf)) > 1e-9) return [null, `Must be a multiple of ${prop.multipleOf}.`];
  return [value, null];
}

function checkString(value, prop) {
  const length = [...value].length;
  if (prop.minLength !== undefined && length < prop.minLength) return `Must be at least ${prop.minLength} characters.`;
  if (prop.maxLength !== undefined && length > prop.maxLength) return `Must be at most ${prop.maxLength} characters.`;
  if (prop.pattern) {
    try {
      if (!new RegExp(prop.pattern, "u").test(value)) return `Must match the pattern ${prop.pattern}.`;
    } catch { /* a pattern JavaScript cannot compile is left to the server */ }
  }
  return null;
}

function checkJson(raw, prop) {
  let value;
  try { value = JSON.parse(raw); } catch { return [null, "Enter valid JSON."]; }
  const actual = Array.isArray(value) ? "array" : value === null ? "null" : typeof value;
  if (prop.type === "array" && actual !== "array") return [null, "Enter a JSON array, like [1, 2]."];
  if (prop.type === "object" && actual !== "object") return [null, "Enter a JSON object, like {\"key\": 1}."];
  return [value, null];
}

/**
 * Build the form fields for `schema`. Returns {el, read, showErrors, clearErrors}:
 * read() -> {values, errors: {name: message}}.
 */
export function schemaFields(schema) {
  const root = deref(schema, schema);
  const required = new Set(root.required || []);
  const fields = Object.entries(root.properties || {}).map(([name, raw]) => {
    const prop = describeProperty(raw, schema);
    const isRequired = required.has(name);
    const input = control(name, prop, isRequired);
    const labelText = `${prop.title || name}${isRequired ? " (required)" : ""}`;
    const hint = [prop.description, constraintsHint(prop)].filter(Boolean).join(" — ");
    return { name, prop, required: isRequired, ...field(labelText, input, hint || null) };
  });

  function readOne(f) {
    const { prop, input } = f;
    if (prop.kind === "boolean") return [input.checked, null];
    const raw = input.value;
    if (raw.trim() === "") return f.required ? [undefined, "This field is required."] : [undefined, null];
    if (prop.kind === "enum") return [prop.values[Number(raw)], null];
    if (prop.kind === "number") return checkNumber(raw, prop);
    if (prop.kind === "string") return [raw, checkString(raw, prop)];
    return checkJson(raw, prop);
  }

  return {
    el: h("div", { class: "schema-fields" },
      fields.length ? fields.map((f) => f.wrap) : h("p", { class: "muted" }, "This intent takes no parameters.")),
    fields,
    read() {
      const values = {};
      const errors = {};
      for (const f of fields) {
        const [value, error] = readOne(f);
        if (error) errors[f.name] = error;
        else if (value !== undefined) values[f.name] = value;
      }
      return { values, errors };
    },
    showErrors(errors) {
      for (const f of fields) setFieldError(f, errors[f.name]);
      const first = fields.find((f) => errors[f.name]);
      first?.input.focus();
    },
    clearErrors() {
      for (const f of fields) setFieldError(f, null);
    },
  };
}

/** Map server validation errors ({loc, msg}) onto field names; the rest stay general. */
export function splitServerErrors(errors, names) {
  const byField = {};
  const general = [];
  for (const err of errors || []) {
    const loc = Array.isArray(err.loc) ? err.loc.map(String) : [];
    const name = [...loc].reverse().find((part) => names.includes(part));
    if (name) byField[name] = byField[name] ? `${byField[name]} ${err.msg}` : err.msg;
    else general.push(`${loc.join(".") || "params"}: ${err.msg}`);
  }
  return { byField, general };
}
