/**
 * Failover with real processes: redis-server, Debian's mosquitto with the shipped ACL, two
 * `dpow-web start --broker … --store redis://… --shared-results` fronts (dispatcher + service
 * API each) and three headless `dpow-web worker`s. Service requests run in a loop against both
 * while the elected dispatcher is killed with SIGKILL:
 *
 * - every request to a live front gets valid work or the clear timeout error;
 * - no hash is answered twice with different work (some requests ask both fronts for one hash);
 * - the volunteers' heartbeat never pauses long enough for their "server offline" banner;
 * - the credits in Redis equal the accepted results.
 */
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeAddress } from '../dpow/address.ts';
import { DEFAULT_HEARTBEAT_TIMEOUT_S } from '../dpow/client.ts';
import { validateWork } from '../pow/work.ts';
import { CliProcess } from '../testkit/cli-process.ts';
import { Mosquitto, skipWithoutMosquitto } from '../testkit/mosquitto.ts';
import { RedisServer, skipWithoutRedis } from '../testkit/redis.ts';
import { addTestService } from '../testkit/services.ts';
import { waitFor } from '../testkit/wait.ts';
import { randomRoot } from '../testkit/work.ts';
import { RedisStore } from './store/redis-store.ts';

/** The Nano receive threshold, the lowest the service API takes: ~8M hashes a job. */
const DIFFICULTY = 'fffffe0000000000';
const skip = skipWithoutRedis('failover.test.ts') || skipWithoutMosquitto('failover.test.ts');

let redis: RedisServer;
let broker: Mosquitto;
const processes: CliProcess[] = [];

interface Outcome {
  front: string;
  hash: string;
  status: number | 'connection';
  work?: string;
  error?: string;
}

async function ask(url: string, service: { user: string; key: string }, hash: string): Promise<Omit<Outcome, 'front'>> {
  try {
    const res = await fetch(`${url}service/`, {
      method: 'POST',
      body: JSON.stringify({ user: service.user, api_key: service.key, hash, difficulty: DIFFICULTY, timeout: 20 }),
    });
    const body = (await res.json()) as { work?: string; error?: string };
    return { hash, status: res.status, ...(body.work ? { work: body.work } : {}), ...(body.error ? { error: body.error } : {}) };
  } catch (err) {
    return { hash, status: 'connection', error: (err as Error).message };
  }
}

