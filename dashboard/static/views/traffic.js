// The traffic view (an authority's first): the road network from the stored segments coloured
// by their live state (GET /v1/segments/stream), the jurisdiction outline, live vehicle
// positions (only those the member may track: GET /v1/positions/stream), the warnings feed
// with its evidence and ledger proofs, and a segment's speed history with the 15/30/60-minute
// forecasts.
import * as L from "/ui/vendor/leaflet/leaflet.js";
import * as api from "../api.js";
import { h, card, table, when, failure } from "../dom.js";
import { speedChart } from "./charts.js";
import { warningsPanel } from "./warnings.js";

const E7 = 1e7;
const latLng = ([lat, lon]) => [lat / E7, lon / E7];

// The stream's states (the server decides them: speed against the limit, over enough vehicles).
const COLOURS = { free: "#2e9e44", slow: "#e0a100", jammed: "#d23c2a", unknown: "#8a96a8" };

export async function render(view, me, signal) {
  const live = h("span", { id: "live", "data-events": "0", "data-vehicles": "0" }, "no live vehicle");
  const mapBox = h("div", { id: "map" });
  const segmentPick = h("select", { id: "segment-pick", "aria-label": "segment" },
    h("option", { value: "" }, "choose a segment…"));
  const segmentPanel = h("div", { id: "segment-panel" });
  const warnings = h("div", { id: "warnings-panel" });
  view.replaceChildren(h("div", { class: "grid" },
    h("div", {},
      card("Road network", h("p", { class: "legend muted" }, "current speed vs limit:",
        h("span", { class: "fast" }), "≥70%", h("span", { class: "slow" }), "40–70%",
        h("span", { class: "jam" }), "<40%", h("span", { class: "none" }), "no figure"), mapBox, live),
      card("Segment", segmentPick, segmentPanel)),
    warnings));

  const map = L.map(mapBox, { preferCanvas: true, attributionControl: false, zoomSnap: 0.25 });
  const renderer = L.canvas();
  const segments = await api.every("/v1/segments");
  const bounds = L.latLngBounds([]);
  let outlines = 0;
  if (me.org_kind === "authority") {
    // Its own jurisdiction and its district units' (what the API shows it data of).
    const orgs = await api.get("/v1/organisations");
    const areas = new Map(orgs.map((o) => [o.org_id, o]));
    const ours = (o) => o && (o.org_id === me.org_id || ours(areas.get(o.parent_id)));
    for (const org of orgs.filter((o) => o.jurisdiction && ours(o))) {
      outlines += 1;
      const outline = L.polygon(org.jurisdiction.map(latLng), {
        color: "#3056d3", weight: 2, dashArray: "6 4", fill: false, interactive: false,
      }).bindTooltip(org.name).addTo(map);
      bounds.extend(outline.getBounds());
    }
  }
  const lines = new Map();
  for (const segment of segments) {
    const line = L.polyline(segment.geometry.map(latLng), {
      renderer, color: COLOURS.unknown, weight: 4, opacity: 0.9,  // until the stream's snapshot
    }).addTo(map);
    line.bindTooltip(`${segment.name} · ${segment.speed_limit_kmh} km/h`);
    line.on("click", () => { segmentPick.value = String(segment.segment_id); choose(); });
    lines.set(segment.segment_id, line);
    bounds.extend(line.getBounds());
    segmentPick.append(h("option", { value: segment.segment_id }, `${segment.segment_id} · ${segment.name}`));
  }
  mapBox.dataset.segments = String(segments.length);
  mapBox.dataset.outlines = String(outlines);
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [12, 12] });
  else map.setView([0, 0], 2);

  async function choose() {
    const id = segmentPick.value;
    for (const [sid, line] of lines) line.setStyle({ weight: String(sid) === id ? 8 : 4 });
    if (!id) return segmentPanel.replaceChildren();
    const segment = segments.find((s) => String(s.segment_id) === id);
    segmentPanel.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const now = Date.now();
      const [history, forecasts] = await Promise.all([
        api.get(`/v1/segments/${id}/history`, { from_ms: now - 6 * 3_600_000, to_ms: now }),
        api.get(`/v1/segments/${id}/forecasts`),
      ]);
      const chart = h("div", { class: "chart" });
      segmentPanel.replaceChildren(
        h("p", {}, `${segment.name}: limit ${segment.speed_limit_kmh} km/h, ${segment.length_m.toFixed(0)} m, `,
          `now ${segment.current.mean_speed_kmh === null ? "–" : segment.current.mean_speed_kmh.toFixed(1) + " km/h"} `,
          `(${segment.current.vehicles} vehicles)`),
        chart,
        table(["horizon", "at", "speed km/h", "flow"], forecasts.map((f) => h("tr", {},
          h("td", {}, `${f.horizon_min} min`), h("td", {}, when(f.target_at_ms)),
          h("td", {}, f.speed_kmh === null ? "–" : f.speed_kmh.toFixed(1)),
          h("td", {}, f.flow_vehicles === null ? "–" : f.flow_vehicles.toFixed(1)))),
        { id: "forecasts" }),
        h("p", { class: "muted", id: "history-count" }, `${history.length} five-minute buckets; ${forecasts.length} forecasts`));
      speedChart(chart, history, forecasts);
    } catch (error) {
      segmentPanel.replaceChildren(failure(error));
    }
  }
  segmentPick.addEventListener("change", choose);

  liveSegments(mapBox, lines, segments, signal);
  warningsPanel(warnings, me, signal);
  livePositions(map, renderer, live, signal);
}

