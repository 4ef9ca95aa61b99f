// The insurer's view: the vehicles granted to it for certificates; request one for a period
// and download it; check it in the browser with the verifier page (nothing is uploaded).
import * as api from "../api.js";
import { h, card, table, when, failure, DAY_MS } from "../dom.js";

// "odometer_rollback ×2, broken_chain": each kind once, with its count.
function anomalies(list) {
  const counts = new Map();
  for (const a of list) {
    const kind = a.kind ?? a.type ?? JSON.stringify(a);
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return [...counts].map(([kind, n]) => (n > 1 ? `${kind} ×${n}` : kind)).join(", ");
}

const day = (ms) => new Date(ms).toISOString().slice(0, 10);

export async function render(view) {
  const grants = (await api.get("/v1/grants", { direction: "received" })).filter((g) => g.status === "active");
  const vehicles = [...new Set(grants.filter((g) => g.scopes.includes("certificate")).flatMap((g) => g.device_ids))].sort();
  const now = Date.now();
  const form = h("form", { id: "certificate-form", class: "inline" },
    h("label", {}, "vehicle ", h("select", { name: "device_id" }, vehicles.map((d) => h("option", { value: d }, d)))),
    h("label", {}, "from ", h("input", { type: "date", name: "from", value: day(now - 7 * DAY_MS) })),
    h("label", {}, "to ", h("input", { type: "date", name: "to", value: day(now + DAY_MS) })),
    h("button", { type: "submit", disabled: !vehicles.length }, "Request certificate"));
  const result = h("div", { id: "certificate-result" });
  view.replaceChildren(
    card("Grants received", table(["from", "scopes", "vehicles", "until", "purpose"], grants.map((g) => h("tr", {},
      h("td", {}, g.owner_org), h("td", {}, g.scopes.join(", ")), h("td", {}, g.device_ids.join(", ")),
      h("td", {}, when(g.valid_until_ms)), h("td", {}, g.purpose))), { id: "received" })),
    card("Mileage certificate", vehicles.length ? form : h("p", { class: "muted" }, "No vehicle is granted to you for certificates."), result,
      h("p", {}, "Check a certificate file in this browser (WebCrypto; nothing is uploaded): ",
        h("a", { href: "/ui/verifier/verify.html", id: "verifier-link" }, "open the verifier"))));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const device = data.get("device_id");
    const fromMs = Date.parse(`${data.get("from")}T00:00:00Z`);
    const toMs = Date.parse(`${data.get("to")}T00:00:00Z`);
    result.replaceChildren(h("p", { class: "muted" }, "Building and verifying the certificate…"));
    try {
      const response = await api.send("POST", `/v1/vehicles/${encodeURIComponent(device)}/certificates`, { from_ms: fromMs, to_ms: toMs });
      const bytes = await response.blob();
      const certificate = JSON.parse(await bytes.text());
      const s = certificate.summary;
      const name = `certificate-${device}-${day(fromMs)}-${day(toMs)}.json`;
      result.replaceChildren(
        h("p", { id: "certificate-summary" }, `${device}: ${s.message_count} messages, seq ${s.first_seq}–${s.last_seq}, `,
          `${(s.distance_m / 1000).toFixed(2)} km`, s.anomalies.length
            ? h("strong", { class: "error" }, ` · anomalies: ${anomalies(s.anomalies)}`)
            : " · no anomaly"),
        h("a", { href: URL.createObjectURL(bytes), download: name, id: "certificate-download" }, `Download ${name}`));
    } catch (error) {
      result.replaceChildren(failure(error));
    }
  });
}
