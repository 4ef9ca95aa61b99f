// Reading a mileage certificate (chain/certificate_stream.py, certificate_json.py,
// certificate_parts.py): the whole document is validated first, member by member in document
// order, and every refusal is a `format` error with the same detail as the Python reader's.

import { b64Decode } from "./b64.js";
import { CertificateError, EncodingError } from "./errors.js";
import { DEVICE_ID_PATTERN, DEVICE_ID_RE, RANGES } from "./jws.js";
import { cut, isInt, repr, reprStr, sortedStrings, typeName } from "./pyfmt.js";
import { JsonConstant, JsonRejected, JsonSyntaxError, decodeUtf8, parseValue, skipWs, where } from "./strictjson.js";

export const FORMAT = "roadledger/mileage-certificate/v1";
export const MAX_CERTIFICATE_BYTES = 512 * 1024 * 1024;
const MAX_MESSAGES = 500_000;
const MAX_DEVICE_KEYS = 1_000;
const MAX_ITEM_CHARS = 64 * 1024;
const MAX_SUMMARY_CHARS = 16 * 1024 * 1024;
const MAX_MEMBER_CHARS = 4 * 1024 * 1024;
const MAX_PROOF_HASHES = 64;
const MS_MAX = 2 ** 53 - 1;
const MAX_LEAF = (1n << 64n) - 2n;
const [SEQ_LOW, SEQ_HIGH] = RANGES.seq;
const ODO_HIGH = RANGES.odo_m[1];
const MEMBERS = ["format", "device_id", "from_ms", "to_ms", "checkpoint", "device_keys", "messages", "summary"];
const SUMMARY_MEMBERS = [
  "first_seq", "last_seq", "message_count", "odometer_start_m", "odometer_end_m",
  "distance_m", "gnss_distance_m", "gaps", "anomalies",
];
const ARRAYS = { messages: MAX_MESSAGES, device_keys: MAX_DEVICE_KEYS };

const format = (detail) => new CertificateError("format", detail);
const bad = (path, detail) => format(`${path}: ${detail}`);

function checkInt(value, path, low, high) {
  if (!isInt(value)) throw bad(path, `expected an integer, got ${typeName(value)}`);
  if (!(low <= value && value <= high)) throw bad(path, `${value} outside [${low}, ${high}]`);
}

function checkStr(value, path) {
  if (typeof value !== "string") throw bad(path, `expected a string, got ${typeName(value)}`);
}

function members(obj, expected, path) {
  const missing = expected.filter((name) => !obj.has(name));
  if (missing.length) throw bad(path, `missing ${repr(missing)}`);
  const unknown = sortedStrings([...obj.keys()].filter((name) => !expected.includes(name)));
  if (unknown.length) throw bad(path, `unknown member ${cut(reprStr(unknown[0]), 66)}`);
}

function object(item, path, expected) {
  if (!(item instanceof Map)) throw bad(path, "expected an object");
  members(item, expected, path);
  return item;
}

function b64(value, path) {
  if (typeof value !== "string") throw bad(path, `expected a base64 string, got ${typeName(value)}`);
  try {
    return b64Decode(value, "base64");
  } catch (error) {
    if (error instanceof EncodingError) throw bad(path, error.message);
    throw error;
  }
}

// Proof hash text -> its bytes: the proofs of one certificate repeat the same hashes, so they
// are decoded once and shared (which also lets merkle.js remember nodes by identity).
let interned = new Map();

function proof(value, path) {
  if (!Array.isArray(value) || value.length > MAX_PROOF_HASHES) {
    throw bad(path, `expected an array of at most ${MAX_PROOF_HASHES} base64 hashes`);
  }
  return value.map((h, i) => {
    const known = typeof h === "string" ? interned.get(h) : undefined;
    if (known !== undefined) return known;
    const bytes = b64(h, `${path}[${i}]`);
    if (bytes.length === 32) interned.set(h, bytes);
    return bytes;
  });
}

function checkItem(leafIndex, hashes, name) {
  checkInt(leafIndex, `${name}.leaf_index`, 0, MAX_LEAF);
  hashes.forEach((h, i) => {
    if (h.length !== 32) throw bad(`${name}.inclusion_proof[${i}]`, "expected a 32-byte hash");
  });
}

