// Strict JSON, as chain/strict_json.py parses it with Python's json module: objects are Maps
// (member order kept), integers are numbers (BigInt beyond 2**53), floats are PyFloat (so 7.0
// is not 7), duplicate members, NaN/Infinity and integer literals over 20 digits are refused,
// and syntax errors carry Python's message and position.

// A cycle with pyfmt.js (which needs PyFloat): both only call each other at run time.
import { cut, reprStr } from "./pyfmt.js";

export class PyFloat {
  constructor(text) {
    this.text = text;
    this.value = Number(text);
  }
}

/** Python's json.JSONDecodeError: `msg` at character `pos`. */
export class JsonSyntaxError extends Error {
  constructor(msg, pos) {
    super(msg);
    this.msg = msg;
    this.pos = pos;
  }
}

/** Refused content: a duplicate member or an absurd integer (Python's `_Rejected`). */
export class JsonRejected extends Error {}

/** NaN / Infinity (Python's ValueError from parse_constant). */
export class JsonConstant extends Error {}

const MAX_INT_DIGITS = 20;
const MAX_DEPTH = 900; // Python's recursion limit stops deeper documents ("nested too deeply")
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/y;
const WS = /[ \t\n\r]*/y;

export function skipWs(text, pos) {
  WS.lastIndex = pos;
  WS.test(text);
  return WS.lastIndex;
}

function hexValue(text, pos) {
  const digits = text.slice(pos, pos + 4);
  if (digits.length !== 4 || !/^[0-9a-fA-F]{4}$/.test(digits)) {
    throw new JsonSyntaxError("Invalid \\uXXXX escape", pos - 1);
  }
  return parseInt(digits, 16);
}

const ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

/** A string starting after its opening quote at `start`; returns [value, end]. */
function parseString(text, start) {
  let out = "";
  let pos = start;
  for (;;) {
    let run = pos;
    while (run < text.length) {
      const c = text.charCodeAt(run);
      if (c === 0x22 || c === 0x5c || c < 0x20) break;
      run++;
    }
    out += text.slice(pos, run);
    pos = run;
    if (pos >= text.length) throw new JsonSyntaxError("Unterminated string starting at", start - 1);
    const ch = text[pos];
    if (ch === '"') return [out, pos + 1];
    if (ch !== "\\") throw new JsonSyntaxError("Invalid control character at", pos);
    const esc = text[pos + 1];
    if (esc === undefined) throw new JsonSyntaxError("Unterminated string starting at", start - 1);
    if (esc !== "u") {
      if (!(esc in ESCAPES)) throw new JsonSyntaxError("Invalid \\escape", pos);
      out += ESCAPES[esc];
      pos += 2;
      continue;
    }
    let code = hexValue(text, pos + 2);
    pos += 6;
    if (code >= 0xd800 && code <= 0xdbff && text[pos] === "\\" && text[pos + 1] === "u") {
      const low = hexValue(text, pos + 2);
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        pos += 6;
      }
    }
    out += code > 0xffff ? String.fromCodePoint(code) : String.fromCharCode(code);
  }
}

function parseNumber(text, pos) {
  NUMBER.lastIndex = pos;
  const match = NUMBER.exec(text);
  if (match === null) return null;
  const literal = match[0];
  const end = pos + literal.length;
  if (match[1] !== undefined || match[2] !== undefined) return [new PyFloat(literal), end];
  if (literal.replace("-", "").length > MAX_INT_DIGITS) {
    throw new JsonRejected(`integer literal of ${literal.length} characters`);
  }
  const big = BigInt(literal);
  const small = Number(literal);
  return [Number.isSafeInteger(small) ? small : big, end];
}

function duplicateOf(names) {
  const seen = new Set();
  const repeated = new Set();
  for (const name of names) {
    if (seen.has(name)) repeated.add(name);
    seen.add(name);
  }
  return names.find((name) => repeated.has(name));
}

