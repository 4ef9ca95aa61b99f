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

const MEMO_LIMIT = 1 << 18;

/**
 * Interior node hashes, remembered: the proofs of one certificate lead to one root through
 * mostly the same nodes, so each is computed once (a digest is the costly call in a browser).
 * Keyed by the identity of the two inputs, which is cheap and never wrong: the reader hands
 * out one array per distinct proof hash, and a remembered node is the same array each time.
 * Equal hashes in different arrays are merely computed again.
 */
export class NodeHashes {
  constructor() {
    this.memo = new Map();
    this.size = 0;
  }

  hash(left, right) {
    let row = this.memo.get(left);
    if (row === undefined) {
      if (this.size >= MEMO_LIMIT) {
        this.memo.clear();
        this.size = 0;
      }
      row = new Map();
      this.memo.set(left, row);
    }
    let value = row.get(right);
    if (value === undefined) {
      value = nodeHash(left, right);
      row.set(right, value);
      this.size += 1;
    }
    return value;
  }
}

/** The root `proof` implies for leaf `index` of a tree of `size` (RFC 9162 2.1.3.2). */
export async function rootFromInclusionProof(index, size, leafHash, proof, nodes = null) {
  const node = nodes === null ? nodeHash : (left, right) => nodes.hash(left, right);
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
  // Numbers when they are exact (every real tree): BigInt arithmetic allocates at each level.
  const [one, two] = size <= BigInt(Number.MAX_SAFE_INTEGER) ? [1, 2] : [1n, 2n];
  const half = one === 1 ? (n) => Math.floor(n / 2) : (n) => n / 2n;
  let fn = one === 1 ? Number(index) : index;
  let sn = one === 1 ? Number(size) - 1 : size - 1n;
  const zero = one - one;
  let result = leafHash;
  for (const sibling of proof) {
    if (sn === zero) throw new ProofError("inclusion proof is longer than the path to the root");
    if (fn % two === one || fn === sn) {
      result = await node(sibling, result);
      while (fn % two === zero && fn !== zero) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      result = await node(result, sibling);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== zero) throw new ProofError("inclusion proof is shorter than the path to the root");
  return result;
}

/** Check that `leafHash` is leaf `index` of the tree of `size` with `root`; throws ProofError. */
export async function verifyInclusion(index, size, leafHash, root, proof, nodes = null) {
  checkHash(root, "root");
  const calculated = await rootFromInclusionProof(index, size, leafHash, proof, nodes);
  if (!equalBytes(calculated, root)) {
    throw new ProofError(
      `root of tree size ${size} mismatch: expected ${toHex(root)}, calculated ${toHex(calculated)}`,
    );
  }
}