/** device_keys[i]: {entry, leafIndex, proof}. */
export function keyFromObject(item, i) {
  const path = `device_keys[${i}]`;
  const fields = object(item, path, ["entry", "leaf_index", "inclusion_proof"]);
  const entry = b64(fields.get("entry"), `${path}.entry`);
  const hashes = proof(fields.get("inclusion_proof"), `${path}.inclusion_proof`);
  checkItem(fields.get("leaf_index"), hashes, path);
  return { entry, leafIndex: fields.get("leaf_index"), proof: hashes };
}

/** messages[i]: {jws, leafIndex, proof}. */
export function messageFromObject(item, i) {
  const path = `messages[${i}]`;
  const fields = object(item, path, ["jws", "leaf_index", "inclusion_proof"]);
  const hashes = proof(fields.get("inclusion_proof"), `${path}.inclusion_proof`);
  checkItem(fields.get("leaf_index"), hashes, path);
  checkStr(fields.get("jws"), `${path}.jws`);
  return { jws: fields.get("jws"), leafIndex: fields.get("leaf_index"), proof: hashes };
}

function objects(value, path, expected) {
  if (!Array.isArray(value)) throw bad(path, "expected an array");
  value.forEach((item, i) => {
    if (!(item instanceof Map)) throw bad(`${path}[${i}]`, "expected an object");
    members(item, expected, `${path}[${i}]`);
  });
  return value;
}

function summaryFromObject(value) {
  if (!(value instanceof Map)) throw bad("summary", "expected an object");
  members(value, SUMMARY_MEMBERS, "summary");
  const gaps = objects(value.get("gaps"), "summary.gaps", ["after_seq", "before_seq"]);
  const anomalies = objects(value.get("anomalies"), "summary.anomalies", ["seq", "kind", "detail"]);
  const s = Object.fromEntries(SUMMARY_MEMBERS.map((name) => [name, value.get(name)]));
  for (const name of ["first_seq", "last_seq"]) checkInt(s[name], `summary.${name}`, SEQ_LOW, SEQ_HIGH);
  checkInt(s.message_count, "summary.message_count", 1, SEQ_HIGH);
  for (const name of ["odometer_start_m", "odometer_end_m"]) checkInt(s[name], `summary.${name}`, 0, ODO_HIGH);
  checkInt(s.distance_m, "summary.distance_m", -ODO_HIGH, ODO_HIGH);
  checkInt(s.gnss_distance_m, "summary.gnss_distance_m", 0, MS_MAX);
  s.gaps = gaps.map((g, i) => {
    for (const name of ["after_seq", "before_seq"]) checkInt(g.get(name), `summary.gaps[${i}].${name}`, SEQ_LOW, SEQ_HIGH);
    return { after_seq: g.get("after_seq"), before_seq: g.get("before_seq") };
  });
  s.anomalies = anomalies.map((a, i) => {
    checkInt(a.get("seq"), `summary.anomalies[${i}].seq`, SEQ_LOW, SEQ_HIGH);
    checkStr(a.get("kind"), `summary.anomalies[${i}].kind`);
    checkStr(a.get("detail"), `summary.anomalies[${i}].detail`);
    return { seq: a.get("seq"), kind: a.get("kind"), detail: a.get("detail") };
  });
  return s;
}

function checkHeader(deviceId, fromMs, toMs, checkpoint) {
  if (typeof deviceId !== "string" || !DEVICE_ID_RE.test(deviceId)) {
    throw bad("device_id", `expected an id matching ${DEVICE_ID_PATTERN}`);
  }
  checkInt(fromMs, "from_ms", 0, MS_MAX);
  checkInt(toMs, "to_ms", 0, MS_MAX);
  if (fromMs >= toMs) throw bad("to_ms", `${toMs} is not after from_ms ${fromMs}`);
  checkStr(checkpoint, "checkpoint");
}

