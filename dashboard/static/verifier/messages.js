// The checks on a certificate's messages and summary (chain/certificate_verify_messages.py).
// The crypto of a batch of messages runs concurrently (WebCrypto is asynchronous); the checks
// then run message by message in the Python verifier's order, so the first failure is the same.

import { CertificateError, ChainError, TelemetryError } from "./errors.js";
import { checkValidAt, effectiveKeys, rawId, revocationLeaves } from "./devicekeys.js";
import { chainHash, parseCompactJws, telemetryOf } from "./jws.js";
import { ed25519Verify, leafHash } from "./crypto.js";
import { NodeHashes, verifyInclusion } from "./merkle.js";
import { SummaryBuilder } from "./mileage.js";
import { cut, dumps, repr } from "./pyfmt.js";

const BATCH = 1024; // messages whose crypto is in flight at once
const FIELDS = ["first_seq", "last_seq", "message_count", "odometer_start_m", "odometer_end_m", "distance_m", "gnss_distance_m"];

const anomalyKey = (a) => `${a.seq}\n${a.kind}\n${a.detail}`;

function render(value) {
  if ("after_seq" in value) return dumps([["after_seq", value.after_seq], ["before_seq", value.before_seq]]);
  return dumps([["seq", value.seq], ["kind", value.kind], ["detail", value.detail]]);
}

/** Compares recomputed gaps or anomalies with the stated ones as they are found. */
class Tally {
  constructor(stated, key) {
    this.stated = stated;
    this.key = key;
    this.count = 0;
    this.firstDifference = null;
  }

  append(item) {
    if (
      this.firstDifference === null &&
      (this.count >= this.stated.length || this.key(this.stated[this.count]) !== this.key(item))
    ) {
      this.firstDifference = [this.count, item];
    }
    this.count += 1;
  }

  difference() {
    const { stated, count } = this;
    if (this.firstDifference === null) {
      if (count === stated.length) return null;
      return `stated ${stated.length}, recomputed ${count}: [${count}] ${render(stated[count])} is not in the messages`;
    }
    const [i, item] = this.firstDifference;
    if (i < stated.length) return `[${i}] stated ${render(stated[i])}, recomputed ${render(item)}`;
    return `stated ${stated.length}, recomputed ${count}: ${render(item)} is missing`;
  }
}

/** signing_key: the index of the first of `keys` (raw) whose signature verifies, or -1. */
async function firstSigner(keys, signature, signingInput) {
  for (const [index, key] of keys.entries()) {
    if (await ed25519Verify(key, signature, signingInput)) return index;
  }
  return -1;
}

async function settle(promise) {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    if (error instanceof ChainError) return { ok: false, error };
    throw error;
  }
}

export class MessageChecker {
  constructor(cert, cp, records) {
    this.cert = cert;
    this.cp = cp;
    this.keys = effectiveKeys(records);
    this.keyBytes = this.keys.map((k) => k.publicKey);
    this.revokedAtLeaf = revocationLeaves(records, cert.deviceKeys.map((k) => k.leafIndex));
    this.statedAnomalies = new Set(cert.summary.anomalies.map(anomalyKey));
    this.gaps = new Tally(cert.summary.gaps, (g) => `${g.after_seq}\n${g.before_seq}`);
    this.anomalies = new Tally(cert.summary.anomalies, anomalyKey);
    this.summary = new SummaryBuilder(this.gaps, this.anomalies);
    this.previous = null;
    this.chainFailure = null;
    this.firstTs = Infinity;
    this.lastTs = -1;
    this.nodes = new NodeHashes();
  }

  /** The crypto of one message, started at once: who signed, inclusion, chain hash. */
  prepare(item) {
    let jws;
    try {
      jws = parseCompactJws(item.jws);
    } catch (error) {
      if (error instanceof TelemetryError) return { parseError: error };
      throw error;
    }
    if (jws.header.kid !== this.cert.deviceId) return { jws };
    const inclusion = settle(
      leafHash(jws.raw).then((leaf) =>
        verifyInclusion(item.leafIndex, this.cp.size, leaf, this.cp.rootHash, item.proof, this.nodes),
      ),
    );
    const signer = firstSigner(this.keyBytes, jws.signature, jws.signingInput);
    return { jws, signer, inclusion, hash: chainHash(jws.raw) };
  }

