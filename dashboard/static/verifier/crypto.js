// WebCrypto only: SHA-256 and Ed25519 verification, and the RFC 9162 leaf and node hashes.

import { toHex } from "./b64.js";

const subtle = globalThis.crypto.subtle;

export async function sha256(bytes) {
  return new Uint8Array(await subtle.digest("SHA-256", bytes));
}

/** RFC 9162 leaf hash: SHA-256(0x00 || entry). */
export function leafHash(entry) {
  const data = new Uint8Array(entry.length + 1);
  data.set(entry, 1);
  return sha256(data);
}

/** RFC 9162 interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left, right) {
  const data = new Uint8Array(65);
  data[0] = 1;
  data.set(left, 1);
  data.set(right, 33);
  return sha256(data);
}

const keys = new Map(); // hex of the raw key -> Promise of a CryptoKey, or of null (unusable)

function importKey(raw) {
  const id = toHex(raw);
  let key = keys.get(id);
  if (key === undefined) {
    // A key WebCrypto refuses (not a point on the curve) verifies nothing, as in libsodium.
    key = subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]).catch(() => null);
    keys.set(id, key);
  }
  return key;
}

/** Whether `signature` is a valid Ed25519 signature of `message` under the 32-byte `publicKey`. */
export async function ed25519Verify(publicKey, signature, message) {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const key = await importKey(publicKey);
  if (key === null) return false;
  try {
    return await subtle.verify({ name: "Ed25519" }, key, signature, message);
  } catch {
    return false;
  }
}
