// The summary recomputed from the messages (chain/mileage.py, chain/geodesy.py): the same
// integer arithmetic, and the one haversine per leg rounded as Python's round() does.

const EARTH_RADIUS_M = 6_371_008.8;
const RADIANS = Math.PI / 180;

function centralAngle(lat1, lon1, lat2, lon2) {
  const phi1 = (lat1 / 1e7) * RADIANS;
  const phi2 = (lat2 / 1e7) * RADIANS;
  const halfDphi = (phi2 - phi1) / 2;
  const halfDlambda = (((lon2 - lon1) / 1e7) * RADIANS) / 2;
  const a = Math.sin(halfDphi) ** 2 + Math.cos(phi1) * Math.cos(phi2) * Math.sin(halfDlambda) ** 2;
  return 2 * Math.asin(Math.min(1.0, Math.sqrt(a)));
}

/** Python's round(x): to the nearest integer, ties to even. */
function roundHalfEven(x) {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Great-circle distance in whole millimetres between two positions in degrees x 1e7. */
export function gnssDistanceMm(lat1, lon1, lat2, lon2) {
  return roundHalfEven(EARTH_RADIUS_M * centralAngle(lat1, lon1, lat2, lon2) * 1000);
}

function legAnomalies(a, b, legMm) {
  const found = [];
  if (b.ts < a.ts) {
    found.push({ seq: b.seq, kind: "clock_rollback", detail: `ts ${b.ts} at seq ${b.seq} is before ts ${a.ts} at seq ${a.seq}` });
  }
  if (b.odo_m < a.odo_m) {
    found.push({
      seq: b.seq,
      kind: "odometer_rollback",
      detail: `odometer ${a.odo_m} m at seq ${a.seq}, ${b.odo_m} m at seq ${b.seq}`,
    });
    return found;
  }
  const odoMm = (b.odo_m - a.odo_m) * 1000;
  const legM = Math.floor((legMm + 500) / 1000);
  const where = `seq ${a.seq} -> ${b.seq}: odometer +${b.odo_m - a.odo_m} m, positions ${legM} m apart`;
  if (100 * legMm > 105 * odoMm + 100 * 50_000) {
    found.push({ seq: b.seq, kind: "odometer_gnss_mismatch", detail: `${where}: reads low` });
  } else if (b.seq === a.seq + 1 && odoMm > 2 * legMm + 500_000) {
    found.push({ seq: b.seq, kind: "odometer_gnss_mismatch", detail: `${where}: reads high` });
  }
  return found;
}

/** SummaryBuilder: one message at a time; gaps and anomalies go to the given sinks. */
export class SummaryBuilder {
  constructor(gaps, anomalies) {
    this.gaps = gaps;
    this.anomalies = anomalies;
    this.first = null;
    this.last = null;
    this.count = 0;
    this.totalMm = 0;
  }

  add(message, extra) {
    const a = this.last;
    const b = message;
    for (const anomaly of extra) this.anomalies.append(anomaly);
    if (a !== null) {
      const legMm = gnssDistanceMm(a.lat_e7, a.lon_e7, b.lat_e7, b.lon_e7);
      this.totalMm += legMm;
      if (b.seq !== a.seq + 1) this.gaps.append({ after_seq: a.seq, before_seq: b.seq });
      for (const anomaly of legAnomalies(a, b, legMm)) this.anomalies.append(anomaly);
    } else {
      this.first = message;
    }
    this.last = message;
    this.count += 1;
  }

  /** The summary's integer fields, by name. */
  scalars() {
    const start = this.first.odo_m;
    const end = this.last.odo_m;
    return {
      first_seq: this.first.seq,
      last_seq: this.last.seq,
      message_count: this.count,
      odometer_start_m: start,
      odometer_end_m: end,
      distance_m: end - start,
      gnss_distance_m: Math.floor((this.totalMm + 500) / 1000),
    };
  }
}
