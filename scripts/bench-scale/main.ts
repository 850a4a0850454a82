/**
 * `npm run bench:scale`: the dispatcher side at scale, on Debian's mosquitto (shipped ACL) and
 * redis-server, both started here on free loopback ports; with `--broker rabbitmq` on a 3-node
 * RabbitMQ cluster from deploy/rabbitmq instead, and with `--broker both` on each in turn, in one
 * run, so the two compare on the same machine under the same load.
 *
 * 1. Worker simulation: --workers lightweight mqtt.js volunteers in --procs child processes
 *    answer jobs with precomputed valid work after a search-like delay (a floor plus an
 *    exponential tail), against 1 dispatcher, 2 dispatchers that all see every result, and 2
 *    with $share/<group>/result/+ (Redis store throughout; not on RabbitMQ, which has no $share).
 *    On RabbitMQ the volunteers spread evenly over the nodes and each dispatcher is given every
 *    node, starting on a different one. Reports connections held, results checked per second,
 *    p50/p99 publish-to-accept latency (result publish -> client notice), the broker's CPU time
 *    (its processes and their children, from /proc) and memory per dispatcher.
 * 2. Dispatcher ceiling: one dispatcher, SQLite then Redis, fed precomputed invalid and valid
 *    results (one each per pending job, each job's pair from its own payout address, so no
 *    containment cuts the work short) as fast as the broker takes them: verified results/s.
 *    The dispatcher logs as in production (pino, info, to a file), a line per result.
 *
 * Options: --workers 1000 --procs 4 --jobs-per-s 5 --seconds 20 --min-delay 1000 --mean-delay 2000
 *          --ceiling-jobs 10000 --only scale|ceiling --broker mosquitto|rabbitmq|both --json <file>
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { randomBytes } from 'node:crypto';
import { encodeAddress } from '../../src/dpow/address.ts';
import { toU64Hex } from '../../src/pow/work.ts';
import { Mosquitto } from '../../src/testkit/mosquitto.ts';
import { RabbitCluster } from '../../src/testkit/rabbitmq.ts';
import { RedisServer } from '../../src/testkit/redis.ts';
import { sleep } from '../../src/testkit/wait.ts';
import { findBadWork, findWork, randomRoot } from '../../src/testkit/work.ts';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '1000' },
    procs: { type: 'string', default: '4' },
    'jobs-per-s': { type: 'string', default: '5' },
    seconds: { type: 'string', default: '20' },
    'min-delay': { type: 'string', default: '1000' },
    'mean-delay': { type: 'string', default: '2000' },
    'ceiling-jobs': { type: 'string', default: '10000' },
    only: { type: 'string' },
    broker: { type: 'string', default: 'mosquitto' },
    json: { type: 'string' },
  },
});
const WORKERS = Number(values.workers);
const PROCS = Number(values.procs);
const JOBS_PER_S = Number(values['jobs-per-s']);
const SECONDS = Number(values.seconds);
const CEILING_JOBS = Number(values['ceiling-jobs']);
const SCALE_DIFFICULTY = 0xff00000000000000n; // ~256 hashes to precompute each
const CEILING_DIFFICULTY = 0xf000000000000000n; // checking costs one hash whatever the difficulty
const here = import.meta.dirname;
const tmp = mkdtempSync(join(tmpdir(), 'dpow-bench-scale-'));
const say = (line: string) => process.stdout.write(`${line}\n`);

type Counters = { results: Record<string, number>; published: { work: number } };
interface DispatcherReading {
  counters: Counters;
  rssBytes: number;
  heapBytes: number;
  cpuMs: number;
}
interface DispatcherChild {
  child: ChildProcess;
  ask(): Promise<DispatcherReading>;
  precache(jobs: Array<[string, string]>): void;
  stop(): Promise<void>;
  /** The file its log lines go to. */
  logPath: string;
}

function once<T>(child: ChildProcess, pick: (m: Record<string, unknown>) => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`child exited ${code}`));
    const onMessage = (m: Record<string, unknown>) => {
      const v = pick(m);
      if (v !== undefined) {
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(v);
      }
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** The broker under test: where volunteers and dispatchers connect, and whether it has `$share`. */
interface BenchBroker {
  name: string;
  /** Volunteers are spread over these evenly. */
  workerUrls: string[];
  /** Every node: dispatcher i is given them all, starting on node i. */
  dispatcherUrls: string[];
  serverPassword: string;
  sharedSubscriptions: boolean;
  /** The broker's processes: its CPU time is theirs and their descendants'. */
  pids(): number[];
  close(): Promise<void>;
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU time (user + system, ms) of these processes and every live descendant, from /proc. */
function treeCpuMs(roots: number[]): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name may hold spaces and parentheses: the fields start after the last ')'.
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(entry), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // gone meanwhile
    }
  }
  const inTree = new Set(roots);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, s] of stats) {
      if (inTree.has(pid) || !inTree.has(s.ppid)) continue;
      inTree.add(pid);
      grew = true;
    }
  }
  let ticks = 0;
  for (const pid of inTree) ticks += stats.get(pid)?.ticks ?? 0;
  return (ticks * 1000) / CLOCK_TICKS;
}

