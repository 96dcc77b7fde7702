// Shared helpers of the peer-queue harness (graphile.mjs, pgboss.mjs). Run through
// scripts/peer-bench.sh, which installs the peers and a Node 22 into target/peers/ and copies
// these files there so that their imports resolve.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

function int(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer, not ${raw}`);
  return v;
}

export const cfg = {
  jobs: int('PEER_BENCH_JOBS', 100000),
  single: int('PEER_BENCH_SINGLE', 2000),
  warmup: int('PEER_BENCH_WARMUP', 100),
  pg: process.env.PEER_BENCH_PG || 'postgres://postgres@127.0.0.1:5432/test',
  // Jobs per bulk insert: the same as the 10,000 jobs per `add_jobs` request of our own bench.
  batch: int('PEER_BENCH_BATCH', 10000),
  // No figure may take longer than this; the run then fails and still drops its schemas.
  figureTimeoutMs: int('PEER_BENCH_TIMEOUT_S', 600) * 1000,
  // Figures to run (comma-separated, e.g. `enqueue,drain:batched,single`); empty: all.
  figures: (process.env.PEER_BENCH_FIGURES || '').split(',').map((s) => s.trim()).filter(Boolean),
};

export const now = () => performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Whether to run `figure` (e.g. `drain:batched`, selected by `drain:batched` or by `drain`). */
export function wants(figure) {
  return cfg.figures.length === 0 || cfg.figures.includes(figure) || cfg.figures.includes(figure.split(':')[0]);
}

/** The version of an installed package (its package.json, found from its entry point). */
export function pkgVersion(name) {
  let dir = dirname(fileURLToPath(import.meta.resolve(name)));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (pkg.name === name) return pkg.version;
    } catch {
      // not here: one level up
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

/** The connection string with `application_name` set, so that the cleanup can find our sessions. */
export function pgUrl(appName) {
  const u = new URL(cfg.pg);
  u.searchParams.set('application_name', appName);
  return u.toString();
}

/** One JSON line per figure on stdout (everything else goes to stderr). */
export function emit(fields) {
  process.stdout.write(JSON.stringify(fields) + '\n');
}

export function log(...args) {
  console.error(...args);
}

/** Nearest-rank percentile of a sorted array (as in tests/benches/http.rs). */
export function pct(sorted, p) {
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(Math.max(rank, 1), n) - 1];
}

export const round = (x, digits = 3) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : null);

/** Runs `fn`, failing with a clear error if it takes longer than `ms`. */
export async function withTimeout(label, ms, fn) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: timed out after ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([fn(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` every `intervalMs` until it returns true. */
export async function pollUntil(check, intervalMs) {
  for (;;) {
    if (await check()) return now();
    await sleep(intervalMs);
  }
}

export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * When the worker ran each job: the worker's handler (or event) calls `note(id)`, the measuring
 * loop awaits `ran(id)`, whichever comes first.
 */
export function runLog() {
  const ranAt = new Map();
  const waiters = new Map();
  return {
    note(id) {
      const t = now();
      const w = waiters.get(id);
      if (w) w.resolve(t);
      else ranAt.set(id, t);
    },
    async ran(id) {
      const t = ranAt.get(id);
      if (t !== undefined) {
        ranAt.delete(id);
        return t;
      }
      const w = deferred();
      waiters.set(id, w);
      const at = await w.promise;
      waiters.delete(id);
      return at;
    },
  };
}

/**
 * The `single` figure: `enqueue()` adds one job and returns its id; wait until the worker ran it
 * (`log.ran`), then poll `isDone(id)` every 1 ms until its completion is in the table.
 * `cfg.warmup` jobs first, not counted. Returns the figure's fields (times in ms).
 */
export async function oneAtATime(enqueue, log, isDone) {
  const total = cfg.warmup + cfg.single;
  const done = [];
  const ran = [];
  let polls = 0;
  let cpu = null;
  let tFirst = 0;
  for (let i = 0; i < total; i++) {
    if (i === cfg.warmup) {
      cpu = cpuStart();
      tFirst = now();
    }
    const t0 = now();
    const id = await enqueue();
    const tRan = await log.ran(id);
    for (;;) {
      polls++;
      if (await isDone(id)) break;
      await sleep(1);
    }
    const t1 = now();
    if (i >= cfg.warmup) {
      done.push(t1 - t0);
      ran.push(tRan - t0);
    }
  }
  const secs = (now() - tFirst) / 1000;
  const usage = cpuSince(cpu);
  done.sort((a, b) => a - b);
  ran.sort((a, b) => a - b);
  return {
    jobs: cfg.single,
    secs: round(secs),
    jobs_per_s: Math.round(cfg.single / secs),
    p50_ms: round(pct(done, 50)),
    p99_ms: round(pct(done, 99)),
    max_ms: round(done[done.length - 1]),
    ran_p50_ms: round(pct(ran, 50)),
    ran_p99_ms: round(pct(ran, 99)),
    polls_per_job: round(polls / total, 2),
    ...usage,
  };
}

/** The fields of a throughput figure: `jobs` in `secs`. */
export const rate = (jobs, secs) => ({ jobs, secs: round(secs), jobs_per_s: Math.round(jobs / secs) });

/**
 * The `enqueue` figure's clock: `cfg.jobs` jobs in batches of `cfg.batch` made by `make(n)`
 * (not timed), then sent one batch after another with `send(batch)`. Returns `{ secs, usage }`.
 */
export async function timedBatches(make, send) {
  const batches = [];
  for (let done = 0; done < cfg.jobs; done += cfg.batch) batches.push(make(Math.min(cfg.batch, cfg.jobs - done)));
  const cpu = cpuStart();
  const t0 = now();
  for (const b of batches) await send(b);
  const secs = (now() - t0) / 1000;
  return { secs, usage: cpuSince(cpu) };
}

/** A pg client of our own (for counting and cleanup), tagged with `appName`. */
export async function connect(appName) {
  const client = new pg.Client({ connectionString: pgUrl(appName) });
  await client.connect();
  client.on('error', (e) => log(`[${appName}] pg client error: ${e.message}`));
  return client;
}

export const quoteIdent = (s) => '"' + s.replace(/"/g, '""') + '"';

/**
 * Drops the schema `base` and every schema `base_*`, after ending any session still tagged with
 * an application_name of that form (a worker a timeout left behind would otherwise block the
 * drop). Returns the names dropped.
 */
export async function dropSchemas(base) {
  const client = new pg.Client({ connectionString: pgUrl(`${base}_cleanup`) });
  await client.connect();
  try {
    await client.query("set lock_timeout = '10s'");
    const like = base.replace(/[\\%_]/g, (c) => '\\' + c) + '\\_%';
    await client.query(
      `select pg_terminate_backend(pid) from pg_stat_activity
        where pid <> pg_backend_pid() and (application_name = $1 or application_name like $2)
          and application_name <> $3`,
      [base, like, `${base}_cleanup`],
    );
    const { rows } = await client.query(
      'select nspname from pg_namespace where nspname = $1 or nspname like $2 order by 1',
      [base, like],
    );
    for (const { nspname } of rows) {
      await client.query(`drop schema if exists ${quoteIdent(nspname)} cascade`);
    }
    return rows.map((r) => r.nspname);
  } finally {
    await client.end();
  }
}

// ---- CPU accounting (Linux /proc): how much of the 2 cores PostgreSQL, this process and the rest
// of the machine used during a figure. PostgreSQL's share counts every `postgres` process, plus
// what the postmaster has reaped from backends that ended in between.
const CLK_TCK = 100;

function readStat(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const close = s.lastIndexOf(')');
  const comm = s.slice(s.indexOf('(') + 1, close);
  const f = s.slice(close + 2).split(' '); // f[0] = state (field 3)
  return { comm, ppid: Number(f[1]), utime: Number(f[11]), stime: Number(f[12]), cutime: Number(f[13]), cstime: Number(f[14]) };
}

function pgTicks() {
  const procs = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = readStat(name);
      if (st.comm === 'postgres') procs.set(Number(name), st);
    } catch {
      // gone meanwhile
    }
  }
  let ticks = 0;
  for (const st of procs.values()) {
    ticks += st.utime + st.stime;
    if (!procs.has(st.ppid)) ticks += st.cutime + st.cstime; // the postmaster
  }
  return ticks;
}

