// run-corpus.mjs runs every case of internal/calendar/testdata/corpus/
// manifest.json through busy.mjs, in both modes, for every window, and
// writes the answers to corpus/expected/<file>.json (a reviewed snapshot
// that the Go tests may compare against when Node is absent).
//
//	node tools/oracle/run-corpus.mjs           # rewrite expected/*.json
//	node tools/oracle/run-corpus.mjs --check   # compare, exit 1 on any difference
//	node tools/oracle/run-corpus.mjs --print 81-range-thisandfuture.ics
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { answer } from './busy.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const CORPUS = join(HERE, '..', '..', 'internal', 'calendar', 'testdata', 'corpus');
const EXPECTED = join(CORPUS, 'expected');

const args = process.argv.slice(2);
const check = args.includes('--check');
const printIdx = args.indexOf('--print');
const only = printIdx >= 0 ? args[printIdx + 1] : null;

const manifest = JSON.parse(readFileSync(join(CORPUS, 'manifest.json'), 'utf8'));

export function runCase(c) {
  const ics = readFileSync(join(CORPUS, c.oracle), 'utf8');
  const windows = c.windows.map(([start, end], i) => {
    const base = { id: `${c.file}#${i}`, ics, start, end, tz: c.tz };
    if (c.owner) base.owner = c.owner;
    const a = answer({ ...base, mode: 'icaljs' });
    const r = answer({ ...base, mode: 'rfc' });
    const w = { start, end, periods: a.periods, rfc_periods: r.periods };
    if (a.error || r.error) w.error = a.error || r.error;
    if (a.deviations) w.deviations = a.deviations.map((d) => d.kind + ': ' + d.detail);
    if (a.truncated) w.truncated = true;
    return w;
  });
  return { file: c.file, oracle: c.oracle, tz: c.tz, owner: c.owner || '', windows };
}

// format writes one period per line, so reviews read as diffs of periods.
function format(got) {
  const out = [];
  const ps = (list) => list.length ? '[\n' + list.map((p) => '    ' + JSON.stringify(p)).join(',\n') + '\n   ]' : '[]';
  out.push('{', `  "file": ${JSON.stringify(got.file)},`, `  "oracle": ${JSON.stringify(got.oracle)},`,
    `  "tz": ${JSON.stringify(got.tz)},`, `  "owner": ${JSON.stringify(got.owner)},`, '  "windows": [');
  got.windows.forEach((w, i) => {
    const lines = [`   "start": ${JSON.stringify(w.start)}`, `   "end": ${JSON.stringify(w.end)}`,
      `   "periods": ${ps(w.periods)}`, `   "rfc_periods": ${ps(w.rfc_periods)}`];
    if (w.deviations) lines.push(`   "deviations": ${JSON.stringify(w.deviations)}`);
    if (w.truncated) lines.push('   "truncated": true');
    if (w.error) lines.push(`   "error": ${JSON.stringify(w.error)}`);
    out.push('  {', lines.join(',\n'), '  }' + (i + 1 < got.windows.length ? ',' : ''));
  });
  out.push('  ]', '}');
  const text = out.join('\n') + '\n';
  JSON.parse(text); // must stay valid JSON
  return text;
}

let failed = 0, errors = 0;
if (!check) mkdirSync(EXPECTED, { recursive: true });
for (const c of manifest) {
  if (only && c.file !== only) continue;
  const got = runCase(c);
  const text = format(got);
  for (const w of got.windows) if (w.error) { errors++; console.error(`${c.file} ${w.start}: error: ${w.error}`); }
  if (only) { process.stdout.write(text); continue; }
  const file = join(EXPECTED, c.file + '.json');
  if (check) {
    const want = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (want !== text) { failed++; console.error(`${c.file}: differs from expected/${c.file}.json`); }
  } else {
    writeFileSync(file, text);
  }
}
if (!only) console.log(`${manifest.length} cases, ${check ? failed + ' differ' : 'written'}, ${errors} errors`);
process.exit(failed || errors ? 1 : 0);
