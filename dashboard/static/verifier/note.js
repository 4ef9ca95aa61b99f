// C2SP signed notes, tlog-checkpoint bodies, vkeys and tlog-cosignature (chain/note*.py,
// chain/checkpoint.py, chain/cosignature.py): parsing with the same errors, verification.

import { b64Decode, concat, utf8 } from "./b64.js";
import { ed25519Verify, sha256 } from "./crypto.js";
import { EncodingError, SignatureError } from "./errors.js";
import { reprStr } from "./pyfmt.js";

export const TYPE_ED25519 = 0x01;
export const TYPE_COSIGNATURE_V1 = 0x04;
const SIGNATURE_PREFIX = "\u2014 ";
const MAX_SIGNATURES = 100;
const MAX_NOTE_BYTES = 1 << 20;
const MAX_TREE_SIZE = (1n << 64n) - 1n;
const MAX_TIMESTAMP = (1n << 63n) - 1n;
const SIZE = /^(?:0|[1-9][0-9]{0,19})$/;
const SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export const hex8 = (id) => id.toString(16).padStart(8, "0");

/** A key name: non-empty, no Unicode space, no '+', no control character or surrogate. */
export function checkKeyName(name) {
  if (typeof name !== "string" || !name) throw new EncodingError("key name: empty");
  for (const ch of name) {
    const code = ch.codePointAt(0);
    const control = code < 0x20 || (code >= 0x7f && code < 0xa0);
    if (ch === "+" || SPACE.test(ch) || control || (code >= 0xd800 && code <= 0xdfff)) {
      throw new EncodingError(`key name ${reprStr(name)}: contains ${reprStr(ch)}`);
    }
  }
  return name;
}

/** SHA-256(name || 0x0A || type || public key)[:4], big-endian. */
export async function computeKeyId(name, type, publicKey) {
  const digest = await sha256(concat(utf8.encode(name), Uint8Array.of(0x0a, type), publicKey));
  return ((digest[0] << 24) >>> 0) + (digest[1] << 16) + (digest[2] << 8) + digest[3];
}

/** A parsed vkey `name+hexid+base64(type || key)`, key ID checked. */
export async function parseVkey(text) {
  const first = text.indexOf("+");
  const second = first < 0 ? -1 : text.indexOf("+", first + 1);
  if (second < 0) throw new EncodingError("vkey: expected <name>+<hex key ID>+<base64 key>");
  const name = text.slice(0, first);
  const hexId = text.slice(first + 1, second);
  checkKeyName(name);
  if (!/^[0-9a-f]{8}$/.test(hexId)) throw new EncodingError("vkey: key ID must be 8 lowercase hex digits");
  const material = b64Decode(text.slice(second + 1), "vkey key material");
  if (material.length < 2) throw new EncodingError("vkey: key material too short");
  const keyId = parseInt(hexId, 16);
  const type = material[0];
  const publicKey = material.subarray(1);
  const expected = await computeKeyId(name, type, publicKey);
  if (expected !== keyId) {
    throw new EncodingError(`vkey ${name}: key ID ${hex8(keyId)} does not match the key (expected ${hex8(expected)})`);
  }
  return { name, keyId, type, publicKey };
}

const hexType = (t) => t.toString(16).padStart(2, "0");

/** A log's verifier (type 0x01): `verify(body, signature)` is plain Ed25519. */
export async function logVerifier(text) {
  const key = await parseVkey(text);
  if (key.type !== TYPE_ED25519) {
    throw new EncodingError(`vkey ${key.name}: signature type 0x${hexType(key.type)}, expected 0x01`);
  }
  if (key.publicKey.length !== 32) throw new EncodingError(`${key.name}: an Ed25519 public key is 32 bytes`);
  return { ...key, verify: (message, signature) => ed25519Verify(key.publicKey, signature, message) };
}

function readUint64(bytes) {
  let value = 0n;
  for (let i = 0; i < 8; i++) value = (value << 8n) | BigInt(bytes[i]);
  return value;
}

/** A witness's verifier (type 0x04): the signature is timestamp || Ed25519(cosigned message). */
export async function witnessVerifier(text) {
  const key = await parseVkey(text);
  if (key.type !== TYPE_COSIGNATURE_V1) {
    throw new EncodingError(
      `vkey ${key.name}: signature type 0x${hexType(key.type)} is not an Ed25519 cosignature/v1 key (0x04)`,
    );
  }
  if (key.publicKey.length !== 32) throw new EncodingError(`vkey ${key.name}: an Ed25519 public key is 32 bytes`);
  const verify = async (message, signature) => {
    if (signature.length !== 72) return false;
    const timestamp = readUint64(signature);
    if (timestamp > MAX_TIMESTAMP) return false;
    const signed = concat(utf8.encode(`cosignature/v1\ntime ${timestamp}\n`), message);
    return ed25519Verify(key.publicKey, signature.subarray(8), signed);
  };
  return { ...key, verify };
}