async function startMosquitto(): Promise<BenchBroker> {
  // Results may burst faster than one dispatcher reads them: the broker must queue, not drop.
  const m = await Mosquitto.start({ extraConfig: 'max_queued_messages 0\nmax_inflight_messages 0' });
  return { name: 'Mosquitto', workerUrls: [m.tcpUrl], dispatcherUrls: [m.tcpUrl], serverPassword: m.secrets.server, sharedSubscriptions: true, pids: () => [m.process.pid!], close: () => m.close() };
}

async function startRabbitCluster(): Promise<BenchBroker> {
  const t0 = performance.now();
  const c = await RabbitCluster.start();
  say(`  3-node RabbitMQ cluster up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const urls = c.nodes.map((n) => n.mqttUrl);
  return { name: 'RabbitMQ, 3 nodes', workerUrls: urls, dispatcherUrls: urls, serverPassword: c.secrets.server, sharedSubscriptions: false, pids: () => c.nodes.flatMap((n) => (n.pid ? [n.pid] : [])), close: () => c.close() };
}

let dispatchersStarted = 0;

async function startDispatcher(broker: BenchBroker, store: string, group?: string): Promise<DispatcherChild> {
  // Its log lines go to a file, as a service's go to the journal: written, not thrown away.
  const logPath = join(tmp, `dispatcher-${++dispatchersStarted}.log`);
  const logFd = openSync(logPath, 'w');
  const urls = broker.dispatcherUrls;
  const first = dispatchersStarted % urls.length;
  const nodes = [...urls.slice(first), ...urls.slice(0, first)].join(',');
  const child = fork(join(here, 'dispatcher.ts'), [nodes, broker.serverPassword, store, ...(group ? [group] : [])], {
    execArgv: ['--import', 'tsx', ...(process.env.DPOW_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.DPOW_BENCH_PROFILE}`] : [])],
    stdio: ['ignore', 'inherit', logFd, 'ipc'],
  });
  closeSync(logFd);
  child.once('exit', (code) => {
    if (code) say(`dispatcher exited ${code}; its log: ${logPath}`);
  });
  await once(child, (m) => (m.ready ? true : undefined));
  return {
    child,
    logPath,
    ask: () => {
      const reply = once(child, (m) => (m.counters ? (m as unknown as DispatcherReading) : undefined));
      child.send({ cmd: 'counters' });
      return reply;
    },
    precache: (jobs) => child.send({ cmd: 'precache', jobs }),
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.send({ cmd: 'stop' });
      await exited;
    },
  };
}

const checked = (c: Counters) => Object.values(c.results).reduce((a, b) => a + b, 0);
const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);
const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

