// pg-boss on this machine's PostgreSQL: enqueue, drain and one job at a time, each in a fresh
// schema of its own (`<base>_<figure>`, dropped after the figure and, on any error, timeout or
// signal, at the end). One JSON line per figure on stdout.
//
// Run through scripts/peer-bench.sh (Node >= 22, pg-boss and pg from target/peers/).
// Environment: see common.mjs and tests/peers/README.md.
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
  pkgVersion,
  pollUntil,
  quoteIdent,
  round,
  runLog,
  sleep,
  state,
} from './common.mjs';

const { PgBoss } = await import('pg-boss');

const PEER = 'pg-boss';
const VERSION = pkgVersion('pg-boss');
const base = process.env.PEER_BENCH_SCHEMA || `qm_peer_pgboss_${process.pid}`;
const N = cfg.jobs;
const QUEUE = 'noop';

// The option sets of the drain. pg-boss's default `work()` (batchSize 1, a fetch every 2 s, burst
// mode off) takes one job per poll, 0.5 jobs/s, so it is not measured. Both sets below poll at the
// shortest interval pg-boss allows (0.5 s) and use its burst mode (`burstWhenBatchFull`: fetch
// again at once while a fetch returns a full batch), without which every batch waits out the poll.
const DRAINS = [
  ['b100', { batchSize: 100, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true }],
  ['b1000x2', { batchSize: 1000, localConcurrency: 2, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true }],
];

const describe = (opts) =>
  Object.entries(opts)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');

const warned = new Set();
/** A started pg-boss on `schema` (its own migrations) with the queue created. */
async function startBoss(schema, extra = {}, queueOpts = {}) {
  const boss = new PgBoss({ connectionString: cfg.pg, application_name: schema, schema, ...extra });
  boss.on('error', (e) => state.cleaning || log(`[pg-boss error] ${e.message}`));
  boss.on('warning', (w) => {
    const key = w?.type || w?.message || String(w);
    if (warned.has(key)) return; // once per kind
    warned.add(key);
    log(`[pg-boss warning] ${w?.message || JSON.stringify(w)}`);
  });
  await boss.start();
  await boss.createQueue(QUEUE, queueOpts);
  return boss;
}

async function stopBoss(boss) {
  await boss.stop({ graceful: true, timeout: 10000, close: true }).catch((e) => log(`stop: ${e.message}`));
}

async function dropSchema(db, schema) {
  await db.query(`drop schema if exists ${quoteIdent(schema)} cascade`);
}

/** Jobs of the queue not yet completed (created, retry or active). */
async function pending(db, schema) {
  const { rows } = await db.query(
    `select count(*)::int as n from ${quoteIdent(schema)}.job where name = $1 and state in ('created', 'retry', 'active')`,
    [QUEUE],
  );
  return rows[0].n;
}

function inserts(n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push({ data: {} });
  return out;
}

async function addBacklog(boss, n) {
  for (let done = 0; done < n; done += cfg.batch) {
    await boss.insert(QUEUE, inserts(Math.min(cfg.batch, n - done)));
  }
}

// a. `insert` of N no-op jobs in batches of cfg.batch.
async function enqueue() {
  const schema = `${base}_enqueue`;
  const db = await connect(schema);
  let boss = null;
  try {
    boss = await startBoss(schema);
    const { secs, usage } = await timedBatches(inserts, (b) => boss.insert(QUEUE, b));
    const n = await pending(db, schema);
    if (n !== N) throw new Error(`enqueue: ${n} jobs in the table, expected ${N}`);
    emit({
      peer: PEER,
      version: VERSION,
      figure: 'enqueue',
      options: `insert, ${cfg.batch} per call`,
      ...rate(N, secs),
      ...usage,
    });
  } finally {
    if (boss) await stopBoss(boss);
    await dropSchema(db, schema);
    await db.end();
  }
}

// b. a backlog of N jobs (inserted first, not timed) into a started pg-boss, then one `work()`
// from its call to the last job completed. The handler counts the jobs it got; once all N ran,
// the table is polled every 20 ms until no job of the queue is left uncompleted, so the figure
// ends when the last completion is durable.
async function drain(label, workOpts) {
  const schema = `${base}_drain_${label}`;
  const db = await connect(schema);
  let boss = null;
  try {
    boss = await startBoss(schema);
    await addBacklog(boss, N);
    const n0 = await pending(db, schema);
    if (n0 !== N) throw new Error(`drain ${label}: backlog of ${n0}, expected ${N}`);

    let ran = 0;
    let batches = 0;
    const allRan = deferred();
    const cpu = cpuStart();
    const t0 = now();
    await boss.work(QUEUE, workOpts, async (jobs) => {
      batches++;
      ran += jobs.length;
      if (ran >= N) allRan.resolve(now());
    });
    const tRan = await allRan.promise;
    const tDone = await pollUntil(async () => (await pending(db, schema)) === 0, 20);
    const usage = cpuSince(cpu);
    const secs = (tDone - t0) / 1000;
    if (ran !== N) throw new Error(`drain ${label}: the handler got ${ran} jobs, expected ${N}`);
    emit({
      peer: PEER,
      version: VERSION,
      figure: 'drain',
      options: `${label}: ${describe(workOpts)}`,
      ...rate(N, secs),
      last_ran_secs: round((tRan - t0) / 1000),
      batches,
      ...usage,
    });
  } finally {
    if (boss) await stopBoss(boss);
    await dropSchema(db, schema);
    await db.end();
  }
}

// c. one job at a time with a worker running: `send`, then wait until the handler got that job and
// poll (every 1 ms) until it is `completed` in the table. With pg-boss's LISTEN/NOTIFY on
// (`useListenNotify`, queue `notify: true`), the fast path it documents; with polling alone a job
// waits for the next poll (0.5 s at the least). PEER_BENCH_WARMUP jobs first, not counted.
async function single() {
  const schema = `${base}_single`;
  const db = await connect(schema);
  let boss = null;
  try {
    boss = await startBoss(schema, { useListenNotify: true }, { notify: true });
    const runs = runLog();
    await boss.work(QUEUE, { batchSize: 1, pollingIntervalSeconds: 0.5 }, async ([job]) => runs.note(job.id));
    // Give the listener a moment to be established.
    await sleep(500);
    const completed = async (id) =>
      (
        await db.query(
          `select 1 from ${quoteIdent(schema)}.job where name = $1 and id = $2 and state = 'completed'`,
          [QUEUE, id],
        )
      ).rowCount === 1;
    emit({
      peer: PEER,
      version: VERSION,
      figure: 'single',
      options: 'useListenNotify, queue notify, batchSize 1; send, then the handler, then poll until completed',
      ...(await oneAtATime(() => boss.send(QUEUE, {}), runs, completed)),
    });
  } finally {
    if (boss) await stopBoss(boss);
    await dropSchema(db, schema);
    await db.end();
  }
}

log(`[pg-boss] pg-boss ${VERSION}, node ${process.version}, ${N} jobs, schemas ${base}_*`);
await main(base, [
  ['enqueue', enqueue],
  ...DRAINS.map(([label, opts]) => [`drain:${label}`, () => drain(label, opts)]),
  ['single', single],
]);
