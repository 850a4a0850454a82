/**
 * No single point of failure, with real processes (docs/scaling.md, "No single point of
 * failure"): Redis with Sentinel (a primary, 2 replicas, 3 sentinels), a 3-node RabbitMQ cluster
 * from deploy/rabbitmq, two `dpow-web start` fronts (dispatcher + service API each) on the
 * Sentinel store, and three headless workers, each given every broker node (starting on a
 * different one). Service requests run in a loop against the live fronts while one process at a
 * time is killed with SIGKILL. After each kill:
 *
 * - every acknowledged answer has its stored work, and the credits equal the stored works (each
 *   credited exactly once);
 * - answers resume, and the longest gap between two answers around the kill is reported;
 * - the volunteers' heartbeat never pauses as long as their 5 s "server offline" timeout;
 * - volunteers whose node died reconnect to another by themselves (the time is reported).
 *
 * The kill of the broker node the dispatchers use waits for the dispatcher's own broker failover
 * (it takes one --broker today). The whole set takes about a minute to start here, so this file
 * runs only with `npm run test:nospof` (DPOW_NOSPOF=1).
 */
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeAddress } from '../dpow/address.ts';
import { DEFAULT_HEARTBEAT_TIMEOUT_S } from '../dpow/client.ts';
import { validateWork } from '../pow/work.ts';
import { CliProcess } from '../testkit/cli-process.ts';
import { loginToRabbit, RabbitCluster, skipWithoutRabbitmq } from '../testkit/rabbitmq.ts';
import { RedisSentinelGroup, skipWithoutSentinel } from '../testkit/redis-sentinel.ts';
import { addTestService } from '../testkit/services.ts';
import { waitFor } from '../testkit/wait.ts';
import { randomRoot } from '../testkit/work.ts';
import { RedisStore } from './store/redis-store.ts';

/** The Nano receive threshold, the lowest the service API takes: ~8M hashes a job. */
const DIFFICULTY = 'fffffe0000000000';
const enabled = process.env.DPOW_NOSPOF === '1';
if (!enabled) console.info('nospof.test.ts: skipped; `npm run test:nospof` runs it');
const skip = !enabled || skipWithoutSentinel('nospof.test.ts') || skipWithoutRabbitmq('nospof.test.ts');
const PASSWORD = randomBytes(9).toString('hex');

interface Answer {
  /** When the answer came back. */
  at: number;
  front: string;
  hash: string;
  status: number | 'connection';
  work?: string;
  error?: string;
}

async function ask(url: string, service: { user: string; key: string }, hash: string): Promise<Omit<Answer, 'at' | 'front'>> {
  try {
    const res = await fetch(`${url}service/`, { method: 'POST', body: JSON.stringify({ user: service.user, api_key: service.key, hash, difficulty: DIFFICULTY, timeout: 20 }) });
    const body = (await res.json()) as { work?: string; error?: string };
    return { hash, status: res.status, ...(body.work ? { work: body.work } : {}), ...(body.error ? { error: body.error } : {}) };
  } catch (err) {
    return { hash, status: 'connection', error: (err as Error).message };
  }
}

/** The time a worker printed on the first line matching `pattern` after `since` (its lines start with an ISO time). */
function printedAt(worker: CliProcess, pattern: RegExp, since: number): number | undefined {
  for (const line of worker.output.split('\n')) {
    const at = Date.parse(line.slice(0, 24));
    if (at >= since && pattern.test(line)) return at;
  }
  return undefined;
}

