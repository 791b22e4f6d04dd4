// busy.mjs is fbpub's free/busy test oracle: ical.js 2.2.1 (Thunderbird's
// calendar engine) expands the recurrences; this file adds the free/busy
// counting rules that ical.js does not have.
//
// Protocol: one JSON request per line on stdin, one JSON answer per line on
// stdout, in the same order, so a Go test can keep one process for many
// cases. See README.md for the fields. A request that cannot be answered
// gets {"id": ..., "periods": [], "error": "..."}; the process keeps going.
//
// Counting rules, applied to every instance on its own properties (an
// override's, or a RANGE=THISANDFUTURE override's for the instances it
// governs, else the master's), first match wins:
//
//  1. STATUS:CANCELLED                                  -> not counted
//  2. owner is an ATTENDEE (and not the ORGANIZER) with
//     PARTSTAT=DECLINED                                 -> not counted
//  3. TRANSP:TRANSPARENT                                -> not counted
//  4. X-MICROSOFT-CDO-BUSYSTATUS FREE or WORKINGELSEWHERE -> not counted
//  5. the type: X-MICROSOFT-CDO-BUSYSTATUS BUSY / TENTATIVE / OOF gives
//     BUSY / BUSY-TENTATIVE / BUSY-UNAVAILABLE and takes precedence over
//     STATUS (it is Outlook's explicit "show as"; Outlook keeps STATUS at
//     CONFIRMED for a tentative "show as", and a STATUS:TENTATIVE meeting
//     shown as busy is busy); without it STATUS:TENTATIVE gives
//     BUSY-TENTATIVE and anything else BUSY.
//  6. owner is an ATTENDEE (and not the ORGANIZER) with PARTSTAT
//     NEEDS-ACTION, TENTATIVE or no PARTSTAT           -> BUSY-TENTATIVE,
//     whatever step 5 said (the owner's own answer about the owner's time
//     beats the event's "show as"); ACCEPTED etc. keep step 5's type.
//     When the owner is the ORGANIZER, the owner's ATTENDEE line (some
//     clients list the organizer as an attendee) is ignored.
//
// VFREEBUSY components count their FREEBUSY periods with their FBTYPE
// (default BUSY; FREE not counted; unknown values are BUSY, RFC 5545 §3.2.9).
//
// Modes. "icaljs" (the default) reports what ical.js computes, including
// where it is known to be wrong; "rfc" applies the corrections listed in
// README.md. Either way the answer lists the known deviations the input
// triggered ("deviations"), so a differential test can tell them apart.
import ICAL from 'ical.js';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ZONES_DIR = join(HERE, 'zones');

// DEFAULT_MAX_INSTANCES bounds the expansion of one recurring event: the
// ical.js iterator is stopped after this many recurrence instances counted
// from DTSTART (EXDATE-removed ones are not produced, so not counted), or
// once an instance starts past the window end, whichever comes first.
export const DEFAULT_MAX_INSTANCES = 5000;

// WINDOWS_ZONES maps the Windows zone names that the corpus uses (and a few
// more Outlook writes often) to IANA names, after CLDR windowsZones.xml
// (territory 001). Used only when the calendar has no VTIMEZONE for the TZID.
export const WINDOWS_ZONES = {
  'W. Europe Standard Time': 'Europe/Berlin',
  'Romance Standard Time': 'Europe/Paris',
  'Central European Standard Time': 'Europe/Warsaw',
  'GMT Standard Time': 'Europe/London',
  'Greenwich Standard Time': 'UTC',
  'UTC': 'UTC',
  'Eastern Standard Time': 'America/New_York',
  'Central Standard Time': 'America/Chicago',
  'Pacific Standard Time': 'America/Los_Angeles',
  'E. South America Standard Time': 'America/Sao_Paulo',
  'Tokyo Standard Time': 'Asia/Tokyo',
  'India Standard Time': 'Asia/Kolkata',
  'AUS Eastern Standard Time': 'Australia/Sydney',
  'New Zealand Standard Time': 'Pacific/Auckland',
  // Outlook's display names, written as TZID by some Exchange versions.
  '(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna': 'Europe/Berlin',
  '(UTC-08:00) Pacific Time (US & Canada)': 'America/Los_Angeles',
  '(UTC-05:00) Eastern Time (US & Canada)': 'America/New_York',
};

