// uPlot charts: a segment's speed history with its forecasts, a vehicle's mileage.
import uPlot from "/ui/vendor/uplot/uplot.js";

// One bucket alone would make a zero-width time axis: give it an hour each side.
const TIME = { x: { range: (u, min, max) => (min === max ? [min - 3600, max + 3600] : [min, max]) } };

function width(box) { return Math.max(320, Math.min(720, box.clientWidth || 560)); }

export function speedChart(box, history, forecasts) {
  // One time axis (seconds): the history buckets, then the forecast targets.
  const times = [...history.map((b) => b.from_ms / 1000), ...forecasts.map((f) => f.target_at_ms / 1000)];
  const order = times.map((t, i) => [t, i]).sort((a, b) => a[0] - b[0]);
  const measured = order.map(([, i]) => (i < history.length ? history[i].mean_speed_kmh : null));
  const forecast = order.map(([, i]) => (i >= history.length ? forecasts[i - history.length].speed_kmh : null));
  const chart = new uPlot({
    width: width(box), height: 220, title: "mean speed (km/h): measured, forecast", scales: TIME,
    series: [{}, { label: "measured", stroke: "#3056d3", spanGaps: true },
      { label: "forecast", stroke: "#d23c2a", dash: [6, 4], points: { size: 7 }, spanGaps: true }],
    axes: [{}, { label: "km/h" }],
  }, [order.map(([t]) => t), measured, forecast], box);
  box.dataset.points = String(times.length);
  return chart;
}

export function mileageChart(box, buckets) {
  const chart = new uPlot({
    width: width(box), height: 220, title: "odometer (km) and distance per bucket (km)", scales: TIME,
    series: [{}, { label: "odometer", stroke: "#3056d3", scale: "odo" },
      { label: "distance", stroke: "#2e9e44", scale: "d" }],
    axes: [{}, { scale: "odo", label: "odometer km" }, { scale: "d", side: 1, label: "km" }],
  }, [buckets.map((b) => b.start_ms / 1000), buckets.map((b) => b.last_odo_m / 1000),
    buckets.map((b) => b.distance_m / 1000)], box);
  box.dataset.points = String(buckets.length);
  return chart;
}
