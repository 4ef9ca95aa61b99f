// Device key records in the ledger (chain/entries.py, chain/device_keys.py) and which key is
// valid when (chain/certificate_checks.py): parsed strictly, canonical form required.

import { b64urlDecode, b64urlEncode, equalBytes, utf8 } from "./b64.js";
import { sha256 } from "./crypto.js";
import { EncodingError, TelemetryError } from "./errors.js";
import { DEVICE_ID_PATTERN, DEVICE_ID_RE, parseJsonObject } from "./jws.js";
import { cut, isInt, repr, sortedStrings } from "./pyfmt.js";

const PREFIX = utf8.encode("roadledger/device-key/v1\n");
const MEMBERS = [
  "v", "device_id", "public_key", "key_id", "owner_org", "kind", "vin",
  "vehicle_class", "valid_from_ms", "revoked_at_ms",
];
const VIN_RE = /^[A-HJ-NPR-Z0-9]{17}$/;
const CLASS_RE = /^[A-Za-z0-9._-]{1,32}$/;
const TS_MAX = 2 ** 53 - 1;

const bad = (detail) => new EncodingError(`device key record: ${detail}`);

function checkMs(name, value) {
  if (!isInt(value) || !(value >= 0 && value <= TS_MAX)) {
    throw bad(`${name}: expected integer ms in [0, 2**53-1]`);
  }
}

/** Short public key name: base64url of the first 12 bytes of SHA-256(raw key). */
export async function keyIdOf(publicKey) {
  return b64urlEncode((await sha256(publicKey)).subarray(0, 12));
}

function canonical(record) {
  const obj = {
    device_id: record.deviceId,
    key_id: record.keyId,
    kind: record.kind,
    owner_org: record.ownerOrg,
    public_key: b64urlEncode(record.publicKey),
    revoked_at_ms: record.revokedAtMs,
    v: 1,
    valid_from_ms: record.validFromMs,
    vehicle_class: record.vehicleClass,
    vin: record.vin,
  };
  return JSON.stringify(obj);
}

function fromObject(obj) {
  const missing = MEMBERS.filter((m) => !obj.has(m));
  if (missing.length) throw bad(`missing ${repr(sortedStrings(missing))}`);
  const extra = [...obj.keys()].filter((m) => !MEMBERS.includes(m));
  if (extra.length) throw bad(`unexpected ${repr(sortedStrings(extra))}`);
  const get = (name) => obj.get(name);
  if (!isInt(get("v")) || get("v") !== 1) throw bad(`unsupported version ${cut(repr(get("v")), 20)}`);
  if (typeof get("public_key") !== "string") throw bad("public_key: expected base64url string");
  if (get("kind") !== "vehicle" && get("kind") !== "rsu") throw bad("kind: expected one of ['vehicle', 'rsu']");
  const publicKey = b64urlDecode(get("public_key"), "Ed25519 public key");
  if (publicKey.length !== 32) throw new EncodingError("Ed25519 public key must be 32 bytes");
  for (const name of ["device_id", "owner_org"]) {
    const value = get(name);
    if (typeof value !== "string" || !DEVICE_ID_RE.test(value)) {
      throw bad(`${name}: expected an id matching ${DEVICE_ID_PATTERN}`);
    }
  }
  checkMs("valid_from_ms", get("valid_from_ms"));
  if (get("revoked_at_ms") !== null) {
    checkMs("revoked_at_ms", get("revoked_at_ms"));
    if (get("revoked_at_ms") < get("valid_from_ms")) throw bad("revoked_at_ms is before valid_from_ms");
  }
  const vin = get("vin");
  if (vin !== null && (typeof vin !== "string" || !VIN_RE.test(vin))) {
    throw bad("vin: expected 17 characters of [A-HJ-NPR-Z0-9]");
  }
  const vehicleClass = get("vehicle_class");
  if (vehicleClass !== null && (typeof vehicleClass !== "string" || !CLASS_RE.test(vehicleClass))) {
    throw bad("vehicle_class: expected [A-Za-z0-9._-]{1,32}");
  }
  if (get("kind") === "rsu" && (vin !== null || vehicleClass !== null)) {
    throw bad("an RSU has no vin or vehicle_class");
  }
  return {
    deviceId: get("device_id"),
    publicKey,
    ownerOrg: get("owner_org"),
    kind: get("kind"),
    validFromMs: get("valid_from_ms"),
    revokedAtMs: get("revoked_at_ms"),
    vin,
    vehicleClass,
  };
}

/** parse_device_key_entry: exactly the prefix and the record's canonical JSON. */
export async function parseDeviceKeyEntry(entry) {
  if (entry.length < PREFIX.length || !equalBytes(entry.subarray(0, PREFIX.length), PREFIX)) {
    throw new EncodingError(
      "not a device key entry (it does not start with b'roadledger/device-key/v1\\n')",
    );
  }
  const body = entry.subarray(PREFIX.length);
  let obj;
  try {
    obj = parseJsonObject(body, "record", "malformed");
  } catch (error) {
    if (error instanceof TelemetryError) throw bad(error.detail);
    throw error;
  }
  const record = fromObject(obj);
  record.keyId = await keyIdOf(record.publicKey);
  if (obj.get("key_id") !== record.keyId) {
    throw bad(`key_id ${cut(repr(obj.get("key_id")), 20)} does not match public_key (${record.keyId})`);
  }
  if (!equalBytes(utf8.encode(canonical(record)), body)) {
    throw new EncodingError("device key record: not in canonical form (sorted keys, no spaces)");
  }
  return record;
}

/** Raise revoked_key unless validFromMs <= ts < revokedAtMs. */
export function checkValidAt(key, ts) {
  if (ts < key.validFromMs) {
    throw new TelemetryError(
      "revoked_key",
      `${key.deviceId}: key ${key.keyId} not valid before ${key.validFromMs}, message ts ${ts}`,
    );
  }
  if (key.revokedAtMs !== null && ts >= key.revokedAtMs) {
    throw new TelemetryError(
      "revoked_key",
      `${key.deviceId}: key ${key.keyId} revoked at ${key.revokedAtMs}, message ts ${ts}`,
    );
  }
}

const rawId = (key) => b64urlEncode(key.publicKey);

/** One record per public key: the latest, with the earliest revocation ever recorded. */
export function effectiveKeys(records) {
  const byKey = new Map();
  for (let record of records) {
    const previous = byKey.get(rawId(record));
    if (previous !== undefined && previous.revokedAtMs !== null) {
      const at = previous.revokedAtMs;
      if (!(record.revokedAtMs !== null && record.revokedAtMs <= at)) {
        record = { ...record, revokedAtMs: Math.max(at, record.validFromMs) };
      }
    }
    byKey.set(rawId(record), record); // keeps the first insertion's position, as a dict
  }
  return [...byKey.values()];
}

/** Raw public key (base64url) -> leaf index of the first record revoking it. */
export function revocationLeaves(records, leaves) {
  const pairs = records.map((r, i) => [r, leaves[i]]).sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const first = new Map();
  for (const [record, leaf] of pairs) {
    if (record.revokedAtMs !== null && !first.has(rawId(record))) first.set(rawId(record), leaf);
  }
  return first;
}

export { rawId };
