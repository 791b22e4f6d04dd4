// gen-zones.mjs writes zones/<IANA name>.ics: one VTIMEZONE per IANA zone,
// generated from the system tzdata with zdump(8). ical.js ships no tzdata,
// so busy.mjs registers these for TZIDs that a calendar uses without
// defining them, and for the owner's zone (floating times and DATE values).
//
// The output is committed so the oracle does not depend on the tzdata of
// the machine it runs on. Regenerate with:
//
//	node tools/oracle/gen-zones.mjs            # the default list below
//	node tools/oracle/gen-zones.mjs Asia/Dubai # add one zone
//
// Each VTIMEZONE lists every transition from 1970 to 2037 as RDATEs (one
// STANDARD or DAYLIGHT sub-component per distinct offset pair and name),
// preceded by a sub-component that fixes the offset in force on 1970-01-01.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_ZONES = [
  'UTC', 'Europe/Berlin', 'Europe/London', 'Europe/Paris', 'Europe/Amsterdam',
  'Europe/Vienna', 'Europe/Zurich', 'Europe/Warsaw', 'America/New_York',
  'America/Chicago', 'America/Los_Angeles', 'America/Sao_Paulo', 'Asia/Tokyo',
  'Asia/Kolkata', 'Australia/Sydney', 'Pacific/Auckland',
];

const MONTHS = { Jan: 1, Feb: 2, Mar: 3, Apr: 4, May: 5, Jun: 6, Jul: 7, Aug: 8, Sep: 9, Oct: 10, Nov: 11, Dec: 12 };
const LINE = /^\S+\s+\w{3} (\w{3})\s+(\d+) (\d\d):(\d\d):(\d\d) (\d+) UT = .* (\S+) isdst=(\d) gmtoff=(-?\d+)$/;

function parseZdump(zone) {
  const out = execFileSync('zdump', ['-v', '-c', '1900,2038', zone], { encoding: 'utf8' });
  const rows = [];
  for (const line of out.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const ut = Date.UTC(+m[6], MONTHS[m[1]] - 1, +m[2], +m[3], +m[4], +m[5]) / 1000;
    rows.push({ ut, abbr: m[7], isdst: m[8] === '1', gmtoff: +m[9] });
  }
  // zdump prints each transition as the second before and the second at it.
  const transitions = [];
  for (let i = 0; i + 1 < rows.length; i++) {
    const a = rows[i], b = rows[i + 1];
    if (b.ut - a.ut === 1 && (a.gmtoff !== b.gmtoff || a.isdst !== b.isdst || a.abbr !== b.abbr)) {
      transitions.push({ ut: b.ut, from: a.gmtoff, to: b.gmtoff, abbr: b.abbr, isdst: b.isdst });
    }
  }
  return transitions;
}

function fmtOffset(s) {
  const sign = s < 0 ? '-' : '+';
  s = Math.abs(s);
  const h = String(Math.floor(s / 3600)).padStart(2, '0');
  const m = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const sec = s % 60;
  return sign + h + m + (sec ? String(sec).padStart(2, '0') : '');
}

function fmtLocal(t) {
  return new Date(t * 1000).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');
}

export function vtimezone(zone) {
  const all = parseZdump(zone);
  const start = Date.UTC(1970, 0, 1) / 1000;
  const before = all.filter((t) => t.ut < start);
  const after = all.filter((t) => t.ut >= start);
  const init = before.length ? before[before.length - 1] : { to: 0, abbr: zone === 'UTC' ? 'UTC' : 'LMT', isdst: false };
  const lines = ['BEGIN:VTIMEZONE', `TZID:${zone}`, `X-LIC-LOCATION:${zone}`];
  lines.push(
    init.isdst ? 'BEGIN:DAYLIGHT' : 'BEGIN:STANDARD',
    `TZOFFSETFROM:${fmtOffset(init.to)}`, `TZOFFSETTO:${fmtOffset(init.to)}`,
    `TZNAME:${init.abbr}`, 'DTSTART:19700101T000000',
    init.isdst ? 'END:DAYLIGHT' : 'END:STANDARD');
  const groups = new Map();
  for (const t of after) {
    const key = [t.from, t.to, t.abbr, t.isdst].join('|');
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(t);
  }
  for (const list of groups.values()) {
    const t0 = list[0];
    const kind = t0.isdst ? 'DAYLIGHT' : 'STANDARD';
    lines.push(`BEGIN:${kind}`, `TZOFFSETFROM:${fmtOffset(t0.from)}`, `TZOFFSETTO:${fmtOffset(t0.to)}`,
      `TZNAME:${t0.abbr}`, `DTSTART:${fmtLocal(t0.ut + t0.from)}`);
    for (const t of list.slice(1)) lines.push(`RDATE:${fmtLocal(t.ut + t.from)}`);
    lines.push(`END:${kind}`);
  }
  lines.push('END:VTIMEZONE');
  return lines.join('\r\n') + '\r\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const here = dirname(fileURLToPath(import.meta.url));
  const zones = process.argv.length > 2 ? process.argv.slice(2) : DEFAULT_ZONES;
  for (const zone of zones) {
    const file = join(here, 'zones', zone + '.ics');
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, vtimezone(zone));
    console.log(file);
  }
}
