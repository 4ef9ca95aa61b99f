// Compact JWS with Ed25519 (chain/jws.py) and the telemetry payload schema (chain/telemetry.py):
// the same profile, reason codes and details, on the verbatim bytes.

import { b64urlDecode, b64urlEncode, utf8 } from "./b64.js";
import { sha256 } from "./crypto.js";
import { EncodingError, TelemetryError } from "./errors.js";
import { cut, isInt, repr, sortedStrings, typeName } from "./pyfmt.js";
import { loadsObject } from "./strictjson.js";

export const MAX_JWS_BYTES = 16 * 1024;
const MAX_HEADER_SEGMENT_BYTES = 1024;
const MAX_KID_CHARS = 64;
const ACCEPTED_ALGS = new Set(["Ed25519", "EdDSA"]);
export const DEVICE_ID_RE = /^[A-Za-z0-9._:-]{1,64}$/;
export const DEVICE_ID_PATTERN = "[A-Za-z0-9._:-]{1,64}";
export const RANGES = {
  seq: [1, 2 ** 53 - 1],
  ts: [946_684_800_000, 4_102_444_800_000],
  odo_m: [0, 10_000_000_000],
  lat_e7: [-900_000_000, 900_000_000],
  lon_e7: [-1_800_000_000, 1_800_000_000],
  spd_cms: [0, 15_000],
  hdg_cdeg: [0, 35_999],
};
const MAX_OBS = 64;
const VEHICLE_FIELDS = ["v", "dev", "seq", "prev", "ts", "odo_m", "lat_e7", "lon_e7", "spd_cms", "hdg_cdeg"];
const RSU_FIELDS = ["v", "dev", "seq", "prev", "ts", "lat_e7", "lon_e7", "obs"];
const OBS_FIELDS = ["veh", "ts", "lat_e7", "lon_e7"];

/** chain.jws.parse_json_object: a strict JSON object, errors as reason codes. */
export function parseJsonObject(bytes, what, contentReason) {
  try {
    return loadsObject(bytes, what);
  } catch (error) {
    if (error instanceof Error) throw error;
    throw new TelemetryError(error.content ? contentReason : "malformed", error.message);
  }
}

function b64url(segment, what) {
  try {
    return b64urlDecode(segment, what);
  } catch (error) {
    if (error instanceof EncodingError) throw new TelemetryError("malformed", error.message);
    throw error;
  }
}

const bad = (reason, detail) => new TelemetryError(reason, detail);

function parseHeader(segment, requireKid) {
  const size = utf8.encode(segment).length;
  if (size > MAX_HEADER_SEGMENT_BYTES) {
    throw bad("bad_header", `header: ${size} bytes encoded, limit is ${MAX_HEADER_SEGMENT_BYTES}`);
  }
  const obj = parseJsonObject(b64url(segment, "header"), "header", "bad_header");
  if (!obj.has("alg")) throw bad("bad_header", "header: alg missing");
  const alg = obj.get("alg");
  obj.delete("alg");
  const kid = obj.has("kid") ? obj.get("kid") : null;
  const typ = obj.has("typ") ? obj.get("typ") : null;
  if (typeof alg !== "string") throw bad("bad_header", "header: alg must be a string");
  if (!ACCEPTED_ALGS.has(alg)) throw bad("unsupported_alg", `header: alg ${cut(repr(alg), 66)}`);
  if (kid !== null && (typeof kid !== "string" || !kid)) {
    throw bad("bad_header", "header: kid must be a non-empty string");
  }
  if (kid !== null && [...kid].length > MAX_KID_CHARS) {
    throw bad("bad_header", `header: kid of ${[...kid].length} characters, limit is ${MAX_KID_CHARS}`);
  }
  if (typ !== null && typeof typ !== "string") throw bad("bad_header", "header: typ must be a string");
  const unknown = [...obj.keys()].filter((k) => k !== "kid" && k !== "typ");
  if (unknown.length) {
    throw bad("bad_header", `header: unsupported parameters ${cut(repr(sortedStrings(unknown)), 200)}`);
  }
  const nulls = [...obj].filter(([, v]) => v === null).map(([k]) => k);
  if (nulls.length) throw bad("bad_header", `header: null parameters ${repr(nulls)}`);
  if (requireKid && kid === null) throw bad("bad_header", "header: kid missing");
  return { alg, kid, typ };
}

// Header segment -> parsed header: a device sends the same header with every message. Only
// successful parses of real-sized segments are kept, and the cache is bounded, as in chain/jws.py.
const headers = new Map();
const HEADER_CACHE_LIMIT = 32_768;
const HEADER_CACHE_SEGMENT = 160;

function cachedHeader(segment, requireKid) {
  const key = `${requireKid ? 1 : 0}${segment}`;
  let header = headers.get(key);
  if (header === undefined) {
    header = parseHeader(segment, requireKid);
    if (segment.length <= HEADER_CACHE_SEGMENT) {
      if (headers.size >= HEADER_CACHE_LIMIT) headers.clear();
      headers.set(key, header);
    }
  }
  return header;
}