// Recolour the network from GET /v1/segments/stream: a snapshot, then the segments that changed.
// data-states and data-colours (segment id -> state, drawn colour) say what the map shows.
function liveSegments(mapBox, lines, segments, signal) {
  const byId = new Map(segments.map((s) => [s.segment_id, s]));
  const states = {};
  const colours = {};
  let events = 0;
  api.stream("/v1/segments/stream", (kind, data) => {
    if (kind !== "segments") return;
    for (const item of data.segments) {
      const line = lines.get(item.segment_id);
      const known = byId.get(item.segment_id);
      if (!line || !known) continue;
      known.current = { ...known.current, mean_speed_kmh: item.mean_speed_kmh, vehicles: item.vehicles };
      line.setStyle({ color: COLOURS[item.state] ?? COLOURS.unknown });
      states[item.segment_id] = item.state;
      colours[item.segment_id] = line.options.color;
    }
    events += 1;
    mapBox.dataset.segmentEvents = String(events);
    mapBox.dataset.states = JSON.stringify(states);
    mapBox.dataset.colours = JSON.stringify(colours);
  }, signal).catch((error) => {
    mapBox.dataset.segmentError = error.message;
  });
}

function livePositions(map, renderer, live, signal) {
  const markers = new Map();
  let events = 0;
  let newest = 0;
  api.stream("/v1/positions/stream", (kind, data) => {
    if (kind !== "positions") return;
    for (const p of data.positions) {
      const at = latLng([p.lat_e7, p.lon_e7]);
      let marker = markers.get(p.device_id);
      if (!marker) {
        marker = L.circleMarker(at, { renderer, radius: 4, color: "#1d2a3a", weight: 1, fillColor: "#4a8cff", fillOpacity: 0.9 })
          .bindTooltip(p.device_id).addTo(map);
        markers.set(p.device_id, marker);
      } else {
        marker.setLatLng(at);
      }
    }
    events += 1;
    // The newest device time on the map: how far behind live the page is (the benchmark).
    for (const p of data.positions) newest = Math.max(newest, p.ts_ms);
    live.dataset.newest = String(newest);
    live.dataset.events = String(events);
    live.dataset.vehicles = String(markers.size);
    live.dataset.updated = String(Date.now());
    live.textContent = `${markers.size} live vehicles · updated ${new Date().toLocaleTimeString()}`;
  }, signal).catch((error) => {
    live.textContent = error.status === 403 ? "no live positions for this member" : `live positions: ${error.message}`;
  });
}