const zoneCache = new Map(); // IANA name -> ICAL.Timezone or null

// ianaZone returns the ICAL.Timezone for an IANA name from zones/, or null.
export function ianaZone(name) {
  if (zoneCache.has(name)) return zoneCache.get(name);
  let zone = null;
  if (/^[A-Za-z0-9_+\-]+(\/[A-Za-z0-9_+\-]+)*$/.test(name)) {
    const file = join(ZONES_DIR, name + '.ics');
    if (existsSync(file)) {
      const comp = new ICAL.Component(ICAL.parse(readFileSync(file, 'utf8')));
      zone = new ICAL.Timezone({ component: comp, tzid: name });
    }
  }
  zoneCache.set(name, zone);
  return zone;
}

// resolveTzid maps a TZID that a calendar uses without defining it to an
// IANA name: the name itself, a Windows name, or a Mozilla/Citadel style
// "/vendor/version/Region/City" ID whose tail is an IANA name.
export function resolveTzid(tzid) {
  const t = tzid.trim();
  if (ianaZone(t)) return t;
  if (WINDOWS_ZONES[t] && ianaZone(WINDOWS_ZONES[t])) return WINDOWS_ZONES[t];
  const parts = t.split('/').filter(Boolean);
  for (let k = Math.min(3, parts.length); k >= 1; k--) {
    const tail = parts.slice(parts.length - k).join('/');
    if (ianaZone(tail)) return tail;
  }
  if (/^(Etc\/)?(GMT|UTC|Z|Zulu|Universal)$/i.test(t)) return 'UTC';
  return null;
}