/** The JSON value starting exactly at `pos` (no white space skipped); returns [value, end]. */
export function parseValue(text, pos, depth = 0) {
  if (depth > MAX_DEPTH) throw new RangeError("nested too deeply");
  const ch = text[pos];
  if (ch === '"') return parseString(text, pos + 1);
  if (ch === "{") return parseObject(text, pos + 1, depth);
  if (ch === "[") return parseArray(text, pos + 1, depth);
  if (ch === "n" && text.startsWith("null", pos)) return [null, pos + 4];
  if (ch === "t" && text.startsWith("true", pos)) return [true, pos + 4];
  if (ch === "f" && text.startsWith("false", pos)) return [false, pos + 5];
  if (ch === "N" && text.startsWith("NaN", pos)) throw new JsonConstant("NaN is not JSON");
  if (ch === "I" && text.startsWith("Infinity", pos)) throw new JsonConstant("Infinity is not JSON");
  if (ch === "-" && text.startsWith("-Infinity", pos)) throw new JsonConstant("-Infinity is not JSON");
  const number = parseNumber(text, pos);
  if (number === null) throw new JsonSyntaxError("Expecting value", pos);
  return number;
}

function parseObject(text, pos, depth) {
  const pairs = new Map();
  const names = [];
  pos = skipWs(text, pos);
  if (text[pos] === "}") return [pairs, pos + 1];
  if (text[pos] !== '"') {
    throw new JsonSyntaxError("Expecting property name enclosed in double quotes", pos);
  }
  for (;;) {
    const [name, afterName] = parseString(text, pos + 1);
    pos = skipWs(text, afterName);
    if (text[pos] !== ":") throw new JsonSyntaxError("Expecting ':' delimiter", pos);
    pos = skipWs(text, pos + 1);
    const [value, end] = parseValue(text, pos, depth + 1);
    names.push(name);
    pairs.set(name, value);
    const [closed, after] = delimiter(text, end, "}");
    pos = after;
    if (closed) break;
    if (text[pos] !== '"') {
      throw new JsonSyntaxError("Expecting property name enclosed in double quotes", pos);
    }
  }
  if (pairs.size !== names.length) {
    throw new JsonRejected(`duplicate member ${cut(reprStr(duplicateOf(names)), 66)}`);
  }
  return [pairs, pos];
}

function parseArray(text, pos, depth) {
  const items = [];
  pos = skipWs(text, pos);
  if (text[pos] === "]") return [items, pos + 1];
  for (;;) {
    const [value, end] = parseValue(text, pos, depth + 1);
    items.push(value);
    const [closed, after] = delimiter(text, end, "]");
    pos = after;
    if (closed) break;
  }
  return [items, pos];
}

/** After a member or element: [true, after `close`] or [false, at what follows the comma]. */
function delimiter(text, pos, close) {
  pos = skipWs(text, pos);
  const next = text[pos];
  if (next === close) return [true, pos + 1];
  if (next !== ",") throw new JsonSyntaxError("Expecting ',' delimiter", pos);
  return [false, skipWs(text, pos + 1)];
}

/** Python's "line L column C" of character `pos` in `text`. */
export function where(text, pos) {
  let line = 1;
  let newline = -1;
  for (let i = text.indexOf("\n"); i !== -1 && i < pos; i = text.indexOf("\n", i + 1)) {
    line += 1;
    newline = i;
  }
  return `line ${line} column ${pos - newline}`;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** UTF-8 bytes to text, or null if they are not UTF-8. */
export function decodeUtf8(bytes) {
  try {
    return UTF8.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * chain.strict_json.loads_object: one strict JSON object from UTF-8 bytes.
 * Returns the Map, or throws {content: bool, message} (content: refused, not malformed).
 */
export function loadsObject(bytes, what) {
  const text = decodeUtf8(bytes);
  if (text === null) throw { content: false, message: `${what}: not UTF-8 text` };
  if (text.startsWith("\ufeff")) {
    throw { content: false, message: `${what}: not JSON: starts with a byte order mark` };
  }
  let value;
  try {
    const start = skipWs(text, 0);
    const [parsed, end] = parseValue(text, start);
    const rest = skipWs(text, end);
    if (rest !== text.length) throw new JsonSyntaxError("Extra data", rest);
    value = parsed;
  } catch (error) {
    if (error instanceof JsonRejected) throw { content: true, message: `${what}: ${error.message}` };
    if (error instanceof JsonSyntaxError) {
      throw { content: false, message: `${what}: not JSON: ${error.msg} at ${where(text, error.pos)}` };
    }
    if (error instanceof JsonConstant) throw { content: false, message: `${what}: not JSON: ${error.message}` };
    if (error instanceof RangeError) throw { content: false, message: `${what}: nested too deeply` };
    throw error;
  }
  if (!(value instanceof Map)) throw { content: false, message: `${what}: not a JSON object` };
  return value;
}
