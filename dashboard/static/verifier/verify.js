// The page: trust settings, a drop zone, and the verdict of verifyCertificate (certificate.js).

import { TrustError, verifyCertificate } from "./certificate.js";
import { oneLine, summaryLines } from "./report.js";

const $ = (id) => document.getElementById(id);
const lines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);

function trust() {
  const k = $("min-witnesses").value.trim();
  return {
    logKeys: lines($("log-keys").value),
    witnessKeys: lines($("witness-keys").value),
    minWitnesses: k === "" ? null : Number(k),
    expectedDeviceId: $("expected-device").value.trim() || null,
    expectedVin: $("expected-vin").value.trim() || null,
  };
}

function show(verdict, heading) {
  $("result").dataset.verdict = verdict;
  $("verdict").textContent = heading;
  $("failure").hidden = true;
  $("summary").hidden = true;
  $("timing").textContent = "";
}

async function check(file) {
  $("file-name").textContent = `${file.name} (${file.size.toLocaleString("en")} bytes)`;
  show("checking", "Checking…");
  const started = performance.now();
  let result;
  try {
    result = await verifyCertificate(await file.arrayBuffer(), trust());
  } catch (error) {
    show("error", "Cannot check: fix the keys or K");
    $("failure-item").textContent = "keys";
    $("failure-detail").textContent = oneLine(error instanceof TrustError ? error.message : String(error));
    $("failure").hidden = false;
    return;
  }
  const elapsed = Math.round(performance.now() - started);
  if (result.verified) {
    show("verified", "Verified");
    $("summary").textContent = summaryLines(result.report).join("\n");
    $("summary").hidden = false;
  } else {
    show("failed", `Not verified: ${oneLine(result.item)}`);
    $("failure-item").textContent = oneLine(result.item);
    $("failure-detail").textContent = oneLine(result.detail);
    $("failure").hidden = false;
  }
  $("result").dataset.item = result.verified ? "" : result.item;
  $("result").dataset.ms = String(elapsed);
  $("timing").textContent = `Checked in ${elapsed} ms, in this browser.`;
}

const zone = $("drop-zone");
zone.addEventListener("dragover", (event) => {
  event.preventDefault();
  zone.classList.add("over");
});
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("over");
  const file = event.dataTransfer?.files?.[0];
  if (file) check(file);
});
zone.addEventListener("click", (event) => {
  if (event.target === zone) $("file").click();
});
zone.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    $("file").click();
  }
});
$("file").addEventListener("change", () => {
  const file = $("file").files?.[0];
  if (file) check(file);
  $("file").value = "";
});
// Files dropped outside the zone must not navigate away from the page.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());
document.body.dataset.ready = "true";
