// Runs the in-browser verifier under Node over a corpus manifest (tests/support/certificate_corpus.py)
// and prints one JSON line per case: {name, verified, item, detail} (or {name, error} for a
// TrustError). Usage: node --experimental-default-type=module verify_corpus.mjs MANIFEST
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const { verifyCertificate } = await import(path.join(here, "../../dashboard/static/verifier/certificate.js"));

const manifest = JSON.parse(readFileSync(process.argv[2], "utf8"));
for (const entry of manifest) {
  let line;
  try {
    const result = await verifyCertificate(readFileSync(entry.file), entry.trust);
    line = { name: entry.name, verified: result.verified, item: result.item ?? null, detail: result.detail ?? null };
  } catch (error) {
    line = { name: entry.name, error: `${error.name}: ${error.message}` };
  }
  process.stdout.write(JSON.stringify(line) + "\n");
}
