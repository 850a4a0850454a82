/**
 * kill -9 under load: a real `dpow-web start --dispatcher-only` child process, fed demo jobs
 * (~70 a second) and solved by three workers, is killed with SIGKILL at a random moment and
 * started again, six times. After each kill, every result it acknowledged as accepted (the
 * client/<address> notice naming the block) is in the store, credited exactly once, and the
 * client credits add up to the accepted works.
 * Run on the SQLite default and on Redis.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeAddress } from '../dpow/address.ts';
import { CliProcess } from '../testkit/cli-process.ts';
import { cleanupsAfterEach } from '../testkit/cleanups.ts';
import { RedisServer, skipWithoutRedis } from '../testkit/redis.ts';
import { ReferenceWorker } from '../testkit/reference-worker.ts';
import { waitFor } from '../testkit/wait.ts';
import { Broker } from './broker.ts';
import type { BrokerUsers } from './broker-rules.ts';
import { RedisStore } from './store/redis-store.ts';
import { SqliteStore } from './store/sqlite-store.ts';
import { storePath } from './store/open-store.ts';
import type { DispatcherStore } from './store/store.ts';

const CYCLES = 6;
/** Acknowledged accepts per cycle before the kill, and a random extra wait so it lands anywhere in the stream. */
const ACKS_PER_CYCLE = 40;
const USERS: BrokerUsers = {
  server: { username: 'server', password: randomBytes(8).toString('hex') },
  client: { username: 'client', password: 'client' },
  dashboard: { username: 'dash', password: 'dash' },
};

const skipRedis = skipWithoutRedis('crash.test.ts');
let redis: RedisServer | undefined;
const cleanups = cleanupsAfterEach();

interface Backend {
  name: string;
  args: string[];
  open(): Promise<DispatcherStore>;
  /** How many works are stored with a payout address. */
  creditedWorks(store: DispatcherStore): Promise<number>;
}

function sqliteBackend(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'dpow-crash-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return {
    name: 'sqlite',
    args: ['--data', dir],
    open: async () => new SqliteStore(storePath(dir)),
    creditedWorks: async (store) =>
      ((store as SqliteStore).db.prepare('SELECT COUNT(*) AS n FROM work WHERE address IS NOT NULL').get() as { n: number }).n,
  };
}

function redisBackend(): Backend {
  const url = redis!.url(1);
  return {
    name: 'redis',
    args: ['--store', url],
    open: () => RedisStore.open(url),
    async creditedWorks() {
      const raw = createClient({ url });
      await raw.connect();
      try {
        let n = 0;
        for (const key of await raw.keys('dpow:work:*')) if (await raw.hExists(key, 'address')) n++;
        return n;
      } finally {
        await raw.close();
      }
    },
  };
}

async function crashLoop(backend: Backend): Promise<void> {
  // Three workers answer ~70 jobs a second between them, each far above a volunteer's rate: the
  // per-connection publish limit (abuse containment, tested on its own) would close them.
  const broker = await Broker.start({ users: USERS, tcpPort: 0, limits: { publishRate: { perSecond: 10_000, burst: 10_000 } } });
  cleanups.push(() => broker.close());
  const workers = await Promise.all(
    [0, 1, 2].map(() => ReferenceWorker.start({ brokerUrl: broker.tcpUrl!, username: 'client', password: 'client', address: encodeAddress(randomBytes(32)) })),
  );
  for (const w of workers) cleanups.push(() => w.stop());
  const args = [
    'start', '--dispatcher-only', '--broker', broker.tcpUrl!, '--broker-username', 'server', '--broker-password', USERS.server.password,
    ...backend.args,
    '--demo', '--demo-difficulty', 'ff00000000000000', '--demo-precache-every', '0.02', '--demo-ondemand-every', '0.05',
  ];
  /** Every (address, block) the dispatcher told a worker it accepted and credited. */
  const acknowledged = () =>
    workers.flatMap((w) => w.clientMessages.flatMap((m) => (m.kind === 'stats' && m.stats.block_rewarded ? [{ address: w.options.address, hash: m.stats.block_rewarded }] : [])));

  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const dispatcher = CliProcess.start(args);
    cleanups.push(() => dispatcher.kill('SIGKILL'));
    await dispatcher.waitForOutput(/dispatcher is running/);
    const before = acknowledged().length;
    // Under load: accepts keep arriving until the kill.
    await waitFor(`accepts in cycle ${cycle}`, () => acknowledged().length >= before + ACKS_PER_CYCLE, 60_000).catch((err: Error) => {
      const accepted = dispatcher.output.match(/accepted/g)?.length ?? 0;
      const refused = `broker refused ${broker.counters.refusedRate} publishes over the rate limit`;
      throw new Error(`${err.message}: ${acknowledged().length - before} acknowledged, ${accepted} accepted, ${refused}; dispatcher said:\n${dispatcher.output.slice(-1500)}`);
    });
    await new Promise((r) => setTimeout(r, Math.random() * 100));
    await dispatcher.kill('SIGKILL');

    const store = await backend.open();
    try {
      const acks = acknowledged();
      for (const { address, hash } of acks) {
        const work = await store.getWork(hash);
        expect(work, `acknowledged block ${hash} is stored (cycle ${cycle})`).toBeDefined();
        expect(work!.address).toBe(address);
      }
      const clients = await store.listClients();
      const credits = clients.reduce((n, c) => n + c.precache + c.ondemand, 0);
      const totals = await store.getTotals();
      expect(credits).toBe(await backend.creditedWorks(store));
      expect(totals.precache + totals.ondemand).toBe(credits);
      // Credits beyond the acknowledgements: accepts whose notice the kill cut off, or still in flight.
      console.info(`crash ${backend.name} cycle ${cycle}: ${acks.length} acknowledged so far, ${credits} credited, all stored`);
      // Exactly once: no block twice in the acknowledgements, and each worker's last notice
      // carries a counter no larger than what the store holds for it.
      expect(new Set(acks.map((a) => a.hash.toLowerCase())).size).toBe(acks.length);
      for (const w of workers) {
        const last = w.clientMessages.filter((m) => m.kind === 'stats').at(-1);
        const record = clients.find((c) => c.address === w.options.address);
        if (last?.kind === 'stats') expect(last.stats.precache + last.stats.ondemand).toBeLessThanOrEqual(record!.precache + record!.ondemand);
      }
    } finally {
      await store.close();
    }
  }
}

describe('kill -9 of the dispatcher under load', () => {
  it('loses no acknowledged result and credits each once (SQLite)', { timeout: 180_000 }, async () => {
    await crashLoop(sqliteBackend());
  });

  describe.skipIf(skipRedis)('on Redis', () => {
    beforeAll(async () => {
      redis = await RedisServer.start({ persist: true });
    });
    afterAll(async () => {
      await redis?.close();
    });
    it('loses no acknowledged result and credits each once (Redis)', { timeout: 180_000 }, async () => {
      await crashLoop(redisBackend());
    });
  });
});