/** Parser events over the whole text: [member, index (-1 scalar, -2 end of array), value]. */
function* events(text) {
  const value = (pos, limit, path) => {
    let result;
    try {
      result = parseValue(text, pos);
    } catch (error) {
      if (error instanceof JsonRejected) throw format(`certificate: ${error.message}`);
      if (error instanceof JsonSyntaxError) {
        throw format(`certificate: not JSON: ${error.msg} at ${where(text, error.pos)}`);
      }
      if (error instanceof JsonConstant) throw format(`certificate: not JSON: ${error.message}`);
      if (error instanceof RangeError) throw format("certificate: nested too deeply");
      throw error;
    }
    if (result[1] - pos > limit) throw format(`${path}: larger than the limit of ${limit} characters`);
    return result;
  };
  const notJson = (msg, pos) => format(`certificate: not JSON: ${msg} at ${where(text, pos)}`);
  let pos = skipWs(text, 0);
  if (text[pos] !== "{") {
    value(pos, MAX_MEMBER_CHARS, "certificate");
    throw format("certificate: not a JSON object");
  }
  pos = skipWs(text, pos + 1);
  const seen = new Set();
  if (text[pos] === "}") {
    pos += 1;
  } else {
    for (;;) {
      if (text[pos] !== '"') throw notJson("Expecting property name enclosed in double quotes", pos);
      const [name, afterName] = value(pos, MAX_MEMBER_CHARS, "certificate");
      if (seen.has(name)) throw format(`certificate: duplicate member ${cut(reprStr(name), 66)}`);
      seen.add(name);
      pos = skipWs(text, afterName);
      if (text[pos] !== ":") throw notJson("Expecting ':' delimiter", pos);
      pos = skipWs(text, pos + 1);
      if (name in ARRAYS && text[pos] === "[") {
        const limit = ARRAYS[name];
        pos = skipWs(text, pos + 1);
        let count = 0;
        if (text[pos] === "]") {
          pos += 1;
        } else {
          for (;;) {
            if (count === limit) throw format(`${name}: more than the limit of ${limit} elements`);
            const [element, end] = value(pos, MAX_ITEM_CHARS, `${name}[${count}]`);
            yield [name, count, element];
            count += 1;
            pos = skipWs(text, end);
            const next = text[pos];
            if (next !== "," && next !== "]") throw notJson("Expecting ',' delimiter", pos);
            pos = skipWs(text, pos + 1);
            if (next === "]") break;
          }
        }
        yield [name, -2, count];
      } else {
        const [member, end] = value(pos, name === "summary" ? MAX_SUMMARY_CHARS : MAX_MEMBER_CHARS, name);
        yield [name, -1, member];
        pos = end;
      }
      pos = skipWs(text, pos);
      const next = text[pos];
      if (next !== "," && next !== "}") throw notJson("Expecting ',' delimiter", pos);
      pos = skipWs(text, pos + 1);
      if (next === "}") break;
    }
  }
  pos = skipWs(text, pos);
  if (pos < text.length) throw notJson("Extra data", pos);
}

/** The certificate's text from its bytes (UTF-8, no byte order mark), or a format error. */
export function certificateText(bytes) {
  if (bytes.length > MAX_CERTIFICATE_BYTES) {
    throw format(`certificate: ${bytes.length} bytes, larger than the limit of ${MAX_CERTIFICATE_BYTES} bytes`);
  }
  const text = decodeUtf8(bytes);
  if (text === null) throw format("certificate: not UTF-8 text");
  if (text.startsWith("\ufeff")) throw format("certificate: not JSON: starts with a byte order mark");
  return text;
}

/** read_head: validate the whole document; return its parts, messages included. */
export function readCertificate(text) {
  interned = new Map();
  const scalars = new Map();
  const keys = [];
  const messages = [];
  const counts = new Map();
  for (const [name, i, value] of events(text)) {
    if (name === "format") {
      if (value !== FORMAT) throw format(`unsupported version ${cut(repr(value), 80)}; this verifier reads ${FORMAT}`);
      scalars.set(name, value);
    } else if (name === "messages" && i >= 0) {
      messages.push(messageFromObject(value, i));
    } else if (name === "device_keys" && i >= 0) {
      keys.push(keyFromObject(value, i));
    } else if (name in ARRAYS && i === -2) {
      if (value === 0) throw bad(name, "expected at least one element");
      counts.set(name, value);
    } else {
      scalars.set(name, value);
    }
  }
  if (!scalars.has("format")) throw format(`no "format" member: not a ${FORMAT} document`);
  members(new Map([...scalars, ...counts]), MEMBERS, "certificate");
  for (const name of Object.keys(ARRAYS)) if (!counts.has(name)) throw bad(name, "expected an array");
  const get = (name) => scalars.get(name);
  checkHeader(get("device_id"), get("from_ms"), get("to_ms"), get("checkpoint"));
  interned = new Map();
  return {
    deviceId: get("device_id"),
    fromMs: get("from_ms"),
    toMs: get("to_ms"),
    checkpoint: get("checkpoint"),
    deviceKeys: keys,
    messages,
    summary: summaryFromObject(get("summary")),
  };
}