async function scale(broker: BenchBroker, redis: RedisServer, firstDb: number) {
  const runs = [
    { name: '1 dispatcher', dispatchers: 1, group: undefined },
    { name: '2 dispatchers, every result to both', dispatchers: 2, group: undefined },
    { name: '2 dispatchers, $share/dispatchers/result/+', dispatchers: 2, group: 'dispatchers' },
  ].filter((run) => broker.sharedSubscriptions || !run.group);
  const jobsPerRun = Math.ceil(JOBS_PER_S * SECONDS);
  say(`precomputing ${jobsPerRun * runs.length} works at ${toU64Hex(SCALE_DIFFICULTY)} …`);
  const table: Array<[string, string]> = [];
  for (let i = 0; i < jobsPerRun * runs.length; i++) {
    const root = randomRoot();
    table.push([root, findWork(root, SCALE_DIFFICULTY)]);
  }
  const tablePath = join(tmp, 'table.json');
  writeFileSync(tablePath, JSON.stringify(table));

  say(`${broker.name}: connecting ${WORKERS} simulated workers in ${PROCS} processes …`);
  const procs = Array.from({ length: PROCS }, (_, i) => {
    const n = Math.floor(WORKERS / PROCS) + (i < WORKERS % PROCS ? 1 : 0);
    return fork(join(here, 'workers.ts'), [broker.workerUrls.join(','), String(n), tablePath, values['min-delay']!, values['mean-delay']!], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
  });
  const connectStart = performance.now();
  await Promise.all(procs.map((p) => once(p, (m) => (m.connected ? true : undefined))));
  say(`  all connected in ${Math.round(performance.now() - connectStart)} ms`);
  const report = () =>
    Promise.all(
      procs.map((p) => {
        const r = once(p, (m) => (m.report ? (m.report as { connected: number; published: number; cancelledBeforePublish: number; latenciesMs: number[] }) : undefined));
        p.send({ cmd: 'report' });
        return r;
      }),
    );
  await report(); // reset
  let published = 0;

  const results = [];
  for (const [index, run] of runs.entries()) {
    const store = redis.url(firstDb + index);
    const dispatchers: DispatcherChild[] = [];
    for (let i = 0; i < run.dispatchers; i++) dispatchers.push(await startDispatcher(broker, store, run.group));
    await sleep(2500); // lease settled, subscriptions in place
    const before = await Promise.all(dispatchers.map((d) => d.ask()));
    const publishedBefore = published;
    const brokerCpuBefore = treeCpuMs(broker.pids());
    const jobs = table.slice(index * jobsPerRun, (index + 1) * jobsPerRun);
    say(`${run.name}: ${jobs.length} jobs at ${JOBS_PER_S}/s to ${WORKERS} workers …`);
    const t0 = performance.now();
    for (let i = 0; i < jobs.length; i++) {
      dispatchers[i % dispatchers.length].precache([[jobs[i][0], toU64Hex(SCALE_DIFFICULTY)]]);
      const due = t0 + ((i + 1) * 1000) / JOBS_PER_S;
      await sleep(Math.max(0, due - performance.now()));
    }
    await sleep(Number(values['min-delay']) + 4 * Number(values['mean-delay']) + 1000); // the tail of late results
    const elapsedS = (performance.now() - t0) / 1000;
    const brokerCpuMs = treeCpuMs(broker.pids()) - brokerCpuBefore;
    const after = await Promise.all(dispatchers.map((d) => d.ask()));
    const reports = await report();
    published = reports.reduce((n, r) => n + r.published, 0);
    const latencies = reports.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
    const perDispatcher = after.map((a, i) => ({
      checked: checked(a.counters) - checked(before[i].counters),
      accepted: a.counters.results.accepted - before[i].counters.results.accepted,
      duplicate: a.counters.results.duplicate - before[i].counters.results.duplicate,
      rssMiB: mib(a.rssBytes),
      heapMiB: mib(a.heapBytes),
    }));
    const row = {
      broker: broker.name,
      run: run.name,
      connectionsHeld: reports.reduce((n, r) => n + r.connected, 0),
      jobs: jobs.length,
      accepted: perDispatcher.reduce((n, d) => n + d.accepted, 0),
      resultsPublished: published - publishedBefore,
      resultsChecked: perDispatcher.reduce((n, d) => n + d.checked, 0),
      resultsCheckedPerS: Math.round(perDispatcher.reduce((n, d) => n + d.checked, 0) / elapsedS),
      p50Ms: Math.round(percentile(latencies, 50)),
      p99Ms: Math.round(percentile(latencies, 99)),
      // The broker's own work, load-independent: CPU seconds over the run, and per second of it.
      brokerCpuS: Math.round(brokerCpuMs / 100) / 10,
      brokerCores: Math.round((brokerCpuMs / 1000 / elapsedS) * 100) / 100,
      perDispatcher,
    };
    say(`  ${JSON.stringify(row)}`);
    results.push(row);
    for (const d of dispatchers) await d.stop();
  }
  for (const p of procs) p.send({ cmd: 'stop' });
  return results;
}

async function ceiling(broker: BenchBroker, redis: RedisServer, firstDb: number) {
  const rows = [];
  say(`precomputing ${CEILING_JOBS} valid and ${CEILING_JOBS} invalid works at ${toU64Hex(CEILING_DIFFICULTY)} …`);
  // One payout address per job, as from many volunteers: a stream of invalid results from one
  // address is a flood, and containing it would make the rest cost a map lookup, not a check.
  const jobs = Array.from({ length: CEILING_JOBS }, () => {
    const root = randomRoot();
    return { root, good: findWork(root, CEILING_DIFFICULTY), bad: findBadWork(root, CEILING_DIFFICULTY), address: encodeAddress(randomBytes(32)) };
  });
  for (const [index, store] of [join(tmp, `ceiling-sqlite-${firstDb}`), redis.url(firstDb)].entries()) {
    const name = index === 0 ? 'SQLite' : 'Redis';
    const d = await startDispatcher(broker, store);
    const batch = 1000;
    for (let i = 0; i < jobs.length; i += batch) d.precache(jobs.slice(i, i + batch).map((j) => [j.root, toU64Hex(CEILING_DIFFICULTY)]));
    for (;;) {
      if ((await d.ask()).counters.published.work >= jobs.length) break;
      await sleep(100);
    }
    await sleep(500);
    const start = await d.ask();
    const base = checked(start.counters);
    const publishers = await Promise.all(
      [0, 1, 2, 3].map((p) => mqtt.connectAsync(broker.workerUrls[p % broker.workerUrls.length], { username: 'client', password: 'client', protocolVersion: 4 })),
    );
    const total = jobs.length * 2;
    const t0 = performance.now();
    // Invalid first, then the valid one, per job: both are checked against the pending job.
    // Each publisher keeps up to IN_FLIGHT QoS 1 publishes outstanding: as fast as the broker
    // acknowledges them, without queueing all of them in the client at once.
    const IN_FLIGHT = 256;
    await Promise.all(
      publishers.map(async (c, p) => {
        const mine = jobs.filter((_, i) => i % publishers.length === p);
        for (let i = 0; i < mine.length; i += IN_FLIGHT / 2) {
          await Promise.all(
            mine.slice(i, i + IN_FLIGHT / 2).flatMap((j) => [
              c.publishAsync('result/precache', `${j.root},${j.bad},${j.address}`, { qos: 1 }),
              c.publishAsync('result/precache', `${j.root},${j.good},${j.address}`, { qos: 1 }),
            ]),
          );
        }
      }),
    );
    const publishedS = (performance.now() - t0) / 1000;
    let done = 0;
    let last = -1;
    let stalledSince = performance.now();
    let counters: Counters | undefined;
    while (done < total) {
      counters = (await d.ask()).counters;
      done = checked(counters) - base;
      if (done !== last) stalledSince = performance.now();
      else if (performance.now() - stalledSince > 10_000) break;
      last = done;
      await sleep(20);
    }
    const elapsedS = (performance.now() - t0) / 1000;
    const mem = await d.ask();
    const row = {
      broker: broker.name,
      store: name,
      results: total,
      checked: done,
      accepted: counters!.results.accepted,
      invalid: counters!.results['invalid-work'],
      ignored: counters!.results.ignored,
      publishS: Math.round(publishedS * 100) / 100,
      verifiedPerS: Math.round(done / elapsedS),
      // Load-independent: results per second of the dispatcher's own CPU time (user + system).
      verifiedPerCpuS: Math.round(done / ((mem.cpuMs - start.cpuMs) / 1000)),
      rssMiB: mib(mem.rssBytes),
      logLines: readFileSync(d.logPath, 'utf8').split('\n').length - 1,
    };
    say(`ceiling ${JSON.stringify(row)}`);
    rows.push(row);
    await Promise.all(publishers.map((p) => p.endAsync()));
    await d.stop();
  }
  return rows;
}

const BROKERS: Record<string, Array<() => Promise<BenchBroker>>> = {
  mosquitto: [startMosquitto],
  rabbitmq: [startRabbitCluster],
  both: [startMosquitto, startRabbitCluster],
};
const brokers = BROKERS[values.broker!];
if (!brokers) throw new Error(`--broker must be mosquitto, rabbitmq or both, got "${values.broker}"`);
const redis = await RedisServer.start();
try {
  say(`machine: ${availableParallelism()} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const out: Record<string, unknown> = { machine: { cores: availableParallelism(), loadavg: loadavg() }, options: values, scale: [], ceiling: [] };
  // One broker at a time, each with Redis databases of its own.
  for (const [i, start] of brokers.entries()) {
    const broker = await start();
    try {
      if (values.only !== 'ceiling') (out.scale as unknown[]).push(...(await scale(broker, redis, 1 + 4 * i)));
      if (values.only !== 'scale') (out.ceiling as unknown[]).push(...(await ceiling(broker, redis, 9 + i)));
    } finally {
      await broker.close();
    }
  }
  say(`machine after: load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  if (values.json) writeFileSync(values.json, `${JSON.stringify(out, null, 2)}\n`);
} finally {
  await redis.close();
  rmSync(tmp, { recursive: true, force: true });
}
