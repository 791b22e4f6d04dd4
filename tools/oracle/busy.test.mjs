// Run with: node --test tools/oracle/
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { answer } from './busy.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

function cal(...events) {
  return ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//fbpub//test//EN',
    ...events.flatMap((e, i) => ['BEGIN:VEVENT', `UID:e${i}`, 'DTSTAMP:20250101T000000Z', ...e, 'END:VEVENT']),
    'END:VCALENDAR', ''].join('\r\n');
}

function busy(ics, extra = {}) {
  const a = answer({ id: 't', ics, start: '2025-03-01T00:00:00Z', end: '2025-04-01T00:00:00Z', tz: 'Europe/Berlin', owner: 'mailto:alice@example.org', ...extra });
  assert.equal(a.error, undefined, a.error);
  return a;
}

const short = (a) => a.periods.map((p) => `${p.start.slice(5, 16)}/${p.end.slice(5, 16)} ${p.type}`);

test('TRANSP, STATUS and X-MICROSOFT-CDO-BUSYSTATUS', () => {
  const a = busy(cal(
    ['DTSTART:20250303T090000Z', 'DTEND:20250303T100000Z', 'TRANSP:TRANSPARENT'],
    ['DTSTART:20250304T090000Z', 'DTEND:20250304T100000Z', 'STATUS:CANCELLED'],
    ['DTSTART:20250305T090000Z', 'DTEND:20250305T100000Z', 'STATUS:TENTATIVE'],
    ['DTSTART:20250306T090000Z', 'DTEND:20250306T100000Z', 'STATUS:TENTATIVE', 'X-MICROSOFT-CDO-BUSYSTATUS:BUSY'],
    ['DTSTART:20250307T090000Z', 'DTEND:20250307T100000Z', 'X-MICROSOFT-CDO-BUSYSTATUS:OOF'],
    ['DTSTART:20250308T090000Z', 'DTEND:20250308T100000Z', 'X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE'],
    ['DTSTART:20250309T090000Z', 'DTEND:20250309T100000Z', 'X-MICROSOFT-CDO-BUSYSTATUS:FREE', 'TRANSP:OPAQUE'],
  ));
  assert.deepEqual(short(a), [
    '03-05T09:00/03-05T10:00 BUSY-TENTATIVE',
    '03-06T09:00/03-06T10:00 BUSY',
    '03-07T09:00/03-07T10:00 BUSY-UNAVAILABLE',
  ]);
});

test('owner PARTSTAT, organizer wins', () => {
  const a = busy(cal(
    ['DTSTART:20250303T090000Z', 'DTEND:20250303T100000Z', 'ATTENDEE;PARTSTAT=DECLINED:MAILTO:Alice@Example.org'],
    ['DTSTART:20250304T090000Z', 'DTEND:20250304T100000Z', 'ATTENDEE:mailto:alice@example.org'],
    ['DTSTART:20250305T090000Z', 'DTEND:20250305T100000Z', 'ORGANIZER:mailto:alice@example.org', 'ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:alice@example.org'],
  ));
  assert.deepEqual(short(a), ['03-04T09:00/03-04T10:00 BUSY-TENTATIVE', '03-05T09:00/03-05T10:00 BUSY']);
});

test('merge touching periods of one type, keep other types apart, clip', () => {
  const a = busy(cal(
    ['DTSTART:20250228T230000Z', 'DTEND:20250301T010000Z'],
    ['DTSTART:20250301T010000Z', 'DTEND:20250301T020000Z'],
    ['DTSTART:20250301T013000Z', 'DTEND:20250301T030000Z', 'STATUS:TENTATIVE'],
  ));
  assert.deepEqual(short(a), ['03-01T00:00/03-01T02:00 BUSY', '03-01T01:30/03-01T03:00 BUSY-TENTATIVE']);
});

test('P1D is a calendar day, PT24H is 24 hours, across DST', () => {
  const a = busy(cal(
    ['DTSTART;TZID=Europe/Berlin:20250329T120000', 'DURATION:P1D'],
    ['DTSTART;TZID=Europe/Berlin:20250329T120000', 'DURATION:PT24H', 'STATUS:TENTATIVE'],
  ));
  assert.deepEqual(short(a), ['03-29T11:00/03-30T10:00 BUSY', '03-29T11:00/03-30T11:00 BUSY-TENTATIVE']);
});

