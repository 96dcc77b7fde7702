// graphile-worker on this machine's PostgreSQL: enqueue, drain (three option sets) and one job at
// a time, each in a fresh schema of its own (`<base>_<figure>`, dropped after the figure and, on
// any error, timeout or signal, at the end). One JSON line per figure on stdout.
//
// Run through scripts/peer-bench.sh (Node >= 22, graphile-worker and pg from target/peers/).
// Environment: see common.mjs and tests/peers/README.md.

// graphile-worker formats a log line per completed job unless this is set (read at import time).
process.env.NO_LOG_SUCCESS ??= '1';

import {
  cfg,
  rate,
  timedBatches,
  connect,
  cpuSince,
  cpuStart,
  deferred,
  emit,
  log,
  main,
  now,
  oneAtATime,
  pgUrl,
  pkgVersion,
  pollUntil,
  quoteIdent,
  round,
  runLog,
  state,
} from './common.mjs';

const { run, makeWorkerUtils, Logger } = await import('graphile-worker');

const PEER = 'graphile-worker';
const VERSION = pkgVersion('graphile-worker');
const base = process.env.PEER_BENCH_SCHEMA || `qm_peer_graphile_${process.pid}`;
const N = cfg.jobs;

// Warnings and errors only, to stderr.
const logger = new Logger((scope) => (level, message) => {
  if ((level === 'error' || level === 'warning') && !state.cleaning) log(`[graphile ${level}${scope.label ? ' ' + scope.label : ''}] ${message}`);
});

// The option sets of the drain. `default`: graphile-worker's defaults (concurrentJobs 1, no local
// queue, completions not batched). `c24`: the concurrency of its documented perfTest
// ("Without batching", concurrentJobs 24, maxPoolSize 25). `batched`: the same with the batching
// options of that perfTest ("With batching": localQueue.size 500, completeJobBatchDelay 0,
// failJobBatchDelay 0), the configuration its performance page reports its figures for. The
// installed version has no named batching preset: `WorkerPreset` is the defaults.
const DRAINS = [
  ['default', {}],
  ['c24', { concurrentJobs: 24, maxPoolSize: 25 }],
  [
    'batched',
    {
      concurrentJobs: 24,
      maxPoolSize: 25,
      localQueue: { size: 500 },
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
    },
  ],
];