// registerTzids makes every TZID in the text that is not defined by a
// VTIMEZONE in it, but resolves to an IANA zone, known to ical.js's
// TimezoneService. ical.js prefers the calendar's own VTIMEZONE, so this
// only fills gaps. Returns the TZIDs that resolve to nothing (ical.js reads
// those as floating; busy.mjs then places them in the owner's zone).
function registerTzids(text) {
  const unresolved = new Set();
  const defined = new Set();
  for (const m of text.matchAll(/^TZID:(.*)$/gim)) defined.add(m[1].trim());
  for (const m of text.matchAll(/;TZID=("[^"]*"|[^;:]*)/gi)) {
    let tzid = m[1];
    if (tzid.startsWith('"')) tzid = tzid.slice(1, -1);
    if (defined.has(tzid) || ICAL.TimezoneService.has(tzid)) continue;
    const iana = resolveTzid(tzid);
    if (iana) ICAL.TimezoneService.register(ianaZone(iana), tzid);
    else unresolved.add(tzid);
  }
  return [...unresolved];
}

// --- time arithmetic ------------------------------------------------------

function wallSeconds(t) {
  return Date.UTC(t.year, t.month - 1, t.day, t.hour, t.minute, t.second) / 1000;
}

function offsetAtUTC(zone, u) {
  const ch = zone.changes;
  let off = ch.length ? ch[0].prevUtcOffset : 0;
  for (const c of ch) {
    if (Date.UTC(c.year, c.month - 1, c.day, c.hour, c.minute, c.second) / 1000 <= u) off = c.utcOffset;
    else break;
  }
  return off;
}

// rfcLocalToUTC converts a wall time in zone to a UNIX time as RFC 5545
// §3.3.5 says: a repeated wall time is its first occurrence; a wall time in
// a gap uses the UTC offset before the gap.
function rfcLocalToUTC(f, zone) {
  zone._ensureCoverage(f.year + 1);
  const L = wallSeconds(f);
  const cands = new Set([offsetAtUTC(zone, L - 86400), offsetAtUTC(zone, L), offsetAtUTC(zone, L + 86400)]);
  const valid = [...cands].filter((o) => offsetAtUTC(zone, L - o) === o);
  if (valid.length) return Math.min(...valid.map((o) => L - o));
  return L - offsetAtUTC(zone, L - 86400);
}

// Ctx carries one request's settings.
class Ctx {
  constructor(req) {
    this.mode = req.mode === 'rfc' ? 'rfc' : 'icaljs';
    this.owner = req.owner ? normAddr(req.owner) : null;
    this.tzName = req.tz || 'UTC';
    const iana = resolveTzid(this.tzName);
    if (!iana) throw new Error(`unknown owner zone ${JSON.stringify(this.tzName)}`);
    this.ownerZone = ianaZone(iana);
    this.maxInstances = req.max_instances || DEFAULT_MAX_INSTANCES;
    this.deviations = new Map(); // key -> {kind, uid, detail}
  }

  deviation(kind, uid, detail) {
    const key = kind + '|' + uid;
    if (!this.deviations.has(key)) this.deviations.set(key, { kind, uid, detail });
  }

  // zoneOf gives the zone a time is to be read in: its own, or the owner's
  // for floating times and DATE values.
  zoneOf(t) {
    if (t.isDate) return this.ownerZone;
    const z = t.zone;
    if (!z || z === ICAL.Timezone.localTimezone || z.tzid === 'floating') return this.ownerZone;
    return z;
  }

  // toUTC converts the wall time f (year..second fields) in zone to a UNIX
  // time, the way the mode says; in "icaljs" mode it also notes where the
  // RFC reading differs (a DST gap or repeated hour).
  toUTC(f, zone, uid) {
    if (zone === ICAL.Timezone.utcTimezone) return wallSeconds(f);
    const t = new ICAL.Time({ year: f.year, month: f.month, day: f.day, hour: f.hour || 0, minute: f.minute || 0, second: f.second || 0, isDate: false }, zone);
    const ical = t.toUnixTime();
    const rfc = rfcLocalToUTC(t, zone);
    if (rfc !== ical) {
      this.deviation('dst-local-time', uid,
        `${t.toString()} in ${zone.tzid} is in a DST gap or repeated hour: ical.js gives ${iso(ical)}, RFC 5545 §3.3.5 gives ${iso(rfc)}`);
    }
    return this.mode === 'rfc' ? rfc : ical;
  }

  // instant gives the UNIX time of an ICAL.Time.
  instant(t, uid) {
    if (!t.isDate && t.zone === ICAL.Timezone.utcTimezone) return t.toUnixTime();
    return this.toUTC(t, this.zoneOf(t), uid);
  }
}

function iso(u) {
  return new Date(u * 1000).toISOString().replace('.000Z', 'Z');
}

function parseISO(s) {
  const ms = Date.parse(s);
  if (Number.isNaN(ms)) throw new Error(`bad time ${JSON.stringify(s)}`);
  return ms / 1000;
}

function normAddr(a) {
  return String(a).trim().toLowerCase().replace(/^mailto:/, '');
}

// --- counting rules ---------------------------------------------------------

function propText(comp, name) {
  const p = comp.getFirstProperty(name);
  if (!p) return null;
  const v = p.getFirstValue();
  return v == null ? null : String(v).trim().toUpperCase();
}

// classify returns the FBTYPE an instance with the properties of comp counts
// as, or null when it does not count. See the rules at the top of the file.
export function classify(comp, owner) {
  if (propText(comp, 'status') === 'CANCELLED') return null;
  let ownerAtt = null;
  if (owner) {
    const org = comp.getFirstProperty('organizer');
    const isOrganizer = org && normAddr(org.getFirstValue()) === owner;
    if (!isOrganizer) {
      for (const att of comp.getAllProperties('attendee')) {
        if (normAddr(att.getFirstValue()) === owner) { ownerAtt = att; break; }
      }
    }
  }
  const partstat = ownerAtt ? String(ownerAtt.getParameter('partstat') || 'NEEDS-ACTION').toUpperCase() : null;
  if (partstat === 'DECLINED') return null;
  if (propText(comp, 'transp') === 'TRANSPARENT') return null;
  const cdo = propText(comp, 'x-microsoft-cdo-busystatus');
  if (cdo === 'FREE' || cdo === 'WORKINGELSEWHERE') return null;
  let type;
  if (cdo === 'BUSY') type = 'BUSY';
  else if (cdo === 'TENTATIVE') type = 'BUSY-TENTATIVE';
  else if (cdo === 'OOF') type = 'BUSY-UNAVAILABLE';
  else type = propText(comp, 'status') === 'TENTATIVE' ? 'BUSY-TENTATIVE' : 'BUSY';
  if (partstat === 'NEEDS-ACTION' || partstat === 'TENTATIVE') type = 'BUSY-TENTATIVE';
  return type;
}

// --- instance length ------------------------------------------------------

// endOf returns the UNIX end of an instance starting at the wall time start
// (an ICAL.Time) whose length comes from comp's DTSTART/DTEND/DURATION:
// DURATION days and weeks are nominal (calendar days in the start's zone),
// hours, minutes and seconds exact; a DTEND DATE-TIME gives the exact length
// between DTSTART and DTEND (also when they are in different zones); a DTEND
// DATE gives nominal days; a DATE DTSTART alone is one day, a DATE-TIME
// DTSTART alone zero length.
function endOf(ctx, comp, start, startUTC, uid) {
  const dtstart = comp.getFirstPropertyValue('dtstart');
  const dtendProp = comp.getFirstProperty('dtend');
  const durProp = comp.getFirstProperty('duration');
  let days = 0, exact = 0;
  if (dtendProp) {
    const dtend = dtendProp.getFirstValue();
    if (dtstart.isDate || dtend.isDate) {
      days = Math.round((Date.UTC(dtend.year, dtend.month - 1, dtend.day) - Date.UTC(dtstart.year, dtstart.month - 1, dtstart.day)) / 86400000);
    } else {
      exact = ctx.instant(dtend, uid) - ctx.instant(dtstart, uid);
    }
  } else if (durProp) {
    const d = durProp.getFirstValue();
    const sign = d.isNegative ? -1 : 1;
    days = sign * (d.weeks * 7 + d.days);
    exact = sign * (d.hours * 3600 + d.minutes * 60 + d.seconds);
  } else if (dtstart.isDate) {
    days = 1;
  }
  let end = startUTC;
  if (days) {
    const t = start.clone();
    t.isDate = false;
    t.adjust(days, 0, 0, 0);
    end = ctx.toUTC(t, ctx.zoneOf(start), uid);
  }
  return end + exact;
}

// --- expansion ------------------------------------------------------------

function ridOf(comp) {
  return comp.getFirstPropertyValue('recurrence-id');
}

// checkMaster notes the known ical.js errors the master's rules trigger (in
// both modes) and, in "rfc" mode, rewrites the rule so ical.js gets it right.
// It returns true when the DTSTART instance must be added by hand (RDATE
// without RRULE).
function checkMaster(ctx, master, uid) {
  const dtstart = master.getFirstPropertyValue('dtstart');
  const rrules = master.getAllProperties('rrule');
  for (const p of rrules) {
    const r = p.getFirstValue();
    const parts = r.parts || {};
    const has = (k) => parts[k] && parts[k].length;
    if (r.freq === 'YEARLY' && dtstart.month === 2 && dtstart.day === 29 &&
        !has('BYMONTH') && !has('BYMONTHDAY') && !has('BYYEARDAY') && !has('BYWEEKNO') && !has('BYDAY') && !has('BYSETPOS')) {
      ctx.deviation('yearly-feb29', uid,
        'FREQ=YEARLY from Feb 29: ical.js gives Mar 1 in common years (and counts it toward COUNT); RFC 5545 §3.3.10 skips invalid dates');
      if (ctx.mode === 'rfc') {
        r.parts.BYMONTH = [2];
        r.parts.BYMONTHDAY = [29];
        p.setValue(r);
      }
    }
  }
  for (const p of rrules) {
    const parts = p.getFirstValue().parts || {};
    if (parts.BYWEEKNO && parts.BYWEEKNO.length) {
      ctx.deviation('byweekno', uid,
        'BYWEEKNO: ical.js 2.2.1 expands FREQ=YEARLY;BYWEEKNO=...;BYDAY=... to the wrong weeks (and drops DTSTART); RFC 5545 §3.3.10 means the given ISO weeks (WKST=MO). Not corrected in "rfc" mode: compare against the manifest notes');
    }
  }
  if (!rrules.length && master.hasProperty('rdate')) {
    ctx.deviation('rdate-drops-dtstart', uid,
      'RDATE without RRULE: ical.js loses the DTSTART instance; RFC 5545 §3.8.5.2/§3.8.5.3: DTSTART is always the first instance');
    return true; // caller adds DTSTART in rfc mode
  }
  return false;
}

// version orders copies of one event as fbpub does (calendar.Version):
// the highest SEQUENCE, then the latest LAST-MODIFIED, else DTSTAMP, among
// the given components.
function version(comps) {
  let seq = 0, stamp = -Infinity;
  for (const c of comps) {
    const n = Number(c.getFirstPropertyValue('sequence'));
    if (Number.isInteger(n) && n > seq) seq = n;
    const t = c.getFirstPropertyValue('last-modified') || c.getFirstPropertyValue('dtstamp');
    if (t && typeof t.toUnixTime === 'function') stamp = Math.max(stamp, t.toUnixTime());
  }
  return [seq, stamp];
}

function compareVersions(a, b) {
  return a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1];
}

