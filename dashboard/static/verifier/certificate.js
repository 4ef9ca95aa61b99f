// Verifying a mileage certificate in the browser: the checks of `roadledger verify`
// (chain/certificate_verify*.py), in the same order, naming the first failing item the same way.
//
//   import { verifyCertificate } from "./certificate.js";
//   const result = await verifyCertificate(bytes, { logKeys: [vkey], witnessKeys: [...], minWitnesses: 2 });
//   result.verified ? result.report : `${result.item}: ${result.detail}`
//
// Only WebCrypto (Ed25519, SHA-256); nothing leaves the page.

import { utf8 } from "./b64.js";
import { CertificateError, ChainError, EncodingError, SignatureError } from "./errors.js";
import { certificateText, readCertificate } from "./certformat.js";
import { parseDeviceKeyEntry } from "./devicekeys.js";
import { leafHash } from "./crypto.js";
import { verifyInclusion } from "./merkle.js";
import { MessageChecker } from "./messages.js";
import { hex8, logVerifier, parseSignedCheckpoint, verifyCosignatures, witnessVerifier } from "./note.js";

/** Unusable trust settings (a malformed key, an impossible policy): the caller's mistake. */
export class TrustError extends Error {
  constructor(message) {
    super(message);
    this.name = "TrustError";
  }
}

async function parseKeys(texts, parse, option) {
  const keys = [];
  for (const text of texts) {
    try {
      keys.push(await parse(text.trim()));
    } catch (error) {
      if (error instanceof EncodingError) throw new TrustError(`${option} VKEY: ${error.message}`);
      throw error;
    }
  }
  return keys;
}

/** The log and witness verifiers and K, checked as `roadledger verify` checks its options. */
export async function parseTrust(trust) {
  const logKeys = await parseKeys(trust.logKeys ?? [], logVerifier, "--log-key");
  if (!logKeys.length) throw new TrustError("--log-key: no log key given");
  const witnesses = await parseKeys(trust.witnessKeys ?? [], witnessVerifier, "--witness-key");
  const names = witnesses.map((w) => w.name);
  const twice = names.filter((n, i) => names.indexOf(n) !== i).sort();
  if (twice.length) throw new TrustError(`--witness-key: witness ${twice[0]} given twice`);
  const k = trust.minWitnesses ?? witnesses.length;
  if (!Number.isInteger(k) || k < 0) throw new TrustError(`--min-witnesses ${k}: not a non-negative integer`);
  if (k > witnesses.length) {
    throw new TrustError(`--min-witnesses ${k} but only ${witnesses.length} --witness-key given`);
  }
  return { logKeys, witnesses, k };
}

async function openCheckpoint(text, verifiers) {
  let signed;
  try {
    signed = parseSignedCheckpoint(text);
  } catch (error) {
    if (error instanceof ChainError) throw new CertificateError("checkpoint", `malformed: ${error.message}`);
    throw error;
  }
  const known = new Map(verifiers.map((v) => [`${v.name}\n${v.keyId}`, v]));
  let trusted = null;
  for (const sig of signed.signatures) {
    const verifier = known.get(`${sig.name}\n${sig.keyId}`);
    if (verifier === undefined) continue;
    if (!(await verifier.verify(signed.body, sig.signature))) {
      throw new CertificateError(
        "checkpoint",
        `the signature of log key ${sig.name} (${hex8(sig.keyId)}) does not verify over the checkpoint body`,
      );
    }
    trusted = trusted ?? verifier;
  }
  if (trusted === null) {
    const given = verifiers.map((v) => `${v.name} (${hex8(v.keyId)})`).join(", ");
    const present = signed.signatures.map((s) => `${s.name} (${hex8(s.keyId)})`).join(", ");
    throw new CertificateError("checkpoint", `not signed by the log key ${given}; signature lines: ${present}`);
  }
  return [signed, trusted];
}

