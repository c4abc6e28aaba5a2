// The job-queue baseline of docs/PERFORMANCE.md (issue 18): N no-op jobs
// enqueued into graphile-worker, then drained by one worker at concurrency 10;
// prints the drain time. Not part of the test suite. Run it right before or
// after `ventana-bench stream --intents 100000 --database-url postgres://…`
// against the same server:
//
//   mkdir -p /tmp/gw && cd /tmp/gw && npm init -y && npm install graphile-worker@0.16.6
//   cp .../scripts/graphile-worker-drain.js . && N=100000 node graphile-worker-drain.js
//
// It drops and creates the database `gw_bench` on postgres://postgres@127.0.0.1:5432.
const { run, makeWorkerUtils, Logger } = require("graphile-worker");
const logger = new Logger(() => () => {});
const { Client } = require("pg");
const N = parseInt(process.env.N || "100000");
(async () => {
  const admin = new Client({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
  await admin.connect();
  await admin.query("DROP DATABASE IF EXISTS gw_bench");
  await admin.query("CREATE DATABASE gw_bench");
  await admin.end();
  const connectionString = "postgres://postgres@127.0.0.1:5432/gw_bench";
  const utils = await makeWorkerUtils({ connectionString, logger });
  await utils.migrate();
  const t0 = Date.now();
  for (let i = 0; i < N; i += 1000) {
    await utils.withPgClient((c) => c.query("SELECT graphile_worker.add_job('noop', json_build_object('n', g)) FROM generate_series($1::int, $2::int) g", [i + 1, Math.min(N, i + 1000)]));
  }
  console.log(`enqueued ${N} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await utils.release();
  let done = 0;
  const start = Date.now();
  let finish;
  const finished = new Promise((r) => (finish = r));
  const runner = await run({
    connectionString, logger, concurrency: 10, noHandleSignals: true, pollInterval: 1000,
    taskList: { noop: async () => { if (++done === N) finish(); } },
  });
  await finished;
  const s = (Date.now() - start) / 1000;
  console.log(`graphile-worker drained ${N} jobs in ${s.toFixed(1)} s (${(N / s).toFixed(0)} jobs/s), concurrency 10`);
  await runner.stop();
})().catch((e) => { console.error(e); process.exit(1); });