// unite joins the parts of one UID (one per VCALENDAR, each standing for a
// stored message) as RFC 5545 reads one event wherever its components are
// stored, with fbpub's rules for copies (calendar.Unite): the master of the
// newest copy (a VCALENDAR holding a master; on a tie the later), with the
// overrides stored beside it and those stored without any master; the
// overrides kept with an older copy's master go with it. Of two overrides
// of one instance the newer counts (on a tie the later). ical.js itself
// keeps whatever it is given last.
function unite(ctx, uid, parts) {
  let win = null, winV = null;
  for (const p of parts) {
    if (!p.master) continue;
    const v = version([p.master, ...p.overrides]);
    if (!win || compareVersions(v, winV) >= 0) { win = p; winV = v; }
  }
  const byRid = new Map(); // UNIX recurrence id -> override
  for (const p of parts) {
    if (p.master && p !== win) continue;
    for (const o of p.overrides) {
      const k = ctx.instant(ridOf(o), uid);
      const old = byRid.get(k);
      if (!old || compareVersions(version([o]), version([old])) >= 0) byRid.set(k, o);
    }
  }
  return { master: win ? win.master : null, overrides: [...byRid.values()] };
}

// expandGroup appends the counted instances of one UID (master plus
// overrides, from one or more VCALENDARs) to out.
function expandGroup(ctx, uid, master, overrides, win, out) {
  const emit = (comp, start, uidForDev, period) => {
    const type = classify(comp, ctx.owner);
    const s = ctx.instant(start, uidForDev);
    const e = period ? ctx.instant(period.getEnd(), uidForDev) : endOf(ctx, comp, start, s, uidForDev);
    if (type && e > s) out.push({ start: s, end: e, type });
  };

  if (!master) {
    // Orphan overrides (no master in the data): each is an event of its own.
    for (const o of overrides) emit(o, o.getFirstPropertyValue('dtstart'), uid);
    return;
  }
  const addDtstart = checkMaster(ctx, master, uid);
  // The overrides are given: left to itself, the ICAL.Event constructor
  // relates every RECURRENCE-ID VEVENT of the master's VCALENDAR, whatever
  // its UID (strictExceptions only makes it throw), so another event's
  // override replaced this series' instance at the same time.
  const event = new ICAL.Event(master, { strictExceptions: false, exceptions: overrides });

  const hasRule = master.hasProperty('rrule') || master.hasProperty('rdate');
  if (!hasRule) {
    const det = event.getOccurrenceDetails(event.startDate);
    const item = det.item.component;
    emit(item, det.startDate, uid);
    return;
  }

  // Iterate recurrence ids from DTSTART. Stop past the window end, extended
  // by how far a RANGE=THISANDFUTURE override moves later instances back.
  let back = 0;
  for (const o of overrides) {
    const p = o.getFirstProperty('recurrence-id');
    if (String(p.getParameter('range') || '').toUpperCase() === 'THISANDFUTURE') {
      back = Math.max(back, ctx.instant(ridOf(o), uid) - ctx.instant(o.getFirstPropertyValue('dtstart'), uid));
    }
  }
  const stopAt = win.end + back + 86400;
  // EXDATEs, to catch the ones the ical.js iterator misses (see above).
  const exdates = [];
  for (const p of master.getAllProperties('exdate')) {
    for (const v of p.getValues()) {
      if (v.isDate) exdates.push({ date: wallDate(v) });
      else exdates.push({ utc: ctx.instant(v, uid) });
    }
  }
  const seen = new Set();
  const it = event.iterator();
  let n = 0, last = -Infinity, next;
  const dtstartUTC = ctx.instant(event.startDate, uid);
  let dtstartSeen = false;
  while ((next = it.next())) {
    // ical.js yields an RDATE;VALUE=PERIOD value as the ICAL.Period itself,
    // which its own getOccurrenceDetails cannot handle; the instance starts
    // at the period's start and, unless overridden, lasts the period.
    let period = null;
    if (next instanceof ICAL.Period) {
      period = next;
      next = period.start;
      ctx.deviation('rdate-period', uid,
        'RDATE;VALUE=PERIOD: the ical.js iterator yields the ICAL.Period object, not a time, and getOccurrenceDetails fails on it; busy.mjs uses the period as the instance (RFC 5545 §3.8.5.2) in both modes');
    }
    const ridUTC = ctx.instant(next, uid);
    if (ridUTC > stopAt) break;
    if (++n > ctx.maxInstances) { ctx.truncated = true; break; }
    last = ridUTC;
    if (ridUTC === dtstartUTC) dtstartSeen = true;
    seen.add(next.toString());
    if (exdates.length && exdates.some((x) => x.utc === ridUTC || (x.date && x.date === wallDate(next)))) {
      ctx.deviation('exdate-missed', uid,
        `ical.js did not apply the EXDATE for ${next.toString()}: its iterator steps past at most one EXDATE per instance, so after an EXDATE that matches no instance (or a repeated one) it misses the next; RFC 5545 §3.8.5.1 excludes every listed instance`);
      if (ctx.mode === 'rfc') continue;
    }
    const det = event.getOccurrenceDetails(next);
    emit(det.item.component, det.startDate, uid, det.item === event ? period : null);
  }
  if (addDtstart && ctx.mode === 'rfc' && !dtstartSeen && !isExdated(ctx, master, event.startDate, uid)) {
    const det = event.getOccurrenceDetails(event.startDate);
    emit(det.item.component, det.startDate, uid);
  }
  // Overrides whose recurrence id lies beyond where the iteration stopped
  // may still move their instance into the window — unless an EXDATE
  // removed that instance, as it removes one the iteration reached.
  for (const o of overrides) {
    const rid = ridOf(o);
    if (seen.has(rid.toString())) continue;
    const ridUTC = ctx.instant(rid, uid);
    if (exdates.some((x) => x.utc === ridUTC || (x.date && x.date === wallDate(rid)))) continue;
    if (ridUTC > last) emit(o, o.getFirstPropertyValue('dtstart'), uid);
  }
}