/** CompactJws.from_bytes of the JWS text: split and decode, the signature not verified. */
export function parseCompactJws(jws, { requireKid = true } = {}) {
  const raw = utf8.encode(jws);
  if (raw.length > MAX_JWS_BYTES) throw bad("oversize", `${raw.length} bytes, limit is ${MAX_JWS_BYTES}`);
  const parts = jws.split(".");
  if (parts.length !== 3) throw bad("malformed", `compact JWS needs 3 segments, got ${parts.length}`);
  if (parts.some((p) => !p)) throw bad("malformed", "compact JWS has an empty segment");
  const header = cachedHeader(parts[0], requireKid);
  const signature = b64url(parts[2], "signature");
  if (signature.length !== 64) throw bad("malformed", `signature: ${signature.length} bytes, not 64`);
  const payload = b64url(parts[1], "payload");
  const signingInput = raw.subarray(0, parts[0].length + 1 + parts[1].length);
  return { raw, header, payload, signature, signingInput };
}

const schema = (detail) => bad("schema", detail);

function checkInt(name, value, boundsOf) {
  if (!isInt(value)) throw schema(`${name}: expected integer, got ${typeName(value)}`);
  const [low, high] = RANGES[boundsOf ?? name];
  if (!(low <= value && value <= high)) throw schema(`${name}: ${value} outside [${low}, ${high}]`);
}

function checkId(name, value) {
  if (typeof value !== "string" || !DEVICE_ID_RE.test(value)) {
    throw schema(`${name}: expected an id matching ${DEVICE_ID_PATTERN}`);
  }
}

function checkMembers(what, obj, expected) {
  const missing = expected.filter((name) => !obj.has(name));
  if (missing.length) throw schema(`${what}: missing ${repr(sortedStrings(missing))}`);
  const extra = [...obj.keys()].filter((name) => !expected.includes(name));
  if (extra.length) throw schema(`${what}: unexpected ${repr(sortedStrings(extra))}`);
}

function checkObservation(o) {
  if (!(o instanceof Map)) throw schema("obs: elements must be objects");
  checkMembers("obs element", o, OBS_FIELDS);
  checkId("obs.veh", o.get("veh"));
  checkInt("obs.ts", o.get("ts"), "ts");
  checkInt("obs.lat_e7", o.get("lat_e7"), "lat_e7");
  checkInt("obs.lon_e7", o.get("lon_e7"), "lon_e7");
}

function checkPrev(seq, prev) {
  if (typeof prev !== "string") throw schema(`prev: expected string, got ${typeName(prev)}`);
  if ((seq === 1) !== !prev) throw schema("prev: must be empty exactly when seq is 1");
  if (seq === 1) return;
  let digest;
  try {
    digest = b64urlDecode(prev, "prev");
  } catch (error) {
    throw schema(error.message);
  }
  if (digest.length !== 32) throw schema(`prev: ${digest.length} bytes, expected a SHA-256 digest`);
}

/** Telemetry.from_json: the payload object, schema-checked; `rsu` tells its kind. */
export function parseTelemetry(payload) {
  const obj = parseJsonObject(payload, "payload", "schema");
  const rsu = obj.has("obs");
  if (rsu) {
    checkMembers("RSU payload", obj, RSU_FIELDS);
    const obs = obj.get("obs");
    if (!Array.isArray(obs) || obs.length > MAX_OBS) {
      throw schema(`obs: expected an array of at most ${MAX_OBS} observations`);
    }
    obs.forEach(checkObservation);
  } else {
    checkMembers("vehicle payload", obj, VEHICLE_FIELDS);
  }
  const t = Object.fromEntries(obj);
  if (!isInt(t.v) || t.v !== 1) throw schema(`v: unsupported format version ${cut(repr(t.v), 20)}`);
  checkId("dev", t.dev);
  checkInt("seq", t.seq);
  checkPrev(t.seq, t.prev);
  for (const name of ["ts", "lat_e7", "lon_e7"]) checkInt(name, t[name]);
  if (!rsu) for (const name of ["odo_m", "spd_cms", "hdg_cdeg"]) checkInt(name, t[name]);
  return { ...t, rsu };
}

/** TelemetryMessage.from_jws: the schema-checked payload of a parsed JWS whose kid is its dev. */
export function telemetryOf(jws) {
  const t = parseTelemetry(jws.payload);
  if (jws.header.kid !== t.dev) {
    throw bad("bad_header", `kid ${cut(repr(jws.header.kid), 66)} does not match dev ${repr(t.dev)}`);
  }
  return t;
}

/** `prev` of the message after `raw`: base64url SHA-256 of its verbatim bytes. */
export async function chainHash(raw) {
  return b64urlEncode(await sha256(raw));
}
