// The summary of a verified certificate, in the lines `roadledger verify` prints
// (app/commands/verify.py), and the one-line failure with control characters escaped.

import { isPrintable, reprStr } from "./pyfmt.js";

const LIST_LIMIT = 10;

function utc(ms) {
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return `${ms} ms`;
  const text = date.toISOString().slice(0, 19);
  return ms % 1000 ? `${text}.${String(ms % 1000).padStart(3, "0")}Z` : `${text}Z`;
}

function km(metres) {
  const value = (Math.abs(metres) / 1000).toFixed(3);
  const [whole, fraction] = value.split(".");
  return `${metres < 0 ? "-" : ""}${whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",")}.${fraction} km`;
}

const plural = (count, noun) => (count === 1 ? `${count} ${noun}` : `${count} ${noun}s`);

function gap(g) {
  const first = g.after_seq + 1;
  const last = g.before_seq - 1;
  return first === last ? `seq ${first}` : `seq ${first}..${last} (${last - first + 1} messages)`;
}

function limited(items) {
  return items.length <= LIST_LIMIT ? items : [...items.slice(0, LIST_LIMIT), `... and ${items.length - LIST_LIMIT} more`];
}

/** `2 d 3 h`, `56 min 35 s`, `5 s`: the two largest units, `none` for zero. */
export function duration(ms) {
  if (ms <= 0) return "none";
  if (ms < 1000) return `${ms} ms`;
  const parts = [];
  let rest = Math.floor(ms / 1000);
  for (const [unit, seconds] of [["d", 86_400], ["h", 3_600], ["min", 60], ["s", 1]]) {
    if (rest >= seconds || parts.length) {
      const count = Math.floor(rest / seconds);
      rest %= seconds;
      if (count) parts.push(`${count} ${unit}`);
      if (parts.length === 2 || (parts.length && !rest)) break;
    }
  }
  return parts.join(" ");
}

function vehicle(report) {
  const one = (r) => `VIN ${r.vin || "not stated"}, class ${r.vehicleClass || "not stated"}, owner ${r.ownerOrg}`;
  const keys = report.deviceKeys;
  const identities = [...new Set(keys.map(one))];
  const lines = [`  vehicle:     ${one(keys[keys.length - 1])}`];
  if (identities.length > 1) {
    lines.push(`    the ${keys.length} key records state ${identities.length}:`);
    lines.push(...identities.map((i) => `    ${i}`));
  }
  return lines;
}

/** The lines `roadledger verify` prints for a certificate that verified. */
export function summaryLines(report) {
  const s = report.summary;
  const cp = report.checkpoint;
  const lines = [
    `OK mileage certificate for ${report.deviceId}`,
    ...vehicle(report),
    `  range:       ${utc(report.fromMs)} .. ${utc(report.toMs)} (end excluded)`,
    `  messages:    ${s.message_count}, seq ${s.first_seq}..${s.last_seq}, ${utc(report.firstTsMs)} .. ${utc(report.lastTsMs)}`,
    `  uncovered:   ${duration(Math.max(0, report.firstTsMs - report.fromMs))} at the start, ` +
      `${duration(Math.max(0, report.toMs - report.lastTsMs))} at the end of the range`,
    `  distance:    ${km(s.distance_m)} by odometer (${s.odometer_start_m} m -> ${s.odometer_end_m} m), ${km(s.gnss_distance_m)} by GNSS`,
  ];
  if (s.gaps.length) {
    const missing = s.gaps.reduce((n, g) => n + g.before_seq - g.after_seq - 1, 0);
    lines.push(`  gaps:        ${s.gaps.length}, ${plural(missing, "message")} missing`);
    lines.push(...limited(s.gaps.map(gap)).map((l) => `    ${l}`));
  } else {
    lines.push("  gaps:        none");
  }
  if (s.anomalies.length) {
    lines.push(`  anomalies:   ${s.anomalies.length}`);
    lines.push(...limited(s.anomalies.map((a) => `seq ${a.seq} ${a.kind}: ${a.detail}`)).map((l) => `    ${l}`));
  } else {
    lines.push("  anomalies:   none");
  }
  lines.push(`  checkpoint:  ${cp.origin} size ${cp.size}, signed by log key ${report.logKeyName}`);
  if (report.witnessCount) {
    lines.push(
      `  witnesses:   ${report.witnesses.length} of ${report.witnessCount} cosigned (${report.witnesses.join(", ") || "none"}), ` +
        `${report.minWitnesses} required`,
    );
  } else {
    lines.push("  witnesses:   none given: only the log's signature vouches for the log");
  }
  return lines.map(oneLine);
}

/** `app/commands/verify._one_line`: what Python would not print escaped as its repr does, so a
hostile certificate cannot forge extra lines (or hide characters). */
export function oneLine(text) {
  let out = "";
  for (const ch of text) out += isPrintable(ch) ? ch : reprStr(ch).slice(1, -1);
  return out;
}
