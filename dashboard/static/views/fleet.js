// The owner's view: its vehicles, a vehicle's mileage chart, the grants it gave (create and
// revoke) and the audit trail of who read what of its vehicles.
import * as api from "../api.js";
import { h, card, table, when, failure, DAY_MS } from "../dom.js";
import { mileageChart } from "./charts.js";

const SCOPES = ["track", "mileage", "certificate", "warnings", "export"];

export async function render(view, me) {
  const devices = (await api.every("/v1/devices")).filter((d) => d.access === "owner" && d.kind === "vehicle");
  const vehiclePick = h("select", { id: "vehicle-pick", "aria-label": "vehicle" },
    devices.map((d) => h("option", { value: d.device_id }, d.device_id)));
  const resolution = h("select", { id: "resolution", "aria-label": "resolution" },
    h("option", { value: "hour" }, "per hour, last 2 days"), h("option", { value: "day" }, "per day, last 30 days"));
  const mileage = h("div", { id: "mileage" });
  const grants = h("div", { id: "grants" });
  const audit = h("div", { id: "audit" });
  view.replaceChildren(h("div", { class: "grid" },
    h("div", {},
      card("Vehicles", h("p", { id: "vehicle-count" }, `${devices.length} vehicles of ${me.org_id}`),
        h("div", { class: "scroll" }, table(["vehicle", "class", "registered"], devices.map((d) => h("tr", {},
          h("td", {}, d.device_id), h("td", {}, d.vehicle_class ?? "–"), h("td", {}, when(d.created_at_ms))))))),
      card("Mileage", vehiclePick, resolution, mileage)),
    h("div", {}, card("Grants", grants), card("Audit trail", audit))));

  async function showMileage() {
    const now = Date.now();
    const span = resolution.value === "hour" ? 2 * DAY_MS : 30 * DAY_MS;
    mileage.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const page = await api.get(`/v1/vehicles/${encodeURIComponent(vehiclePick.value)}/mileage`,
        { from_ms: now - span, to_ms: now + 60_000, resolution: resolution.value, limit: 1000 });
      const total = page.items.reduce((sum, b) => sum + b.distance_m - b.rollback_m, 0);
      const rollback = page.items.reduce((sum, b) => sum + b.rollback_m, 0);
      const chart = h("div", { class: "chart" });
      mileage.replaceChildren(chart, h("p", { id: "mileage-summary" },
        `${page.items.length} buckets, ${(total / 1000).toFixed(2)} km driven`,
        rollback ? h("strong", { class: "error" }, ` · odometer rolled back ${rollback} m`) : ""));
      if (page.items.length) mileageChart(chart, page.items);
    } catch (error) {
      mileage.replaceChildren(failure(error));
    }
  }
  vehiclePick.addEventListener("change", showMileage);
  resolution.addEventListener("change", showMileage);
  if (devices.length) showMileage();

  await Promise.all([showGrants(grants, me, devices), showAudit(audit, me)]);
}

async function showGrants(box, me, devices) {
  const given = await api.get("/v1/grants", { direction: "given" });
  const isAdmin = me.roles.includes("admin");
  const rows = given.map((g) => h("tr", { "data-grant": g.grant_id },
    h("td", {}, g.grantee_org), h("td", {}, g.scopes.join(", ")), h("td", {}, g.device_ids.join(", ")),
    h("td", {}, `${when(g.valid_from_ms).slice(0, 10)} – ${when(g.valid_until_ms).slice(0, 10)}`),
    h("td", { class: "status" }, g.status),
    h("td", {}, isAdmin && g.status !== "revoked"
      ? h("button", { type: "button", class: "revoke", onclick: async () => {
        try { await api.post(`/v1/grants/${encodeURIComponent(g.grant_id)}/revoke`); await showGrants(box, me, devices); }
        catch (error) { box.prepend(failure(error)); }
      } }, "Revoke") : "")));
  box.replaceChildren(table(["grantee", "scopes", "vehicles", "valid", "status", ""], rows, { id: "grant-list" }));
  if (!isAdmin) return box.append(h("p", { class: "muted" }, "Only an admin gives and revokes grants."));
  const orgs = (await api.get("/v1/organisations")).filter((o) => o.org_id !== me.org_id);
  const form = h("form", { id: "grant-form", class: "inline" },
    h("h3", {}, "Give a grant"),
    h("label", {}, "to ", h("select", { name: "grantee_org" }, orgs.map((o) => h("option", { value: o.org_id }, `${o.name} (${o.kind})`)))),
    h("label", {}, "vehicles ", h("select", { name: "device_ids", multiple: true, size: 4 },
      devices.map((d) => h("option", { value: d.device_id }, d.device_id)))),
    h("fieldset", {}, h("legend", {}, "scopes"), SCOPES.map((s) =>
      h("label", {}, h("input", { type: "checkbox", name: "scopes", value: s }), s))),
    h("label", {}, "days ", h("input", { name: "days", type: "number", min: 1, max: 3650, value: 30 })),
    h("label", {}, "purpose ", h("input", { name: "purpose", required: true, size: 24 })),
    h("button", { type: "submit" }, "Grant"),
    h("p", { class: "error", id: "grant-error" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const now = Date.now();
    try {
      await api.post("/v1/grants", {
        grantee_org: data.get("grantee_org"), scopes: data.getAll("scopes"), device_ids: data.getAll("device_ids"),
        valid_from_ms: now - 60_000, valid_until_ms: now + Number(data.get("days")) * DAY_MS, purpose: data.get("purpose"),
      });
      await showGrants(box, me, devices);
    } catch (error) {
      form.querySelector("#grant-error").textContent = error.message;
    }
  });
  box.append(form);
}

async function showAudit(box, me) {
  if (!me.roles.some((r) => r === "admin" || r === "auditor")) {
    return box.replaceChildren(h("p", { class: "muted" }, "The audit trail is for admins and auditors."));
  }
  try {
    const page = await api.get("/v1/audit", { limit: 100 });
    box.replaceChildren(h("div", { class: "scroll" }, table(["at", "event", "who", "vehicle", "scope", "outcome", "action"],
      page.items.map((e) => h("tr", {}, h("td", {}, when(e.at_ms)), h("td", {}, e.event),
        h("td", {}, `${e.actor} (${e.actor_org ?? "?"})`), h("td", {}, e.device_id ?? "–"), h("td", {}, e.scope ?? "–"),
        h("td", {}, e.outcome), h("td", {}, e.action ?? "–"))), { id: "audit-list" })));
  } catch (error) {
    box.replaceChildren(failure(error));
  }
}