test('floating and DATE values in the owner zone; zero length skipped', () => {
  const a = busy(cal(
    ['DTSTART:20250303T090000', 'DTEND:20250303T100000'],
    ['DTSTART;VALUE=DATE:20250310'],
    ['DTSTART:20250311T090000Z'],
  ), { tz: 'America/New_York' });
  assert.deepEqual(short(a), ['03-03T14:00/03-03T15:00 BUSY', '03-10T04:00/03-11T04:00 BUSY']);
});

test('Windows and Mozilla TZIDs without VTIMEZONE resolve', () => {
  const a = busy(cal(
    ['DTSTART;TZID=W. Europe Standard Time:20250303T090000', 'DTEND;TZID=W. Europe Standard Time:20250303T100000'],
    ['DTSTART;TZID=/mozilla.org/20070129_1/America/New_York:20250304T090000', 'DURATION:PT1H'],
  ));
  assert.deepEqual(short(a), ['03-03T08:00/03-03T09:00 BUSY', '03-04T14:00/03-04T15:00 BUSY']);
});

test('RANGE=THISANDFUTURE shifts later instances and carries properties', () => {
  const ics = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:x',
    'BEGIN:VEVENT', 'UID:r', 'DTSTAMP:20250101T000000Z', 'DTSTART:20250303T090000Z', 'DTEND:20250303T100000Z', 'RRULE:FREQ=WEEKLY;COUNT=3', 'END:VEVENT',
    'BEGIN:VEVENT', 'UID:r', 'DTSTAMP:20250101T000000Z', 'RECURRENCE-ID;RANGE=THISANDFUTURE:20250310T090000Z',
    'DTSTART:20250310T120000Z', 'DTEND:20250310T123000Z', 'STATUS:TENTATIVE', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
  assert.deepEqual(short(busy(ics)), [
    '03-03T09:00/03-03T10:00 BUSY', '03-10T12:00/03-10T12:30 BUSY-TENTATIVE', '03-17T12:00/03-17T12:30 BUSY-TENTATIVE']);
});

test('known ical.js deviations are reported, and corrected in rfc mode', () => {
  const ics = cal(['DTSTART;TZID=Europe/Berlin:20250311T090000', 'DTEND;TZID=Europe/Berlin:20250311T100000', 'RDATE;TZID=Europe/Berlin:20250312T090000']);
  const a = busy(ics);
  assert.deepEqual(short(a), ['03-12T08:00/03-12T09:00 BUSY']);
  assert.equal(a.deviations[0].kind, 'rdate-drops-dtstart');
  assert.deepEqual(short(busy(ics, { mode: 'rfc' })), ['03-11T08:00/03-11T09:00 BUSY', '03-12T08:00/03-12T09:00 BUSY']);
});

test('VFREEBUSY periods count with their FBTYPE', () => {
  const ics = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:x', 'BEGIN:VFREEBUSY', 'UID:f', 'DTSTAMP:20250101T000000Z',
    'FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250303T090000Z/PT1H', 'FREEBUSY;FBTYPE=FREE:20250304T090000Z/PT1H',
    'FREEBUSY:20250305T090000Z/20250305T100000Z', 'END:VFREEBUSY', 'END:VCALENDAR', ''].join('\r\n');
  assert.deepEqual(short(busy(ics)), ['03-03T09:00/03-03T10:00 BUSY-UNAVAILABLE', '03-05T09:00/03-05T10:00 BUSY']);
});

// msg is one stored message: a VCALENDAR whose events share the UID s.
function msg(...events) {
  return ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//fbpub//test//EN',
    ...events.flatMap((e) => ['BEGIN:VEVENT', 'UID:s', ...e, 'END:VEVENT']), 'END:VCALENDAR', ''].join('\r\n');
}

