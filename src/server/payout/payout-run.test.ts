/**
 * Payout runs end with every address paid exactly once, whatever the node does: a timeout after
 * it sent, down for a while (and longer than the run waits), a refusal (Insufficient balance,
 * Wallet is locked, Account not found, a bad destination), on SQLite and on a real redis-server,
 * against the Nano node double over real HTTP. The double's own book is the witness: the source
 * lost exactly what the ledger says was sent, each volunteer received exactly their payments,
 * and no send id made two blocks.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { RAW_PER_NANO } from '../../dpow/nano-amount.ts';
import { breakChecksum } from '../../testkit/address.ts';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { NanoNodeDouble } from '../../testkit/nano-node.ts';
import { RedisServer, skipWithoutRedis } from '../../testkit/redis.ts';
import { waitFor, waitForAsync } from '../../testkit/wait.ts';
import { RedisStore } from '../store/redis-store.ts';
import { SqliteStore } from '../store/sqlite-store.ts';
import type { DispatcherStore } from '../store/store.ts';
import { NanoNodeRpc } from './node-rpc.ts';
import { preparePayout, PayoutRefused, resumePayout, startPayout, type PayoutDeps, type PayoutEvent, type PayoutRequest } from './payout-run.ts';

const cleanups = cleanupsAfterEach();
const skipRedis = skipWithoutRedis('payout-run.test.ts');
let redis: RedisServer | undefined;

const BACKENDS: { name: string; skip: boolean; open: () => Promise<DispatcherStore> }[] = [
  {
    name: 'SQLite',
    skip: false,
    open: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'dpow-payout-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      return new SqliteStore(join(dir, 'dpow.sqlite'));
    },
  },
  { name: 'Redis', skip: skipRedis, open: () => RedisStore.open(redis!.url(), { prefix: `p${randomBytes(4).toString('hex')}:` }) },
];

const NANO = RAW_PER_NANO;
const hash = () => randomBytes(32).toString('hex');

interface World {
  node: NanoNodeDouble;
  store: DispatcherStore;
  source: string;
  wallet: string;
  initial: bigint;
  volunteers: string[];
  events: PayoutEvent[];
  deps: PayoutDeps;
  request: PayoutRequest;
  credit(address: string, precache: number, ondemand?: number, weight?: number): Promise<void>;
}

async function world(open: () => Promise<DispatcherStore>, options: { volunteers?: number; timeoutMs?: number; retryForMs?: number } = {}): Promise<World> {
  const node = closeAfter(cleanups, await NanoNodeDouble.start());
  const store = closeAfter(cleanups, await open());
  const initial = 100n * NANO;
  const source = node.openAccount(initial);
  const wallet = node.createWallet([source]);
  const volunteers = Array.from({ length: options.volunteers ?? 3 }, () => node.openAccount(0n));
  const events: PayoutEvent[] = [];
  const deps: PayoutDeps = {
    store,
    node: new NanoNodeRpc(node.url, { timeoutMs: options.timeoutMs ?? 5000 }),
    wallet,
    retryForMs: options.retryForMs ?? 60_000,
    report: (e) => events.push(e),
  };
  return {
    node,
    store,
    source,
    wallet,
    initial,
    volunteers,
    events,
    deps,
    request: { source, pool: { amount: 3n * NANO }, min: 1n, weight: 'work' },
    async credit(address, precache, ondemand = 0, weight = 1) {
      for (let i = 0; i < precache; i++) await store.creditClient(address, 'precache', hash(), weight);
      for (let i = 0; i < ondemand; i++) await store.creditClient(address, 'ondemand', hash(), weight);
    },
  };
}

async function pay(w: World, request = w.request) {
  return startPayout(w.deps, await preparePayout(w.deps, request));
}

/** The node's book against the ledger: every payment sent once, in its own block, nothing else moved. */
async function expectPaidExactlyOnce(w: World): Promise<void> {
  const runs = await w.store.payouts.listRuns(100);
  let sent = 0n;
  const toAddress = new Map<string, bigint>();
  const ids = new Set<string>();
  for (const { id } of runs) {
    const { run, payments } = (await w.store.payouts.getRun(id))!;
    expect(run.status, `run ${id}`).toBe('done');
    for (const p of payments) {
      if (p.status === 'carried') {
        if (p.sendId) expect(w.node.blockForId(p.sendId), `carried ${p.address} was never sent`).toBeUndefined();
        continue;
      }
      expect(['sent', 'confirmed']).toContain(p.status);
      const block = w.node.blockForId(p.sendId!);
      expect(block?.hash, `${p.address} in run ${id}`).toBe(p.block);
      expect(block?.amount).toBe(p.amount);
      expect(block?.destination).toBe(p.address);
      ids.add(p.sendId!);
      sent += p.amount;
      toAddress.set(p.address, (toAddress.get(p.address) ?? 0n) + p.amount);
    }
  }
  expect(w.node.blocks.size, 'one block per payment, none twice').toBe(ids.size);
  expect(w.node.balance(w.source)).toBe(w.initial - sent);
  for (const [address, amount] of toAddress) expect(w.node.receivable(address)).toBe(amount);
}

