// Python's way of printing values, so that failure details match `roadledger verify` to the byte.

import { PyFloat } from "./strictjson.js";

/** `type(value).__name__` of a decoded JSON value. */
export function typeName(value) {
  if (value === null) return "NoneType";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "string") return "str";
  if (typeof value === "number" || typeof value === "bigint") return "int";
  if (value instanceof PyFloat) return "float";
  if (Array.isArray(value)) return "list";
  if (value instanceof Map) return "dict";
  if (value instanceof Uint8Array) return "bytes";
  return typeof value;
}

export function isInt(value) {
  return typeof value === "number" || typeof value === "bigint";
}

function isPrintable(code) {
  // An approximation of str.isprintable: controls, separators and surrogates are not.
  if (code < 0x20 || (code >= 0x7f && code < 0xa0)) return false;
  if (code === 0xad || (code >= 0xd800 && code <= 0xdfff)) return false;
  if (code === 0x2028 || code === 0x2029 || code === 0x85 || code === 0xa0) return false;
  if (code === 0x1680 || (code >= 0x2000 && code <= 0x200f)) return false;
  if (code === 0x202f || code === 0x205f || code === 0x3000 || code === 0xfeff) return false;
  return true;
}

function hex(code, width) {
  return code.toString(16).padStart(width, "0");
}

/** `repr(text)` of a Python str. */
export function reprStr(text) {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of text) {
    const code = ch.codePointAt(0);
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (isPrintable(code)) out += ch;
    else if (code < 0x100) out += "\\x" + hex(code, 2);
    else if (code < 0x10000) out += "\\u" + hex(code, 4);
    else out += "\\U" + hex(code, 8);
  }
  return out + quote;
}

/** `repr(value)` of a decoded JSON value (str, int, None, bool, list of those). */
export function repr(value) {
  if (typeof value === "string") return reprStr(value);
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (isInt(value)) return String(value);
  if (value instanceof PyFloat) return value.text;
  if (Array.isArray(value)) return "[" + value.map(repr).join(", ") + "]";
  if (value instanceof Map) {
    return "{" + [...value].map(([k, v]) => `${reprStr(k)}: ${repr(v)}`).join(", ") + "}";
  }
  return String(value);
}

/** The first `n` characters (code points) of `text`: Python's `{x:.n}`. */
export function cut(text, n) {
  const chars = [...text];
  return chars.length <= n ? text : chars.slice(0, n).join("");
}

/** Python's sorted() of strings: by code point. */
export function sortedStrings(values) {
  const key = (s) => [...s].map((c) => c.codePointAt(0));
  return [...values].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
      if (ka[i] !== kb[i]) return ka[i] - kb[i];
    }
    return ka.length - kb.length;
  });
}

function jsonString(text) {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += "\\\\";
    else if (c === 0x0a) out += "\\n";
    else if (c === 0x0d) out += "\\r";
    else if (c === 0x09) out += "\\t";
    else if (c === 0x08) out += "\\b";
    else if (c === 0x0c) out += "\\f";
    else if (c < 0x20 || c > 0x7e) out += "\\u" + hex(c, 4);
    else out += text[i];
  }
  return out + '"';
}

/** `json.dumps(obj)` with Python's defaults (", ", ": ", ASCII only), for flat objects. */
export function dumps(entries) {
  const parts = entries.map(([k, v]) => `${jsonString(k)}: ${typeof v === "string" ? jsonString(v) : String(v)}`);
  return "{" + parts.join(", ") + "}";
}
