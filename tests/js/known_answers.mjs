// Known-answer checks of the in-browser verifier's primitives against the shared vectors:
// RFC 9162 leaf hashes and inclusion proofs (and their negative cases), RFC 8037 Ed25519 JWS.
// Prints one JSON line per check: {check, ok, detail}. Usage: node ... known_answers.mjs VECTORS_DIR
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const lib = (name) => import(path.join(here, "../../dashboard/static/verifier", name));
const { fromHex, toHex, b64urlDecode, utf8 } = await lib("b64.js");
const { leafHash, ed25519Verify } = await lib("crypto.js");
const { verifyInclusion } = await lib("merkle.js");
const { parseCompactJws } = await lib("jws.js");
const { ProofError } = await lib("errors.js");

const dir = process.argv[2];
const report = (check, ok, detail = "") => process.stdout.write(JSON.stringify({ check, ok, detail }) + "\n");

const merkle = JSON.parse(readFileSync(path.join(dir, "rfc9162-merkle.json"), "utf8"));
const leaves = [];
for (const [i, entry] of merkle.leaves_hex.entries()) {
  const hash = toHex(await leafHash(fromHex(entry)));
  leaves.push(fromHex(hash));
  report(`leaf-hash-${i}`, hash === merkle.leaf_hashes_hex[i], hash);
}
const root = (size) => fromHex(merkle.roots.find((r) => r.size === size).root_hex);
for (const c of merkle.inclusion) {
  try {
    await verifyInclusion(c.index, c.size, leaves[c.index], root(c.size), c.proof_hex.map(fromHex));
    report(`inclusion-index${c.index}-size${c.size}`, true);
  } catch (error) {
    report(`inclusion-index${c.index}-size${c.size}`, false, String(error));
  }
}
for (const c of merkle.negative.filter((n) => n.kind === "inclusion")) {
  try {
    await verifyInclusion(c.index, c.size, fromHex(c.leaf_hash_hex), fromHex(c.root_hex), c.proof_hex.map(fromHex));
    report(`negative-${c.desc}`, false, "accepted");
  } catch (error) {
    report(`negative-${c.desc}`, error instanceof ProofError, error.message);
  }
}

const jwsVector = JSON.parse(readFileSync(path.join(dir, "rfc8037-jws-ed25519.json"), "utf8"));
const jws = parseCompactJws(jwsVector.jws_compact, { requireKid: false });
const key = b64urlDecode(jwsVector.public_key_x_b64url);
const decoder = new TextDecoder();
report("jws-header", jws.header.alg === JSON.parse(jwsVector.protected_header_json).alg, jws.header.alg);
report("jws-protected-header", decoder.decode(b64urlDecode(jwsVector.jws_compact.split(".")[0])) === jwsVector.protected_header_json);
report("jws-payload", decoder.decode(jws.payload) === jwsVector.payload_utf8);
report("jws-signature-verifies", await ed25519Verify(key, jws.signature, jws.signingInput));
const flipped = jws.signature.slice();
flipped[0] ^= 1;
report("jws-flipped-signature-fails", !(await ed25519Verify(key, flipped, jws.signingInput)));
const altered = utf8.encode(decoder.decode(jws.signingInput) + "x");
report("jws-altered-input-fails", !(await ed25519Verify(key, jws.signature, altered)));

// A tree beyond 2**53 leaves (the BigInt path): leaf 2**60 of 2**60 + 1 has one sibling, the
// root of the first 2**60 leaves, and the root is H(0x01 || that || leaf).
const { nodeHash } = await lib("crypto.js");
const left = await leafHash(utf8.encode("left subtree"));
const leaf = await leafHash(utf8.encode("last leaf"));
const bigRoot = await nodeHash(left, leaf);
try {
  await verifyInclusion(2n ** 60n, 2n ** 60n + 1n, leaf, bigRoot, [left]);
  report("inclusion-huge-tree", true);
} catch (error) {
  report("inclusion-huge-tree", false, String(error));
}
try {
  await verifyInclusion(2n ** 60n, 2n ** 60n + 1n, leaf, bigRoot, [leaf]);
  report("negative-huge-tree-wrong-sibling", false, "accepted");
} catch (error) {
  report("negative-huge-tree-wrong-sibling", error instanceof ProofError, error.message);
}
