// The ledger view: each log's tree size and root, its last signed checkpoint with the
// cosigners that signed it, and its latest blocks. Hashes and proofs are public to members.
import * as api from "../api.js";
import { h, card, table, when, failure } from "../dom.js";

// C2SP signed note: the body, a blank line, then one "— <name> <signature>" line per signer.
export function signers(note) {
  const at = note.indexOf("\n\n");
  if (at < 0) return [];
  return note.slice(at + 2).split("\n").filter((l) => l.startsWith("— ")).map((l) => l.slice(2).split(" ")[0]);
}

export async function render(view) {
  const logs = await api.get("/v1/ledger/logs");
  const detail = h("div", { id: "log-detail" });
  view.replaceChildren(card("Logs", table(["log", "origin", "tree size", "root"], logs.map((log) =>
    h("tr", { class: "clickable", "data-log": log.log_id, onclick: () => open(log) },
      h("td", {}, log.log_id), h("td", {}, log.origin), h("td", { class: "tree-size" }, log.tree_size),
      h("td", { title: log.root_hash ?? "" }, (log.root_hash ?? "–").slice(0, 16)))), { id: "logs" }),
  h("p", { class: "muted" }, `${logs.length} logs; choose one for its checkpoint and blocks`)), detail);

  async function open(log) {
    for (const tr of view.querySelectorAll("#logs tbody tr")) tr.classList.toggle("selected", tr.dataset.log === String(log.log_id));
    detail.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const [note, blocks] = await Promise.all([
        api.text(`/v1/ledger/logs/${log.log_id}/checkpoint`).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
        api.get(`/v1/ledger/logs/${log.log_id}/blocks`, { limit: 1000 }),
      ]);
      const names = note ? signers(note) : [];
      detail.replaceChildren(
        card(`Checkpoint of ${log.origin}`, note
          ? [h("pre", { id: "checkpoint" }, note),
            h("p", { id: "cosigners" }, `signed by the log${names.length > 1 ? " and cosigned by " + names.slice(1).join(", ") : "; no witness cosigned it yet"}`)]
          : h("p", { class: "muted" }, "no signed checkpoint yet")),
        card("Latest blocks", table(["height", "leaves", "tree size", "time", "block hash"],
          blocks.items.slice(-20).reverse().map((b) => h("tr", {}, h("td", {}, b.height),
            h("td", {}, `${b.first_leaf_index}+${b.leaf_count}`), h("td", {}, b.tree_size),
            h("td", {}, when(b.timestamp_ms)), h("td", { title: b.block_hash }, b.block_hash.slice(0, 16)))),
          { id: "blocks" }), h("p", { class: "muted" }, `${blocks.items.length} blocks${blocks.next_cursor ? " (first 1000)" : ""}`)));
    } catch (error) {
      detail.replaceChildren(failure(error));
    }
  }
  if (logs.length) await open(logs[0]);
}