async function checkDeviceKeys(deviceId, items, cp) {
  const records = [];
  let previousLeaf = null;
  for (const [i, item] of items.entries()) {
    const name = `device_keys[${i}]`;
    let record;
    try {
      record = await parseDeviceKeyEntry(item.entry);
    } catch (error) {
      if (error instanceof ChainError) throw new CertificateError(name, error.message);
      throw error;
    }
    if (record.deviceId !== deviceId) {
      throw new CertificateError(name, `a record of device ${record.deviceId}, the certificate is for ${deviceId}`);
    }
    if (record.kind !== "vehicle") throw new CertificateError(name, `a key of a ${record.kind}; mileage needs a vehicle`);
    if (previousLeaf !== null && item.leafIndex <= previousLeaf) {
      throw new CertificateError(
        name,
        `leaf index ${item.leafIndex} is not after the previous record's ${previousLeaf}: key records must be listed in log order`,
      );
    }
    try {
      await verifyInclusion(item.leafIndex, cp.size, await leafHash(item.entry), cp.rootHash, item.proof);
    } catch (error) {
      if (error instanceof ChainError) {
        throw new CertificateError(name, `inclusion proof of leaf ${item.leafIndex}: ${error.message}`);
      }
      throw error;
    }
    previousLeaf = item.leafIndex;
    records.push(record);
  }
  return records;
}

function checkVin(records, items, expected) {
  records.forEach((record, i) => {
    if (record.vin !== expected) {
      const stated = record.vin ? `VIN ${record.vin}` : "no VIN";
      throw new CertificateError(
        "vin",
        `device_keys[${i}] (leaf ${items[i].leafIndex}, key ${record.keyId}) states ${stated}, expected ${expected}`,
      );
    }
  });
}

async function verifyParsed(cert, trust) {
  if (trust.expectedDeviceId != null && cert.deviceId !== trust.expectedDeviceId) {
    throw new CertificateError(
      "device_id",
      `the certificate is for device ${cert.deviceId}, expected ${trust.expectedDeviceId}`,
    );
  }
  const { logKeys, witnesses, k } = trust.parsed;
  const [signed, logKey] = await openCheckpoint(cert.checkpoint, logKeys);
  let cosigned;
  try {
    cosigned = await verifyCosignatures(signed, witnesses, k);
  } catch (error) {
    if (error instanceof SignatureError) throw new CertificateError("cosignatures", error.message);
    throw error;
  }
  const cp = signed.checkpoint;
  const records = await checkDeviceKeys(cert.deviceId, cert.deviceKeys, cp);
  if (trust.expectedVin != null) checkVin(records, cert.deviceKeys, trust.expectedVin);
  const checker = new MessageChecker(cert, cp, records);
  await checker.run(cert.messages);
  checker.finish();
  return {
    deviceId: cert.deviceId,
    fromMs: cert.fromMs,
    toMs: cert.toMs,
    checkpoint: { origin: cp.origin, size: cp.size },
    logKeyName: logKey.name,
    witnesses: cosigned.cosigned,
    missingWitnesses: cosigned.missing,
    witnessCount: witnesses.length,
    minWitnesses: k,
    deviceKeys: records,
    summary: cert.summary,
    firstTsMs: checker.firstTs,
    lastTsMs: checker.lastTs,
  };
}

/**
 * Verify a certificate (its bytes, an ArrayBuffer or its text) against `trust`:
 * `{logKeys: [vkey], witnessKeys: [vkey], minWitnesses: k (default: all), expectedDeviceId, expectedVin}`.
 * Resolves to `{verified: true, report}` or `{verified: false, item, detail}`; rejects with a
 * TrustError when the keys or the policy are unusable (before the certificate is read).
 */
export async function verifyCertificate(input, trust) {
  const parsed = await parseTrust(trust);
  const bytes = typeof input === "string" ? utf8.encode(input) : new Uint8Array(input);
  try {
    const cert = readCertificate(certificateText(bytes));
    const report = await verifyParsed(cert, { ...trust, parsed });
    return { verified: true, report };
  } catch (error) {
    if (error instanceof CertificateError) return { verified: false, item: error.item, detail: error.detail };
    throw error;
  }
}
