// RFC 9162 inclusion proofs checked in the browser (WebCrypto SHA-256): the warnings' evidence
// is shown as proven only when its leaf hash and path lead to the log's root.
const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));

export function hexBytes(hex) {
  return Uint8Array.from(hex.match(/../g), (x) => parseInt(x, 16));
}

async function node(left, right) {
  const joined = new Uint8Array(1 + left.length + right.length);
  joined[0] = 1;
  joined.set(left, 1);
  joined.set(right, 1 + left.length);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
}

// RFC 9162 2.1.3.2: the root that `leaf` at `index` of a tree of `size` and `path` lead to.
export async function rootFromInclusion(index, size, leaf, path) {
  if (index >= size) return null;
  let fn = index, sn = size - 1, r = leaf;
  for (const p of path.map(bytes)) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await node(p, r);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await node(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

export async function proves(proof, leafHex, rootB64) {
  const root = await rootFromInclusion(proof.leaf_index, proof.tree_size, hexBytes(leafHex), proof.proof);
  const want = bytes(rootB64);
  return root !== null && root.length === want.length && root.every((x, i) => x === want[i]);
}
