// Strict base64 (chain/encoding.py): canonical form only, so one value has one text.

import { EncodingError } from "./errors.js";

const STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const STD_VALUE = new Int16Array(128).fill(-1);
const URL_VALUE = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) {
  STD_VALUE[STD.charCodeAt(i)] = i;
  URL_VALUE[URL.charCodeAt(i)] = i;
}
const B64URL = /^[A-Za-z0-9_-]*$/;

function decodeWith(text, values, length) {
  const out = new Uint8Array(Math.floor((length * 6) / 8));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (let i = 0; i < length; i++) {
    acc = (acc << 6) | values[text.charCodeAt(i)];
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

function encodeWith(bytes, alphabet, pad) {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + alphabet[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + (pad ? "==" : "");
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + (pad ? "=" : "");
  }
  return out;
}

/** Unpadded base64url (RFC 7515 section 2). */
export function b64urlEncode(bytes) {
  return encodeWith(bytes, URL, false);
}

/** Standard padded base64, as C2SP notes use. */
export function b64Encode(bytes) {
  return encodeWith(bytes, STD, true);
}

/** Unpadded base64url of a string of ASCII characters (or any string, refused if not ASCII). */
export function b64urlDecode(text, what = "base64url") {
  const tail = text.length % 4;
  if (tail === 1 || !B64URL.test(text)) {
    // eslint-disable-next-line no-control-regex
    if (!/^[\x00-\x7f]*$/.test(text)) throw new EncodingError(`${what}: not ASCII`);
    throw new EncodingError(`${what}: not unpadded base64url`);
  }
  if (tail && URL_VALUE[text.charCodeAt(text.length - 1)] & (tail === 2 ? 0b1111 : 0b11)) {
    throw new EncodingError(`${what}: non-canonical base64url`);
  }
  return decodeWith(text, URL_VALUE, text.length);
}

/** Standard padded base64, canonical form only (what Python's strict decoder accepts). */
export function b64Decode(text, what = "base64") {
  const length = text.length;
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const body = length - padding;
  let valid = length % 4 === 0;
  for (let i = 0; valid && i < body; i++) {
    const c = text.charCodeAt(i);
    valid = c < 128 && STD_VALUE[c] >= 0;
  }
  if (!valid) throw new EncodingError(`${what}: not padded standard base64`);
  // Canonical: the bits of the last character that encode no byte are zero.
  if (padding && STD_VALUE[text.charCodeAt(body - 1)] & (padding === 2 ? 0b1111 : 0b11)) {
    throw new EncodingError(`${what}: non-canonical base64`);
  }
  return decodeWith(text, STD_VALUE, body);
}

export function toHex(bytes) {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

export function fromHex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export const utf8 = new TextEncoder();