describe.each(BACKENDS)('payout runs on $name', ({ skip, open }) => {
  beforeAll(async () => {
    if (!skip && !redis && !skipRedis) redis = await RedisServer.start();
  });
  afterAll(async () => {
    await redis?.close();
    redis = undefined;
  });

  it.skipIf(skip)('pays shares proportional to the works, exactly, then only new work', async () => {
    const w = await world(open);
    const [a, b, c] = w.volunteers;
    await w.credit(a, 3, 0);
    await w.credit(b, 1, 1);
    await w.credit(c, 0, 1);
    const outcome = await pay(w);
    expect(outcome.stopped).toBeUndefined();
    expect(outcome.payments.map((p) => [p.address, p.amount, p.status])).toEqual([
      [a, 3n * NANO / 2n, 'confirmed'],
      [b, NANO, 'confirmed'],
      [c, NANO / 2n, 'confirmed'],
    ]);
    expect(await w.store.getClient(a)).toMatchObject({ snapshot_precache: 3 });
    await w.credit(c, 2);
    const second = await pay(w, { ...w.request, pool: { fraction: { numerator: 1n, denominator: 97n } } });
    // A fraction of what account_balance reports: 97 NANO left, so 1 NANO, all to c.
    expect(second.payments.map((p) => [p.address, p.amount])).toEqual([[c, NANO]]);
    await expectPaidExactlyOnce(w);
  });

  it.skipIf(skip)('pays shares proportional to difficulty with weight difficulty', async () => {
    const w = await world(open);
    const [a, b] = w.volunteers;
    await w.credit(a, 2, 0, 1);
    await w.credit(b, 0, 1, 4);
    const outcome = await pay(w, { ...w.request, weight: 'difficulty' });
    expect(outcome.payments.map((p) => [p.address, p.amount])).toEqual([
      [b, 2n * NANO],
      [a, NANO],
    ]);
    expect(outcome.run).toMatchObject({ weight: 'difficulty', pool: 3n * NANO });
    await expectPaidExactlyOnce(w);
  });

  it.skipIf(skip)('carries dust below --min, an unopened account’s share and a refused address; skips a bad checksum', async () => {
    const w = await world(open);
    const [a, b, refused] = w.volunteers;
    const unopened = encodeAddress(randomBytes(32));
    const typo = breakChecksum(encodeAddress(randomBytes(32)));
    await w.credit(a, 999);
    await w.credit(b, 1);
    await w.credit(unopened, 1000);
    await w.credit(refused, 1000);
    await w.credit(typo, 50);
    w.node.failNext('send', 'Bad destination account');
    // The first send (the largest share that can be paid: `refused`) is answered "Bad destination
    // account": that payment is carried and the run goes on.
    const prepared = await preparePayout(w.deps, { ...w.request, min: NANO / 500n });
    expect(prepared.plan.skipped).toEqual([{ address: typo, reason: expect.stringMatching(/checksum/) }]);
    const outcome = await startPayout(w.deps, prepared);
    expect(outcome.stopped).toBeUndefined();
    const by = Object.fromEntries(outcome.payments.map((p) => [p.address, p]));
    expect(by[b]).toMatchObject({ status: 'carried', reason: 'below the minimum' });
    expect(by[unopened]).toMatchObject({ status: 'carried', reason: expect.stringMatching(/not opened/) });
    const bounced = outcome.payments.find((p) => p.reason?.includes('Bad destination account'))!;
    expect(bounced).toMatchObject({ address: refused, status: 'carried' });
    const carries = await w.store.payouts.carries();
    expect(carries.get(b)).toBe(by[b].amount);
    expect(carries.get(bounced.address)).toBe(bounced.amount);
    // Sent + carried is the pool, to the raw; the typo's work stays counted for when it is fixed.
    expect(outcome.payments.reduce((s, p) => s + p.amount, 0n)).toBe(3n * NANO);
    expect(await w.store.getClient(typo)).toMatchObject({ precache: 50, snapshot_precache: 0 });

    // Next run: the unopened account was opened meanwhile; b's dust has grown past the minimum.
    w.node.openAccount(0n, unopened);
    await w.credit(b, 2);
    const next = await pay(w, { ...w.request, min: NANO / 500n, pool: { amount: NANO / 1000n } });
    const paid = Object.fromEntries(next.payments.map((p) => [p.address, p]));
    expect(paid[unopened]).toMatchObject({ status: 'confirmed', carriedIn: by[unopened].amount, amount: by[unopened].amount });
    expect(paid[b]).toMatchObject({ status: 'confirmed', carriedIn: by[b].amount, amount: by[b].amount + NANO / 1000n });
    expect((await w.store.payouts.carries()).has(b)).toBe(false);
    await expectPaidExactlyOnce(w);
  });

  it.skipIf(skip)('survives a timeout after the node sent: the retry with the same id gets the same block', async () => {
    const w = await world(open, { timeoutMs: 300 });
    for (const v of w.volunteers) await w.credit(v, 1);
    w.node.holdSends(1);
    const outcome = await pay(w);
    expect(outcome.stopped).toBeUndefined();
    const first = outcome.payments[0];
    expect(w.node.requests.filter((r) => r.action === 'send' && r.body.id === first.sendId)).toHaveLength(2);
    expect(w.events.some((e) => e.kind === 'waiting' && /no answer within 300 ms/.test(e.message))).toBe(true);
    await expectPaidExactlyOnce(w);
  });

  it.skipIf(skip)('waits for a node that goes down mid-run, and goes on when it is back', async () => {
    const w = await world(open);
    for (const v of w.volunteers) await w.credit(v, 1);
    // Down at the moment the first send is booked: its answer is lost with the connection.
    w.node.onBooked = () => {
      w.node.onBooked = undefined;
      void w.node.down();
    };
    const running = pay(w);
    await waitFor('the run to wait for the node twice', () => w.events.filter((e) => e.kind === 'waiting').length >= 2, 30_000);
    await w.node.up();
    const outcome = await running;
    expect(outcome.stopped).toBeUndefined();
    await expectPaidExactlyOnce(w);
  });

  it.skipIf(skip)('stops cleanly when the node stays down longer than it waits, and a resume finishes', async () => {
    const w = await world(open, { retryForMs: 1500 });
    for (const v of w.volunteers) await w.credit(v, 1);
    let booked = 0;
    w.node.onBooked = () => {
      if (++booked === 2) void w.node.down();
    };
    const outcome = await pay(w);
    expect(outcome.stopped).toMatch(/gave no answer for \d+ s/);
    expect(outcome.run).toMatchObject({ status: 'stopped', error: outcome.stopped });
    expect(outcome.payments.filter((p) => p.status !== 'planned')).toHaveLength(1);
    await expect(preparePayout(w.deps, w.request)).rejects.toThrow(/not finished: finish it first with dpow-web payout --resume/);
    await w.node.up();
    const resumed = await resumePayout(w.deps);
    expect(resumed?.run.status).toBe('done');
    await expectPaidExactlyOnce(w);
  });

  it.skipIf(skip)('stops on the node’s refusals with their message, keeps what was sent, and a resume finishes once fixed', async () => {
    const w = await world(open, { volunteers: 4 });
    for (const v of w.volunteers) await w.credit(v, 1);
    // Insufficient balance after two sends: something else spent from the source.
    let booked = 0;
    w.node.onBooked = () => {
      if (++booked === 2) w.node.setBalance(w.source, 1n);
    };
    const outcome = await pay(w);
    expect(outcome.stopped).toMatch(/^the node answered "Insufficient balance" to the payment to nano_/);
    expect(outcome.payments.map((p) => p.status)).toEqual(['sent', 'sent', 'planned', 'planned']);
    expect(w.node.blocks.size).toBe(2);
    w.node.onBooked = undefined;

    w.node.setBalance(w.source, 10n * NANO);
    w.initial = 10n * NANO + 3n * NANO / 2n; // the book after the operator topped the source up
    w.node.lockWallet(w.wallet, true);
    expect((await resumePayout(w.deps))?.stopped).toMatch(/"Wallet is locked"/);
    w.node.lockWallet(w.wallet, false);
    w.node.failNext('send', 'Account not found');
    expect((await resumePayout(w.deps))?.stopped).toMatch(/"Account not found"/);
    const done = await resumePayout(w.deps);
    expect(done?.run.status).toBe('done');
    expect(done?.payments.every((p) => p.status === 'confirmed')).toBe(true);
    await expectPaidExactlyOnce(w);
    expect(await resumePayout(w.deps)).toBeUndefined();
  });

  it.skipIf(skip)('refuses a second run for the same snapshot, and a run the source cannot pay', async () => {
    const w = await world(open);
    for (const v of w.volunteers) await w.credit(v, 2);
    const first = await preparePayout(w.deps, w.request);
    const twin = await preparePayout(w.deps, w.request);
    await startPayout(w.deps, first);
    await expect(startPayout(w.deps, twin)).rejects.toThrow(/already being paid/);
    const again = await preparePayout(w.deps, w.request);
    await expect(startPayout(w.deps, again)).rejects.toMatchObject({ nothingToPay: true });
    await w.credit(w.volunteers[0], 1);
    await expect(pay(w, { ...w.request, pool: { amount: 1000n * NANO } })).rejects.toThrow(
      new PayoutRefused('the source holds 97 NANO and the payments need 1000 NANO'),
    );
    expect((await w.store.payouts.listRuns(10)).length).toBe(1);
    await expectPaidExactlyOnce(w);
  });

  it.skipIf(skip)('marks payments confirmed when block_info says so, on a later resume of a done run', async () => {
    const w = await world(open);
    for (const v of w.volunteers) await w.credit(v, 1);
    w.node.autoConfirm = false;
    const outcome = await pay(w);
    expect(outcome.run.status).toBe('done');
    expect(outcome.payments.map((p) => p.status)).toEqual(['sent', 'sent', 'sent']);
    for (const p of outcome.payments) w.node.confirm(p.block!);
    const checked = await resumePayout(w.deps, outcome.run.id);
    expect(checked?.payments.map((p) => p.status)).toEqual(['confirmed', 'confirmed', 'confirmed']);
    await expectPaidExactlyOnce(w);
  });
});

