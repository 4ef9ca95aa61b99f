// RFC 9162 inclusion proofs (chain/merkle.py): sizes and indices are BigInt (trees up to 2**64-1).

import { toHex, equalBytes } from "./b64.js";
import { ProofError } from "./errors.js";
import { nodeHash } from "./crypto.js";

function bitLength(n) {
  return n === 0n ? 0 : n.toString(2).length;
}

function bitCount(n) {
  let count = 0;
  for (const c of n.toString(2)) if (c === "1") count++;
  return count;
}

/** Number of hashes in the inclusion proof of leaf `index` in a tree of `size`. */
export function inclusionProofSize(index, size) {
  const fork = bitLength(index ^ (size - 1n));
  return fork + bitCount(index >> BigInt(fork));
}

function checkHash(value, what) {
  if (!(value instanceof Uint8Array) || value.length !== 32) {
    const size = value instanceof Uint8Array ? value.length : typeof value;
    throw new ProofError(`${what} must be a 32-byte hash, got ${size}`);
  }
}

/** The root `proof` implies for leaf `index` of a tree of `size` (RFC 9162 2.1.3.2). */
export async function rootFromInclusionProof(index, size, leafHash, proof) {
  index = BigInt(index);
  size = BigInt(size);
  if (!(0n <= index && index < size)) {
    throw new ProofError(`leaf index ${index} is outside a tree of size ${size}`);
  }
  checkHash(leafHash, "leaf hash");
  const expected = inclusionProofSize(index, size);
  if (proof.length !== expected) {
    throw new ProofError(
      `inclusion proof of leaf ${index} in size ${size} must have ${expected} hashes, got ${proof.length}`,
    );
  }
  proof.forEach((value, position) => checkHash(value, `proof[${position}]`));
  let fn = index;
  let sn = size - 1n;
  let result = leafHash;
  for (const sibling of proof) {
    if (sn === 0n) throw new ProofError("inclusion proof is longer than the path to the root");
    if (fn & 1n || fn === sn) {
      result = await nodeHash(sibling, result);
      while (!(fn & 1n) && fn) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      result = await nodeHash(result, sibling);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new ProofError("inclusion proof is shorter than the path to the root");
  return result;
}

/** Check that `leafHash` is leaf `index` of the tree of `size` with `root`; throws ProofError. */
export async function verifyInclusion(index, size, leafHash, root, proof) {
  checkHash(root, "root");
  const calculated = await rootFromInclusionProof(index, size, leafHash, proof);
  if (!equalBytes(calculated, root)) {
    throw new ProofError(
      `root of tree size ${size} mismatch: expected ${toHex(root)}, calculated ${toHex(calculated)}`,
    );
  }
}
