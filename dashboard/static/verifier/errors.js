// Errors of the verifier, one class per kind, as chain/errors.py names them.

export class ChainError extends Error {}

/** Input is not well-formed for the format it claims to be. */
export class EncodingError extends ChainError {}

/** A Merkle proof does not verify, or its parameters are out of range. */
export class ProofError extends ChainError {}

/** A signature (note, cosignature) is missing or does not verify. */
export class SignatureError extends ChainError {}

/** A telemetry message is rejected; `reason` is the quarantine reason code. */
export class TelemetryError extends ChainError {
  constructor(reason, detail) {
    super(`${reason}: ${detail}`);
    this.reason = reason;
    this.detail = detail;
  }
}

/** A mileage certificate fails; `item` names the first failing part. */
export class CertificateError extends ChainError {
  constructor(item, detail) {
    super(`${item}: ${detail}`);
    this.item = item;
    this.detail = detail;
  }
}