describe.skipIf(skipRedis)('a payout run when Redis goes away', () => {
  let persistent: RedisServer;
  beforeAll(async () => {
    persistent = await RedisServer.start({ persist: true });
  });
  afterAll(async () => {
    await persistent?.close();
  });

  it('stops cleanly when the node sent but the ledger could not record it, and the resume records the same block', async () => {
    const w = await world(() => RedisStore.open(persistent.url(), { prefix: `o${randomBytes(4).toString('hex')}:` }));
    for (const v of w.volunteers) await w.credit(v, 1);
    let booked = 0;
    w.node.onBooked = () => {
      if (++booked !== 2) return;
      // The node has made the second block; its answer waits until Redis is down.
      w.node.holdSends(1);
      void persistent.stop().then(() => w.node.releaseHeld());
    };
    const outcome = await pay(w);
    expect(outcome.stopped).toMatch(/^recording the payment to nano_\w+ failed: /);
    expect(w.node.blocks.size).toBe(2);
    w.node.onBooked = undefined;
    await persistent.start();
    await waitForAsync('the store back', () => w.store.payouts.unfinishedRun().catch(() => undefined), 20_000);
    const resumed = await resumePayout(w.deps);
    expect(resumed?.run.status).toBe('done');
    expect(w.node.blocks.size).toBe(3);
    await expectPaidExactlyOnce(w);
  });
});
