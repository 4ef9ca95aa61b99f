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

// str.isprintable: false for control, format, surrogate, private-use, unassigned and
// separator characters, the plain space excepted.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** Python's `c.isprintable()` of one character (code point). */
export function isPrintable(ch) {
  return ch === " " || !UNPRINTABLE.test(ch);
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
    else if (isPrintable(ch)) out += ch;
    else if (code < 0x100) out += "\\x" + hex(code, 2);
    else if (code < 0x10000) out += "\\u" + hex(code, 4);
    else out += "\\U" + hex(code, 8);
  }
  return out + quote;
}

/** Python's `repr(x)` of a float (shortest round trip; exponent outside 1e-4 .. 1e16). */
export function reprFloat(x) {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  const [mantissa, exp] = x.toExponential().split("e");
  const exponent = Number(exp);
  const sign = mantissa.startsWith("-") ? "-" : "";
  const digits = mantissa.replace("-", "").replace(".", "");
  if (exponent < -4 || exponent >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = `${exponent < 0 ? "-" : "+"}${String(Math.abs(exponent)).padStart(2, "0")}`;
    return `${sign}${m}e${e}`;
  }
  if (exponent < 0) return `${sign}0.${"0".repeat(-exponent - 1)}${digits}`;
  const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, "0");
  const fraction = digits.slice(exponent + 1) || "0";
  return `${sign}${whole}.${fraction}`;
}

/** `repr(value)` of a decoded JSON value (str, int, None, bool, list of those). */
export function repr(value) {
  if (typeof value === "string") return reprStr(value);
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (isInt(value)) return String(value);
  if (value instanceof PyFloat) return reprFloat(value.value);
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