function machineBusyTicks() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy = all but idle and iowait
  return v.slice(0, 8).reduce((a, b) => a + b, 0) - v[3] - v[4];
}

export function cpuStart() {
  try {
    return { t: now(), pg: pgTicks(), busy: machineBusyTicks(), self: process.cpuUsage() };
  } catch {
    return null;
  }
}

/** Cores used since `start`: {pg_cores, peer_cores, other_cores} (each 0–2 on this machine). */
export function cpuSince(start) {
  if (!start) return {};
  try {
    const secs = (now() - start.t) / 1000;
    const pgS = (pgTicks() - start.pg) / CLK_TCK;
    const busyS = (machineBusyTicks() - start.busy) / CLK_TCK;
    const self = process.cpuUsage(start.self);
    const selfS = (self.user + self.system) / 1e6;
    return {
      pg_cores: round(pgS / secs, 2),
      peer_cores: round(selfS / secs, 2),
      other_cores: round(Math.max(0, busyS - pgS - selfS) / secs, 2),
    };
  } catch {
    return {};
  }
}

/** Set once the run is being torn down: the peers' own error logs are then muted. */
export const state = { cleaning: false };

/**
 * The common skeleton of a peer script: runs each figure under the timeout, drops the schemas
 * `base*` at the end (also on error, on a timeout and on SIGINT/SIGTERM), and exits.
 */
export async function main(base, figures) {
  let cleaning = null;
  const cleanup = () => {
    state.cleaning = true;
    cleaning ??= withTimeout('cleanup', 60000, () => dropSchemas(base)).then(
      (dropped) => log(`[${base}] dropped schemas: ${dropped.join(', ') || '(none)'}`),
      (e) => log(`[${base}] cleanup failed: ${e.message}`),
    );
    return cleaning;
  };
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      log(`[${base}] ${sig}: dropping the schemas and exiting`);
      // Then die of the signal, so that the calling shell stops too.
      cleanup().finally(() => {
        process.removeAllListeners(sig);
        process.kill(process.pid, sig);
      });
    });
  }
  // An error nobody awaited (e.g. in a peer's background loop) fails the figure; once the run is
  // being torn down (a worker a timeout left behind loses its connections), it is only noted.
  const fatal = deferred();
  fatal.promise.catch(() => {});
  const onStray = (e) => {
    if (state.cleaning) log(`[${base}] (while cleaning up) ${e?.message || e}`);
    else fatal.reject(e);
  };
  process.on('unhandledRejection', onStray);
  process.on('uncaughtException', onStray);
  let code = 0;
  try {
    for (const [name, fn] of figures) {
      if (!wants(name)) continue;
      log(`[${base}] ${name} ...`);
      await Promise.race([withTimeout(`${base} ${name}`, cfg.figureTimeoutMs, fn), fatal.promise]);
    }
  } catch (e) {
    log(`[${base}] FAILED: ${e.stack || e}`);
    code = 1;
  }
  await cleanup();
  process.exit(code);
}