const describe = (opts) =>
  Object.keys(opts).length === 0
    ? 'defaults (concurrentJobs 1)'
    : Object.entries(opts)
        .map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : v}`)
        .join(', ');

function specs(n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push({ identifier: 'noop', payload: {} });
  return out;
}

/** Makes the figure's schema (graphile-worker's migrations) and returns worker utils on it. */
async function setup(schema) {
  const utils = await makeWorkerUtils({ connectionString: pgUrl(schema), schema, logger });
  await utils.migrate();
  return utils;
}

async function dropSchema(db, schema) {
  await db.query(`drop schema if exists ${quoteIdent(schema)} cascade`);
}

async function remaining(db, schema) {
  const { rows } = await db.query(`select count(*)::int as n from ${quoteIdent(schema)}._private_jobs`);
  return rows[0].n;
}

async function addBacklog(utils, n) {
  for (let done = 0; done < n; done += cfg.batch) {
    await utils.addJobs(specs(Math.min(cfg.batch, n - done)));
  }
}

// a. `addJobs` of N no-op jobs in batches of cfg.batch.
async function enqueue() {
  const schema = `${base}_enqueue`;
  const db = await connect(schema);
  const utils = await setup(schema);
  try {
    const { secs, usage } = await timedBatches(specs, (b) => utils.addJobs(b));
    const n = await remaining(db, schema);
    if (n !== N) throw new Error(`enqueue: ${n} jobs in the table, expected ${N}`);
    emit({
      peer: PEER,
      version: VERSION,
      figure: 'enqueue',
      options: `addJobs, ${cfg.batch} per call`,
      ...rate(N, secs),
      ...usage,
    });
  } finally {
    await utils.release();
    await dropSchema(db, schema);
    await db.end();
  }
}

// b. a backlog of N jobs (inserted first, not timed), then one worker (`run`) from its start to the
// last job deleted from the table (graphile-worker deletes a job once it completed). The task
// counts its runs; once all N ran, the table is polled every 20 ms until it is empty, so the
// figure ends when the last completion is durable, not when the last task returned.
async function drain(label, workerOpts) {
  const schema = `${base}_drain_${label}`;
  const db = await connect(schema);
  const utils = await setup(schema);
  let runner = null;
  try {
    await addBacklog(utils, N);
    await utils.release();
    const n0 = await remaining(db, schema);
    if (n0 !== N) throw new Error(`drain ${label}: backlog of ${n0}, expected ${N}`);

    let ran = 0;
    const allRan = deferred();
    const taskList = {
      noop: async () => {
        if (++ran === N) allRan.resolve(now());
      },
    };
    const cpu = cpuStart();
    const t0 = now();
    runner = await run({
      connectionString: pgUrl(schema),
      schema,
      logger,
      taskList,
      parsedCronItems: [], // no crontab (not even a ./crontab file)
      noHandleSignals: true,
      preset: { worker: { ...workerOpts } },
    });
    const tStarted = now();
    runner.promise.catch((e) => allRan.reject(e));
    const tRan = await allRan.promise;
    const tDone = await pollUntil(async () => (await remaining(db, schema)) === 0, 20);
    const usage = cpuSince(cpu);
    const secs = (tDone - t0) / 1000;
    await runner.stop();
    runner = null;
    emit({
      peer: PEER,
      version: VERSION,
      figure: 'drain',
      options: `${label}: ${describe(workerOpts)}`,
      ...rate(N, secs),
      startup_secs: round((tStarted - t0) / 1000),
      last_ran_secs: round((tRan - t0) / 1000),
      ...usage,
    });
  } finally {
    if (runner) await runner.stop().catch((e) => log(`stop: ${e.message}`));
    await dropSchema(db, schema);
    await db.end();
  }
}

// c. one job at a time, with the worker running (default options, so concurrentJobs 1): `addJob`,
// then wait for the `job:success` event of that job and poll (every 1 ms) until its row is gone,
// i.e. its completion is durable. PEER_BENCH_WARMUP jobs first, not counted.
async function single() {
  const schema = `${base}_single`;
  const db = await connect(schema);
  const utils = await setup(schema);
  let runner = null;
  try {
    runner = await run({
      connectionString: pgUrl(schema),
      schema,
      logger,
      taskList: { noop: async () => {} },
      parsedCronItems: [],
      noHandleSignals: true,
    });
    const runs = runLog();
    runner.events.on('job:success', ({ job }) => runs.note(String(job.id)));
    const gone = async (id) =>
      (await db.query(`select 1 from ${quoteIdent(schema)}._private_jobs where id = $1`, [id])).rowCount === 0;
    const enqueue = async () => String((await utils.addJob('noop', {})).id);
    emit({
      peer: PEER,
      version: VERSION,
      figure: 'single',
      options: 'defaults; addJob, then job:success, then poll until the row is gone',
      ...(await oneAtATime(enqueue, runs, gone)),
    });
  } finally {
    if (runner) await runner.stop().catch((e) => log(`stop: ${e.message}`));
    await utils.release();
    await dropSchema(db, schema);
    await db.end();
  }
}

log(`[graphile] graphile-worker ${VERSION}, node ${process.version}, ${N} jobs, schemas ${base}_*`);
// The drain with default options is the slowest figure by far (a few hundred jobs/s): it runs
// last, so that if it hits the timeout, the other figures are already in.
const drains = Object.fromEntries(DRAINS.map(([label, opts]) => [label, () => drain(label, opts)]));
await main(base, [
  ['enqueue', enqueue],
  ['drain:c24', drains.c24],
  ['drain:batched', drains.batched],
  ['single', single],
  ['drain:default', drains.default],
]);