describe.skipIf(skip)('two dispatchers on Redis and mosquitto, one killed', () => {
  beforeAll(async () => {
    [redis, broker] = await Promise.all([RedisServer.start({ persist: true }), Mosquitto.start()]);
  });
  afterAll(async () => {
    await Promise.all(processes.map((p) => p.kill('SIGKILL')));
    await Promise.all([redis?.close(), broker?.close()]);
  });

  it('answers every request with one work or a timeout, never shows volunteers offline, credits once', { timeout: 240_000 }, async () => {
    const url = redis.url(2);
    const setup = await RedisStore.open(url);
    const service = await addTestService(setup);
    await setup.close();

    // The volunteers' view of the server: every heartbeat's arrival.
    const watcher = await mqtt.connectAsync(broker.tcpUrl, { username: 'dashboard', password: broker.secrets.dashboard, protocolVersion: 4 });
    const beats: number[] = [];
    watcher.on('message', (topic) => topic === 'heartbeat' && beats.push(Date.now()));
    await watcher.subscribeAsync('heartbeat');

    const front = (name: string) => {
      const p = CliProcess.start([
        'start', '--broker', broker.tcpUrl, '--broker-username', 'server', '--broker-public-url', broker.wsUrl,
        '--store', url, '--shared-results', 'dispatchers', '--port', '0', '--no-build', '--no-demo',
      ], { DPOW_BROKER_PASSWORD: broker.secrets.server });
      processes.push(p);
      return { name, p };
    };
    const a = front('a');
    const aUrl = (await a.p.waitForOutput(/running at (http:\/\/\S+\/)/))[1];
    // b starts once a holds the lease, so a is the elected one that gets killed.
    await waitFor('heartbeats from a', () => beats.length >= 2, 30_000);
    const b = front('b');
    const bUrl = (await b.p.waitForOutput(/running at (http:\/\/\S+\/)/))[1];

    const addresses = [0, 1, 2].map(() => encodeAddress(randomBytes(32)));
    const workers = addresses.map((address) => {
      const w = CliProcess.start(['worker', '--broker', broker.wsUrl, '--address', address, '--backend', 'wasm', '--threads', '1']);
      processes.push(w);
      return w;
    });
    await Promise.all(workers.map((w) => w.waitForOutput(/connected|heartbeat|online/i, 60_000)));

    const outcomes: Outcome[] = [];
    let killedAt = 0;
    const fronts = { a: aUrl, b: bUrl };
    const loop = async (name: 'a' | 'b', rounds: number) => {
      for (let i = 0; i < rounds; i++) {
        const target = name === 'a' && killedAt ? 'b' : name;
        const hash = randomRoot();
        // Every third round asks both fronts for one hash at once: one job, one work.
        if (i % 3 === 2) {
          const targets = (['a', 'b'] as const).map((f) => (killedAt ? 'b' : f));
          const both = await Promise.all(targets.map((f) => ask(fronts[f], service, hash)));
          both.forEach((o, j) => outcomes.push({ front: targets[j], ...o }));
        } else {
          outcomes.push({ front: target, ...(await ask(fronts[target], service, hash)) });
        }
      }
    };
    const loops = Promise.all([loop('a', 6), loop('b', 6)]);
    await waitFor('some answers before the kill', () => outcomes.filter((o) => o.work).length >= 3, 120_000);
    killedAt = Date.now();
    await a.p.kill('SIGKILL');
    await loops;

    // Every request to a live front got work or the timeout error; only a's in flight at the
    // kill may have lost their connection.
    for (const o of outcomes) {
      if (o.status === 'connection') {
        expect(o.front, `${o.hash}: ${o.error}`).toBe('a');
        continue;
      }
      if (o.work) {
        expect(o.status).toBe(200);
        expect(validateWork(o.hash, o.work, BigInt(`0x${DIFFICULTY}`)).valid).toBe(true);
      } else {
        expect([o.status, o.error]).toEqual([504, 'Timeout reached without work']);
      }
    }
    const byHash = new Map<string, Set<string>>();
    for (const o of outcomes) if (o.work) byHash.set(o.hash, (byHash.get(o.hash) ?? new Set()).add(o.work));
    for (const [hash, works] of byHash) expect(works.size, `works for ${hash}`).toBe(1);
    expect(outcomes.filter((o) => o.work && o.front === 'b' && o.hash).length).toBeGreaterThan(0);

    // b took the singletons within the lease: heartbeats never paused as long as the banner's
    // timeout. The requests may all be answered before b's first beat, so wait for that beat;
    // the gap check below bounds how long it took.
    await waitFor('a heartbeat after the kill', () => beats.at(-1)! > killedAt, 10_000);
    const gaps = beats.slice(1).map((t, i) => t - beats[i]);
    expect(Math.max(...gaps)).toBeLessThan(DEFAULT_HEARTBEAT_TIMEOUT_S * 1000);
    expect(beats.at(-1)!).toBeGreaterThan(killedAt);
    for (const w of workers) expect(w.output).not.toMatch(/offline/i);
    const tally = (f: (o: Outcome) => boolean) => outcomes.filter(f).length;
    console.info(
      `failover: ${outcomes.length} requests, ${tally((o) => !!o.work)} answered, ${tally((o) => o.status === 504)} timed out, ` +
        `${tally((o) => o.status === 'connection')} cut off at the kill; longest heartbeat gap ${Math.max(...gaps)} ms`,
    );

    // Credits: every answered hash is stored; the credits add up to the accepted works.
    const store = await RedisStore.open(url);
    const raw = createClient({ url });
    await raw.connect();
    try {
      for (const hash of byHash.keys()) expect(await store.getWork(hash)).toMatchObject({ work: [...byHash.get(hash)!][0] });
      const credits = (await store.listClients()).reduce((n, c) => n + c.precache + c.ondemand, 0);
      expect(credits).toBe((await raw.keys('dpow:work:*')).length);
      expect(await store.getTotals()).toMatchObject({ ondemand: credits });
      expect(credits).toBeGreaterThanOrEqual(byHash.size);
    } finally {
      await raw.close();
      await store.close();
      await watcher.endAsync();
    }
  });
});