function wallDate(t) {
  return `${t.year}-${t.month}-${t.day}`;
}

function isExdated(ctx, master, t, uid) {
  const u = ctx.instant(t, uid);
  for (const p of master.getAllProperties('exdate')) {
    for (const v of p.getValues()) if (ctx.instant(v, uid) === u) return true;
  }
  return false;
}

// --- VFREEBUSY ---------------------------------------------------------------

const FBTYPES = new Set(['BUSY', 'BUSY-TENTATIVE', 'BUSY-UNAVAILABLE']);

function freebusyPeriods(ctx, comp, out) {
  for (const p of comp.getAllProperties('freebusy')) {
    let type = String(p.getParameter('fbtype') || 'BUSY').toUpperCase();
    if (type === 'FREE') continue;
    if (!FBTYPES.has(type)) type = 'BUSY'; // RFC 5545 §3.2.9: unknown FBTYPE is BUSY
    for (const v of p.getValues()) {
      const s = ctx.instant(v.start, 'VFREEBUSY');
      const e = v.end ? ctx.instant(v.end, 'VFREEBUSY') : s + v.duration.toSeconds();
      if (e > s) out.push({ start: s, end: e, type });
    }
  }
}

// --- periods ---------------------------------------------------------------

const TYPE_ORDER = { BUSY: 0, 'BUSY-TENTATIVE': 1, 'BUSY-UNAVAILABLE': 2 };

