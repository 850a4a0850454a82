/**
 * kill -9 of `dpow-web payout`, a real child process, at a random moment, over several payout
 * cycles, on SQLite and on Redis. Each cycle credits new work, then runs `payout` (or `payout
 * --resume` when a run is unfinished) until its run is done, killing up to two attempts:
 *
 *   - at the moment the node double books a send, before its answer is read (the window between
 *     the node sending and the ledger recording, which the send id covers);
 *   - a random moment after the k-th payment was printed as sent;
 *   - a random moment after the start (startup, planning, recording or sending).
 *
 * After every cycle the node's book and the ledger agree to the raw: each payment made exactly
 * one block, no id two, the source lost exactly what was recorded as sent, each volunteer holds
 * exactly their payments, and all the credited work is snapshotted.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RAW_PER_NANO } from '../dpow/nano-amount.ts';
import { CliProcess } from '../testkit/cli-process.ts';
import { cleanupsAfterEach, closeAfter } from '../testkit/cleanups.ts';
import { NanoNodeDouble } from '../testkit/nano-node.ts';
import { RedisServer, skipWithoutRedis } from '../testkit/redis.ts';
import { RedisStore } from '../server/store/redis-store.ts';
import { SqliteStore } from '../server/store/sqlite-store.ts';
import { storePath } from '../server/store/open-store.ts';
import type { DispatcherStore } from '../server/store/store.ts';

const CYCLES = 4;
const VOLUNTEERS = 12;
const KILLS_PER_CYCLE = 2;
const cleanups = cleanupsAfterEach();
const skipRedis = skipWithoutRedis('payout.crash.test.ts');
let redis: RedisServer | undefined;

interface Backend {
  name: string;
  args: string[];
  open(): Promise<DispatcherStore>;
}

type Kill = { at: 'booked'; send: number } | { at: 'printed'; sent: number; delayMs: number } | { at: 'started'; delayMs: number } | { at: 'never' };

function chooseKill(payments: number): Kill {
  const r = Math.random();
  if (r < 0.4) return { at: 'booked', send: 1 + Math.floor(Math.random() * payments) };
  if (r < 0.65) return { at: 'printed', sent: 1 + Math.floor(Math.random() * payments), delayMs: Math.random() * 30 };
  if (r < 0.9) return { at: 'started', delayMs: 300 + Math.random() * 2500 };
  return { at: 'never' };
}

const describeKill = (k: Kill) =>
  k.at === 'booked' ? `at send ${k.send} booked` : k.at === 'printed' ? `${k.delayMs.toFixed(0)} ms after sent line ${k.sent}` : k.at === 'started' ? `${k.delayMs.toFixed(0)} ms after start` : 'not killed';

async function withStore<T>(backend: Backend, fn: (store: DispatcherStore) => Promise<T>): Promise<T> {
  const store = await backend.open();
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function crashLoop(backend: Backend): Promise<void> {
  const node = closeAfter(cleanups, await NanoNodeDouble.start());
  // A little time per answer, so kills land among the sends rather than after them.
  node.delayMs = 15;
  const initial = 1000n * RAW_PER_NANO;
  const source = node.openAccount(initial);
  const wallet = node.createWallet([source]);
  const volunteers = Array.from({ length: VOLUNTEERS }, () => node.openAccount(0n));
  const args = (resume: boolean) => [
    'payout', ...backend.args, '--node', node.url, '--node-timeout', '10', '--retry-for', '60',
    ...(resume ? ['--resume'] : ['--source', source, '--amount', '7.654321', '--min', '0.000001']),
  ];
  let windowKills = 0;

  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const cycleStart = Date.now();
    await withStore(backend, async (store) => {
      for (const v of volunteers) {
        for (let i = 1 + Math.floor(Math.random() * 4); i > 0; i--) await store.creditClient(v, Math.random() < 0.7 ? 'precache' : 'ondemand', randomBytes(32).toString('hex'));
      }
    });
    const attempts: string[] = [];
    for (let kills = 0; ; ) {
      const state = await withStore(backend, async (store) => ({ open: await store.payouts.unfinishedRun(), latest: (await store.payouts.listRuns(1))[0] }));
      if (!state.open && state.latest && state.latest.createdAt >= cycleStart) break;
      const resume = state.open !== undefined;
      // The first attempt of the first cycle always dies in the window; the rest at random.
      const kill: Kill =
        cycle === 0 && attempts.length === 0 ? { at: 'booked', send: 1 + Math.floor(Math.random() * VOLUNTEERS) } : kills < KILLS_PER_CYCLE ? chooseKill(VOLUNTEERS) : { at: 'never' };
      const proc = CliProcess.start(args(resume), { DPOW_PAYOUT_WALLET: wallet });
      cleanups.push(() => proc.kill('SIGKILL'));
      let booked = 0;
      let killedInWindow = false;
      node.onBooked =
        kill.at === 'booked'
          ? () => {
              if (++booked === kill.send && proc.running) {
                // The node has made the block; its answer is not yet written. Dead before it can be recorded.
                proc.child.kill('SIGKILL');
                killedInWindow = true;
              }
            }
          : undefined;
      let timer: NodeJS.Timeout | undefined;
      if (kill.at === 'started') timer = setTimeout(() => proc.child.kill('SIGKILL'), kill.delayMs);
      if (kill.at === 'printed') {
        void proc
          .waitForOutput(new RegExp(`(?:^sent .*\\n){${kill.sent}}`, 'm'), 120_000)
          .then(() => (timer = setTimeout(() => proc.child.kill('SIGKILL'), kill.delayMs)))
          .catch(() => undefined);
      }
      const { code, signal } = await proc.exited;
      clearTimeout(timer);
      node.onBooked = undefined;
      // Answers the node had not sent when the payer died go nowhere now.
      node.releaseHeld();
      if (signal === 'SIGKILL') {
        kills++;
        if (killedInWindow) windowKills++;
        attempts.push(`${resume ? 'resume' : 'payout'} killed ${describeKill(kill)}`);
        continue;
      }
      expect(code, `${resume ? 'resume' : 'payout'} exited ${code}:\n${proc.output}`).toBe(0);
      attempts.push(`${resume ? 'resume' : 'payout'} finished`);
    }

    await withStore(backend, async (store) => {
      const runs = await store.payouts.listRuns(100);
      let sent = 0n;
      let payments = 0;
      const toVolunteer = new Map<string, bigint>();
      for (const { id } of runs) {
        const { run, payments: lines } = (await store.payouts.getRun(id))!;
        expect(run.status, `run ${id} (cycle ${cycle})`).toBe('done');
        for (const p of lines) {
          if (p.status === 'carried') continue;
          const block = node.blockForId(p.sendId!);
          expect(block?.hash, `${p.address} in run ${id}: recorded block is the node's block for its id`).toBe(p.block);
          expect(block?.amount).toBe(p.amount);
          sent += p.amount;
          payments++;
          toVolunteer.set(p.address, (toVolunteer.get(p.address) ?? 0n) + p.amount);
        }
      }
      expect(node.blocks.size, 'one block per payment: no send id made two').toBe(payments);
      expect(node.balance(source)).toBe(initial - sent);
      for (const v of volunteers) expect(node.receivable(v), v).toBe(toVolunteer.get(v) ?? 0n);
      for (const c of await store.listClients()) expect([c.snapshot_precache, c.snapshot_ondemand]).toEqual([c.precache, c.ondemand]);
      expect(runs.length).toBe(cycle + 1);
      console.info(`payout crash ${backend.name} cycle ${cycle}: ${attempts.join('; ')}; ${payments} payments in ${runs.length} runs, each sent once`);
    });
  }
  console.info(`payout crash ${backend.name}: ${windowKills} kills landed between the node making a block and the ledger recording it`);
  expect(windowKills).toBeGreaterThan(0);
}

describe('kill -9 of dpow-web payout at a random moment', () => {
  it('pays every address exactly once over several cycles (SQLite)', { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dpow-payout-crash-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    await crashLoop({ name: 'sqlite', args: ['--data', dir], open: async () => new SqliteStore(storePath(dir)) });
  });

  describe.skipIf(skipRedis)('on Redis', () => {
    beforeAll(async () => {
      redis = await RedisServer.start({ persist: true });
    });
    afterAll(async () => {
      await redis?.close();
    });
    it('pays every address exactly once over several cycles (Redis)', { timeout: 300_000 }, async () => {
      const url = redis!.url(2);
      await crashLoop({ name: 'redis', args: ['--store', url], open: () => RedisStore.open(url) });
    });
  });
});