test('one UID across VCALENDARs: overrides, copies, EXDATE', () => {
  const series = (seq, hour, count, ...extra) => [`SEQUENCE:${seq}`, 'DTSTAMP:20250301T000000Z',
    `DTSTART:20250303T${hour}0000Z`, `DTEND:20250303T${hour}3000Z`, `RRULE:FREQ=DAILY;COUNT=${count}`, ...extra];
  const override = (rid, start, ...extra) => ['DTSTAMP:20250301T000000Z', `RECURRENCE-ID:${rid}`, `DTSTART:${start}`, 'DURATION:PT30M', ...extra];
  // The override in a message of its own replaces its instance.
  assert.deepEqual(short(busy(msg(series(0, 10, 2)) + msg(override('20250304T100000Z', '20250304T150000Z')), { owner: '' })),
    ['03-03T10:00/03-03T10:30 BUSY', '03-04T15:00/03-04T15:30 BUSY']);
  // Two copies of the series: the higher SEQUENCE, whatever the order,
  // and the older copy's override goes with it.
  const older = msg(series(1, 10, 2), override('20250304T100000Z', '20250304T150000Z'));
  const newer = msg(series(2, 12, 1));
  for (const ics of [older + newer, newer + older]) {
    assert.deepEqual(short(busy(ics, { owner: '' })), ['03-03T12:00/03-03T12:30 BUSY']);
  }
  // Two copies of one override: the later DTSTAMP; on a tie the later.
  const a = msg(override('20250304T100000Z', '20250304T150000Z'));
  const b = msg(override('20250304T100000Z', '20250304T160000Z').map((l) => l.replace('20250301T', '20250302T')));
  for (const ics of [a + b, b + a]) {
    assert.deepEqual(short(busy(msg(series(0, 10, 2)) + ics, { owner: '' })), ['03-03T10:00/03-03T10:30 BUSY', '03-04T16:00/03-04T16:30 BUSY']);
  }
  // An override of an instance the series EXDATEs does not count.
  assert.deepEqual(short(busy(msg(series(0, 10, 2, 'EXDATE:20250304T100000Z')) + a, { owner: '' })), ['03-03T10:00/03-03T10:30 BUSY']);
});

test('an override of another UID in the same VCALENDAR replaces nothing', () => {
  const ics = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//fbpub//test//EN',
    'BEGIN:VEVENT', 'UID:s', 'DTSTAMP:20250101T000000Z', 'DTSTART:20250303T100000Z', 'DTEND:20250303T110000Z', 'RRULE:FREQ=DAILY;COUNT=2', 'END:VEVENT',
    'BEGIN:VEVENT', 'UID:other', 'DTSTAMP:20250101T000000Z', 'RECURRENCE-ID:20250304T100000Z', 'DTSTART:20250304T150000Z', 'DTEND:20250304T160000Z', 'END:VEVENT',
    'END:VCALENDAR', ''].join('\r\n');
  assert.deepEqual(short(busy(ics, { owner: '' })),
    ['03-03T10:00/03-03T11:00 BUSY', '03-04T10:00/03-04T11:00 BUSY', '03-04T15:00/03-04T16:00 BUSY']);
});

test('line protocol: one answer per request line, errors do not stop it', async () => {
  const child = spawn(process.execPath, [join(HERE, 'busy.mjs')], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const done = new Promise((resolve) => child.on('close', resolve));
  child.stdin.write(JSON.stringify({ id: 'a', ics: cal(['DTSTART:20250303T090000Z', 'DTEND:20250303T100000Z']), start: '2025-03-01T00:00:00Z', end: '2025-04-01T00:00:00Z', tz: 'UTC' }) + '\n');
  child.stdin.write('not json\n');
  child.stdin.write(JSON.stringify({ id: 'c', ics: 'BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n', start: '2025-03-01T00:00:00Z', end: '2025-04-01T00:00:00Z', tz: 'UTC' }) + '\n');
  child.stdin.end();
  await done;
  const lines = out.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  assert.deepEqual(lines[0].periods, [{ start: '2025-03-03T09:00:00Z', end: '2025-03-03T10:00:00Z', type: 'BUSY' }]);
  assert.ok(lines[1].error);
  assert.equal(lines[2].id, 'c');
});
