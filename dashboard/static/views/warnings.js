// The warnings feed: the list the member may see (GET /v1/warnings) with filters, new ones
// live (the SSE feed), and one warning's evidence with its ledger proof status.
import * as api from "../api.js";
import { h, card, table, when, failure } from "../dom.js";
import { proves } from "../merkle.js";

const TYPES = ["", "odometer_rollback", "odo_gnss_mismatch", "teleport", "drift_off_road",
  "rsu_contradiction", "speeding", "geofence", "congestion", "silent_device", "forged_signature",
  "tampered_payload", "replay", "conflict", "unknown_device", "revoked_key_use", "clock_skew",
  "chain_broken"];
const SEVERITIES = ["", "info", "warning", "critical"];

function row(w, open) {
  return h("tr", { class: "clickable", "data-warning": w.warning_id, onclick: () => open(w.warning_id) },
    h("td", {}, when(w.from_ts_ms)), h("td", {}, w.type), h("td", {}, w.severity),
    h("td", {}, w.device_id ?? `segment ${w.segment_id}`));
}

async function proofStatus(item, logs) {
  if (item.leaf_index === null || item.log === null) return h("span", { class: "pending" }, "not yet in the ledger");
  const log = logs.find((l) => l.origin === item.log);
  if (!log || !log.root_hash) return h("span", { class: "pending" }, `leaf ${item.leaf_index} of ${item.log}`);
  try {
    const proof = await api.get(`/v1/ledger/logs/${log.log_id}/proofs/inclusion`, { leaf_index: item.leaf_index });
    const ok = proof.root_hash === log.root_hash && await proves(proof, item.leaf_hash, log.root_hash);
    return ok
      ? h("span", { class: "ok proof-ok" }, `proven: leaf ${item.leaf_index} of ${log.origin}, tree size ${proof.tree_size}`)
      : h("span", { class: "error" }, `proof does not verify (leaf ${item.leaf_index})`);
  } catch (error) {
    return h("span", { class: "error" }, error.message);
  }
}

export function warningsPanel(panel, me, signal) {
  const filters = h("form", { class: "filters", id: "warning-filters" },
    h("select", { name: "type", "aria-label": "type" }, TYPES.map((t) => h("option", { value: t }, t || "any type"))),
    h("select", { name: "severity", "aria-label": "severity" }, SEVERITIES.map((s) => h("option", { value: s }, s || "any severity"))),
    h("input", { name: "device_id", placeholder: "device", size: 10 }),
    h("input", { name: "segment", placeholder: "segment", size: 5, inputmode: "numeric" }),
    h("button", { type: "submit" }, "Filter"));
  const body = h("tbody", {});
  const count = h("p", { class: "muted", id: "warnings-count" });
  const detail = h("div", { id: "warning-detail" });
  panel.replaceChildren(card("Warnings", filters,
    h("div", { class: "scroll" }, h("table", { id: "warnings" },
      h("thead", {}, h("tr", {}, ["from", "type", "severity", "device / segment"].map((x) => h("th", {}, x)))), body)),
    count), card("Warning", detail));
  let logs = [];
  let shown = 0;

  const params = () => Object.fromEntries(new FormData(filters).entries());
  const matches = (w) => Object.entries(params()).every(([k, v]) =>
    !v || String(k === "segment" ? w.segment_id : w[k]) === v);

  async function open(id) {
    for (const tr of body.children) tr.classList.toggle("selected", tr.dataset.warning === id);
    detail.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const [w, known] = await Promise.all([api.get(`/v1/warnings/${encodeURIComponent(id)}`), api.get("/v1/ledger/logs")]);
      logs = known;
      const statuses = await Promise.all(w.evidence.map((e) => proofStatus(e, logs)));
      detail.replaceChildren(
        h("p", {}, h("strong", {}, w.type), ` (${w.severity}) ${when(w.from_ts_ms)} – ${when(w.to_ts_ms)}, rule ${w.rule_version}`),
        h("pre", {}, JSON.stringify(w.detail, null, 1)),
        table(["device", "seq", "leaf hash", "ledger"], w.evidence.map((e, i) => h("tr", {},
          h("td", {}, e.device_id), h("td", {}, e.seq ?? "–"),
          h("td", { title: e.leaf_hash ?? "" }, (e.leaf_hash ?? "–").slice(0, 12)), h("td", {}, statuses[i]))),
        { id: "evidence" }));
    } catch (error) {
      detail.replaceChildren(failure(error));
    }
  }

  async function load() {
    const query = { limit: 200, ...params() };
    try {
      const page = await api.get("/v1/warnings", query);
      body.replaceChildren(...page.items.map((w) => row(w, open)));
      shown = page.items.length;
      count.textContent = `${shown} warnings${page.next_cursor ? " (newest 200)" : ""}`;
    } catch (error) {
      body.replaceChildren();
      count.replaceChildren(failure(error));
    }
  }
  filters.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  load();
  api.stream("/v1/warnings/stream", (kind, w) => {
    if (kind !== "warning" || !matches(w)) return;
    body.prepend(row(w, open));
    shown += 1;
    count.textContent = `${shown} warnings (live)`;
  }, signal).catch(() => { /* the list still shows what was there */ });
}
