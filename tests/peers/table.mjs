// Renders the JSON lines of graphile.mjs and pgboss.mjs (files given as arguments) as one
// markdown table on stdout.
import { readFileSync } from 'node:fs';

const rows = [];
for (const file of process.argv.slice(2)) {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    try {
      rows.push(JSON.parse(line));
    } catch {
      // not one of ours
    }
  }
}

const num = (x, digits = 0) =>
  x === undefined || x === null ? '' : Number(x).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const cols = [
  ['Peer', (r) => `${r.peer} ${r.version}`],
  ['Figure', (r) => r.figure],
  ['Options', (r) => r.options.replace(/\|/g, '\\|')],
  ['Jobs', (r) => num(r.jobs)],
  ['Secs', (r) => num(r.secs, 2)],
  ['Jobs/s', (r) => num(r.jobs_per_s)],
  ['p50 ms', (r) => num(r.p50_ms, 2)],
  ['p99 ms', (r) => num(r.p99_ms, 2)],
  ['CPU PG / peer / other (cores)', (r) => (r.pg_cores === undefined ? '' : `${num(r.pg_cores, 2)} / ${num(r.peer_cores, 2)} / ${num(r.other_cores, 2)}`)],
];
console.log(`| ${cols.map(([h]) => h).join(' | ')} |`);
console.log(`|${cols.map(() => '---').join('|')}|`);
for (const r of rows) console.log(`| ${cols.map(([, f]) => f(r)).join(' | ')} |`);
if (rows.length === 0) console.log('| (no figures) |');