describe.skipIf(skip)('no single point of failure: one process killed at a time under load', () => {
  let group: RedisSentinelGroup;
  let cluster: RabbitCluster;
  let service: { user: string; key: string };
  const fronts = new Map<string, { process: CliProcess; url: string }>();
  const workers: CliProcess[] = [];
  const answers: Answer[] = [];
  const beats: number[] = [];
  const closeAtEnd: (() => unknown)[] = [];
  let looping = true;
  let loop: Promise<void> | undefined;

  beforeAll(async () => {
    [group, cluster] = await Promise.all([RedisSentinelGroup.start({ password: PASSWORD }), RabbitCluster.start()]);
    const storeUrl = group.url(0);
    const setup = await RedisStore.open(storeUrl, { credentials: { password: PASSWORD } });
    service = await addTestService(setup, {}, { N: 16, r: 1, p: 1 });
    await setup.close();

    // The volunteers' view of the server, from a node no test kills.
    const watcher: MqttClient = await loginToRabbit(cluster.nodes[2].mqttUrl, { username: 'dashboard', password: cluster.secrets.dashboard }, closeAtEnd);
    watcher.on('message', (topic) => topic === 'heartbeat' && beats.push(Date.now()));
    await watcher.subscribeAsync('heartbeat');

    const env = { DPOW_BROKER_PASSWORD: cluster.secrets.server, DPOW_REDIS_PASSWORD: PASSWORD };
    const front = async (name: string) => {
      const node = cluster.nodes[0];
      const process = CliProcess.start(
        ['start', '--broker', node.mqttUrl, '--broker-username', 'server', '--broker-public-url', node.wsUrl, '--store', storeUrl, '--port', '0', '--no-build', '--no-demo'],
        env,
      );
      closeAtEnd.push(() => process.kill('SIGKILL'));
      fronts.set(name, { process, url: (await process.waitForOutput(/running at (http:\/\/\S+\/)/, 60_000))[1] });
    };
    // b starts once a leads, so a is the elected one that a test kills.
    await front('a');
    await waitFor('heartbeats from a', () => beats.length >= 2, 60_000);
    await front('b');

    for (let i = 0; i < 3; i++) {
      const brokers = [0, 1, 2].map((j) => cluster.nodes[(i + j) % 3].mqttUrl).join(',');
      const worker = CliProcess.start(['worker', '--broker', brokers, '--address', encodeAddress(randomBytes(32)), '--backend', 'wasm', '--threads', '1']);
      closeAtEnd.push(() => worker.kill('SIGKILL'));
      workers.push(worker);
    }
    await Promise.all(workers.map((w, i) => w.waitForOutput(new RegExp(`Connected to ${cluster.nodes[i].mqttUrl}`), 60_000)));

    // Requests without pause, each to a live front in turn.
    loop = (async () => {
      for (let i = 0; looping; i++) {
        const live = [...fronts.entries()].filter(([, f]) => f.process.running);
        const [name, f] = live[i % live.length];
        const answer = await ask(f.url, service, randomRoot());
        answers.push({ at: Date.now(), front: name, ...answer });
      }
    })();
  }, 600_000);

  afterAll(async () => {
    looping = false;
    await loop;
    for (const close of closeAtEnd.reverse()) await close();
    await Promise.all([group?.close(), cluster?.close()]);
  });

  const summary: string[] = [];
  afterAll(() => summary.length && console.info(`no single point of failure:\n${summary.join('\n')}`));

  /** Kills, then waits for 5 answers after the kill, checks the store and reports the figures. */
  async function cycle(what: string, kill: () => Promise<void>, after?: (killedAt: number) => Promise<string>): Promise<void> {
    const answered = () => answers.filter((a) => a.work);
    await waitFor('answers before the kill', () => answered().length >= 3, 120_000);
    const killedAt = Date.now();
    await kill();
    await waitFor('5 answers after the kill', () => answered().filter((a) => a.at > killedAt).length >= 5, 120_000);
    await waitFor('a heartbeat after the kill', () => beats.at(-1)! > killedAt + 1000, 30_000);

    // The longest stall of answers from the last one before the kill to the fifth after it.
    const around = answered().filter((a) => a.at >= answered().filter((b) => b.at <= killedAt).at(-1)!.at);
    const answerGap = Math.max(...around.slice(1, 6).map((a, i) => a.at - around[i].at));
    const window = beats.filter((t) => t >= killedAt - 2000);
    const heartbeatGap = Math.max(...window.slice(1).map((t, i) => t - window[i]));
    const told = [...fronts.values()].flatMap((f) => f.process.output.split('\n').filter((l) => Date.parse(/"time":"([^"]+)"/.exec(l)?.[1] ?? '') >= killedAt - 1000));
    expect(heartbeatGap, `longest heartbeat gap after killing ${what}; the fronts said:\n${told.join('\n')}`).toBeLessThan(DEFAULT_HEARTBEAT_TIMEOUT_S * 1000);

    // Every acknowledged answer: valid, stored with that work, and the credits equal the stored works.
    const store = await RedisStore.open(group.url(0), { credentials: { password: PASSWORD } });
    const raw = createClient({ url: (await group.primary()).url(0), password: PASSWORD });
    await raw.connect();
    try {
      for (const a of answered()) {
        expect(validateWork(a.hash, a.work!, BigInt(`0x${DIFFICULTY}`)).valid).toBe(true);
        expect(await store.getWork(a.hash), `stored work for ${a.hash}`).toMatchObject({ work: a.work });
      }
      const works = (await raw.keys('dpow:work:*')).length;
      const credits = (await store.listClients()).reduce((n, c) => n + c.precache + c.ondemand, 0);
      expect(credits).toBe(works);
      expect(await store.getTotals()).toMatchObject({ ondemand: credits });
      const extra = after ? await after(killedAt) : '';
      summary.push(
        `  ${what}: ${answered().length} answers acknowledged, ${credits} credits for ${works} stored works; ` +
          `longest gap between answers ${answerGap} ms, longest heartbeat gap ${heartbeatGap} ms${extra}`,
      );
    } finally {
      await raw.close();
      await store.close();
    }
  }

  it('the Redis primary', { timeout: 300_000 }, async () => {
    let old: Awaited<ReturnType<RedisSentinelGroup['primary']>>;
    await cycle('the Redis primary', async () => {
      old = await group.primary();
      await old.stop('SIGKILL');
    });
    await group.restart(old!);
    await group.ready();
  });

  it('a broker node that only volunteers use', { timeout: 300_000 }, async () => {
    const node = cluster.nodes[1];
    await cycle(
      'a broker node of volunteers',
      () => node.kill(),
      async (killedAt) => {
        // Worker 1 started on this node: it reconnects to the next one by itself.
        const back = await waitFor('worker 1 on another node', () => printedAt(workers[1], new RegExp(`Connected to ${cluster.nodes[2].mqttUrl}`), killedAt), 60_000);
        return `; its volunteer reconnected in ${back - killedAt} ms`;
      },
    );
    await node.start();
    await cluster.ready();
  });

  it('the dispatcher that leads', { timeout: 300_000 }, async () => {
    await cycle('the leading dispatcher', () => fronts.get('a')!.process.kill('SIGKILL'));
  });

  it.todo('the broker node the dispatchers use: needs the dispatcher to fail over between broker nodes (it takes one --broker today)');
});