  async run(items) {
    for (let start = 0; start < items.length; start += BATCH) {
      const batch = items.slice(start, start + BATCH).map((item) => this.prepare(item));
      const ready = await Promise.all(
        batch.map(async (p) =>
          p.inclusion ? { ...p, signer: await p.signer, inclusion: await p.inclusion, hash: await p.hash } : p,
        ),
      );
      ready.forEach((p, j) => this.add(start + j, items[start + j], p));
    }
  }

  add(i, item, p) {
    const name = `messages[${i}]`;
    const fail = (detail) => new CertificateError(name, detail);
    if (p.parseError) throw fail(p.parseError.message);
    const { deviceId, fromMs, toMs } = this.cert;
    if (p.jws.header.kid !== deviceId) {
      throw fail(`bad_header: kid ${cut(repr(p.jws.header.kid), 66)} is not the certificate's device ${repr(deviceId)}`);
    }
    const keyIndex = p.signer;
    if (keyIndex < 0) {
      throw fail(`bad_signature: the signature verifies under none of the ${this.keys.length} certified keys of ${deviceId}`);
    }
    const key = this.keys[keyIndex];
    let t;
    try {
      t = telemetryOf(p.jws);
    } catch (error) {
      if (error instanceof TelemetryError) throw fail(error.message);
      throw error;
    }
    const { seq, ts } = t;
    if (t.rsu) throw fail(`seq ${seq}: schema: an RSU message has no odometer`);
    try {
      checkValidAt(key, ts);
    } catch (error) {
      if (error instanceof TelemetryError) throw fail(`seq ${seq}: ${error.message}`);
      throw error;
    }
    if (!(fromMs <= ts && ts < toMs)) {
      throw fail(`seq ${seq}: ts ${ts} is outside the certificate's range [${fromMs}, ${toMs})`);
    }
    if (!p.inclusion.ok) throw fail(`seq ${seq}: inclusion proof of leaf ${item.leafIndex}: ${p.inclusion.error.message}`);
    const extra = [];
    const previous = this.previous;
    if (previous !== null) {
      const before = previous.t.seq;
      if (seq === before) throw fail(`seq ${seq} repeats messages[${i - 1}]`);
      if (seq < before) throw fail(`seq ${seq} follows seq ${before}: messages must be sorted by seq`);
      if (seq === before + 1 && t.prev !== previous.hash) {
        const broken = {
          seq,
          kind: "chain_broken",
          detail: `prev of seq ${seq} is ${repr(t.prev)}, but the hash of seq ${before} is ${repr(previous.hash)}`,
        };
        if (!this.statedAnomalies.has(anomalyKey(broken)) && this.chainFailure === null) {
          // Reported after every message is checked, as the Python verifier does.
          this.chainFailure = new CertificateError(`chain[seq ${before}->${seq}]`, broken.detail);
        }
        extra.push(broken);
      }
    }
    const revocationLeaf = this.revokedAtLeaf.get(rawId(key));
    if (revocationLeaf !== undefined && !(item.leafIndex < revocationLeaf)) {
      extra.push({
        seq,
        kind: "sequenced_after_revocation",
        detail:
          `seq ${seq} (ts ${ts}) is at leaf ${item.leafIndex}, after leaf ${revocationLeaf} that ` +
          `revoked key ${key.keyId} at ${key.revokedAtMs}`,
      });
    }
    this.summary.add(t, extra);
    this.previous = { t, hash: p.hash };
    this.firstTs = Math.min(this.firstTs, ts);
    this.lastTs = Math.max(this.lastTs, ts);
  }

  /** The deferred chain failure, then the summary, field by field in declaration order. */
  finish() {
    if (this.chainFailure !== null) throw this.chainFailure;
    if (this.previous === null) throw new CertificateError("messages", "expected at least one element");
    const recomputed = this.summary.scalars();
    const stated = this.cert.summary;
    for (const field of [...FIELDS, "gaps", "anomalies"]) {
      let detail = null;
      if (field === "gaps") detail = this.gaps.difference();
      else if (field === "anomalies") detail = this.anomalies.difference();
      else if (stated[field] !== recomputed[field]) detail = `stated ${stated[field]}, recomputed ${recomputed[field]}`;
      if (detail !== null) throw new CertificateError(`summary.${field}`, detail);
    }
  }
}