// mergePeriods clips to the window, merges overlapping or touching periods
// of the same type (periods of different types stay separate), and sorts by
// start, then type, then end.
export function mergePeriods(list, win) {
  const byType = new Map();
  for (const p of list) {
    const s = Math.max(p.start, win.start), e = Math.min(p.end, win.end);
    if (e <= s) continue;
    if (!byType.has(p.type)) byType.set(p.type, []);
    byType.get(p.type).push({ start: s, end: e, type: p.type });
  }
  const merged = [];
  for (const ps of byType.values()) {
    ps.sort((a, b) => a.start - b.start || a.end - b.end);
    let cur = null;
    for (const p of ps) {
      if (cur && p.start <= cur.end) cur.end = Math.max(cur.end, p.end);
      else { cur = { ...p }; merged.push(cur); }
    }
  }
  merged.sort((a, b) => a.start - b.start || TYPE_ORDER[a.type] - TYPE_ORDER[b.type] || a.end - b.end);
  return merged.map((p) => ({ start: iso(p.start), end: iso(p.end), type: p.type }));
}

// --- entry points -------------------------------------------------------------

// splitCalendars parses text that holds one or more VCALENDARs.
function parseCalendars(text) {
  text = text.replace(/^\uFEFF/, '');
  const jcal = ICAL.parse(text);
  const roots = Array.isArray(jcal[0]) ? jcal : [jcal];
  return roots.map((j) => new ICAL.Component(j));
}