function checkNoteText(text, what) {
  if (LONE_SURROGATE.test(text)) throw new EncodingError(`${what}: not valid UTF-8`);
  const bytes = utf8.encode(text);
  if (bytes.length > MAX_NOTE_BYTES) throw new EncodingError(`${what}: larger than ${MAX_NOTE_BYTES} bytes`);
  for (const b of bytes) {
    if (b < 0x20 && b !== 0x0a) {
      throw new EncodingError(`${what}: contains control character 0x${b.toString(16).padStart(2, "0")}`);
    }
  }
  return bytes;
}

function parseSignatureLine(line) {
  if (line.includes("\n") || !line.startsWith(SIGNATURE_PREFIX)) {
    throw new EncodingError("signature line: must start with an em dash and a space");
  }
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(" ");
  if (space < 0 || space === rest.length - 1) {
    throw new EncodingError("signature line: expected '\u2014 <name> <base64>'");
  }
  const name = rest.slice(0, space);
  checkKeyName(name);
  const raw = b64Decode(rest.slice(space + 1), `signature line of ${name}`);
  if (raw.length < 5) throw new EncodingError(`signature line of ${name}: shorter than key ID + 1 byte`);
  const keyId = ((raw[0] << 24) >>> 0) + (raw[1] << 16) + (raw[2] << 8) + raw[3];
  return { name, keyId, signature: raw.subarray(4) };
}

function parseCheckpointBody(text) {
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new EncodingError("checkpoint: expected origin, tree size and root hash lines");
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (!SIZE.test(sizeText)) {
    throw new EncodingError(`checkpoint: tree size ${reprStr(sizeText)} is not a decimal without leading zeros`);
  }
  const rootHash = b64Decode(rootText, "checkpoint root hash");
  if (!origin) throw new EncodingError("checkpoint: origin is empty");
  const size = BigInt(sizeText);
  if (size > MAX_TREE_SIZE) throw new EncodingError(`checkpoint: tree size ${size} out of range`);
  if (rootHash.length !== 32) throw new EncodingError("checkpoint: root hash must be 32 bytes");
  for (const line of extensions) if (!line) throw new EncodingError("checkpoint: extension line is empty");
  return { origin, size, rootHash };
}

/** SignedCheckpoint.from_text: the note, its signature lines and the checkpoint body. */
export function parseSignedCheckpoint(note) {
  checkNoteText(note, "note");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new EncodingError("note: no blank line before the signatures");
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (!block || !block.endsWith("\n")) throw new EncodingError("note: signature block must end with a newline");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw new EncodingError(`note: more than ${MAX_SIGNATURES} signature lines`);
  const signatures = lines.map(parseSignatureLine);
  return { text, body: utf8.encode(text), signatures, checkpoint: parseCheckpointBody(text) };
}

/**
 * chain.cosignature.verify_cosignatures after the log's signature: every line of a given
 * witness must verify, and at least `k` distinct given witnesses must have cosigned.
 */
export async function verifyCosignatures(signed, witnesses, k) {
  const known = new Map(witnesses.map((w) => [`${w.name}\n${w.keyId}`, w]));
  const latest = new Map();
  for (const sig of signed.signatures) {
    const verifier = known.get(`${sig.name}\n${sig.keyId}`);
    if (verifier === undefined) continue;
    if (!(await verifier.verify(signed.body, sig.signature))) {
      throw new SignatureError(`signature of ${sig.name} (key ID ${hex8(sig.keyId)}) does not verify`);
    }
    const timestamp = readUint64(sig.signature);
    const current = latest.get(sig.name);
    if (current === undefined || timestamp > current) latest.set(sig.name, timestamp);
  }
  const names = [...new Set(witnesses.map((w) => w.name))];
  const cosigned = names.filter((n) => latest.has(n));
  const missing = names.filter((n) => !latest.has(n));
  if (cosigned.length < k) {
    const cp = signed.checkpoint;
    throw new SignatureError(
      `checkpoint ${cp.origin} size ${cp.size}: ${cosigned.length} of the required ${k} witnesses ` +
        `cosigned (cosigned: ${cosigned.join(", ") || "none"}; missing: ${missing.join(", ")})`,
    );
  }
  return { cosigned, missing };
}