// busy answers one request object; it throws on bad input.
export function busy(req) {
  const ctx = new Ctx(req);
  const win = { start: parseISO(req.start), end: parseISO(req.end) };
  if (!(win.end > win.start)) throw new Error('window end must be after start');
  const unresolved = registerTzids(req.ics || '');
  for (const tzid of unresolved) {
    ctx.deviation('unknown-tzid', tzid,
      `TZID ${JSON.stringify(tzid)} is neither defined by a VTIMEZONE nor an IANA/Windows name: ical.js reads it as floating, so it is placed in the owner's zone`);
  }
  const cals = parseCalendars(req.ics || '');
  const raw = [];
  // Each VCALENDAR stands for one stored message: per UID, the master and
  // overrides it holds.
  const groups = new Map(); // uid -> [{master, overrides}] one per VCALENDAR
  let anon = 0;
  for (const cal of cals) {
    for (const fb of cal.getAllSubcomponents('vfreebusy')) freebusyPeriods(ctx, fb, raw);
    const here = new Map();
    for (const ev of cal.getAllSubcomponents('vevent')) {
      if (!ev.hasProperty('dtstart')) continue;
      const uid = ev.getFirstPropertyValue('uid') || `(no uid ${++anon})`;
      if (!here.has(uid)) {
        here.set(uid, { master: null, overrides: [] });
        if (!groups.has(uid)) groups.set(uid, []);
        groups.get(uid).push(here.get(uid));
      }
      const g = here.get(uid);
      if (ev.hasProperty('recurrence-id')) g.overrides.push(ev);
      else if (!g.master) g.master = ev;
    }
  }
  for (const [uid, parts] of groups) {
    const { master, overrides } = unite(ctx, String(uid), parts);
    expandGroup(ctx, String(uid), master, overrides, win, raw);
  }
  const answer = { id: req.id, periods: mergePeriods(raw, win) };
  if (ctx.deviations.size) answer.deviations = [...ctx.deviations.values()];
  if (ctx.truncated) answer.truncated = true;
  return answer;
}

// answer wraps busy so that errors become answers.
export function answer(req) {
  try {
    return busy(req);
  } catch (err) {
    return { id: req && req.id, periods: [], error: String(err && err.message || err) };
  }
}

async function main() {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let req;
    try {
      req = JSON.parse(line);
    } catch (err) {
      process.stdout.write(JSON.stringify({ id: null, periods: [], error: 'bad request: ' + err.message }) + '\n');
      continue;
    }
    process.stdout.write(JSON.stringify(answer(req)) + '\n');
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main();
}
