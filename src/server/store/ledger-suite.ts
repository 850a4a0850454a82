/**
 * The payout ledger's behaviour (payout-ledger.ts), run by the shared store suite against every
 * store (memory, SQLite, Redis). Test-only: imported by *.test.ts files, never by the product.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_RAW } from '../../dpow/nano-amount.ts';
import { PayoutConflict, type NewPayoutRun } from './payout-ledger.ts';
import type { DispatcherStore } from './store.ts';

const ADDR = 'nano_1111111111111111111111111111111111111111111111111111hifc8npp';
const ADDR_B = 'nano_3t6k35gi95xu6tergt6p69ck76ogmitsa8mnijtpxm9fkcm736xtoncuohr3';
const SOURCE = 'nano_3qb6o6i1tkzr6jwr5s7eehfxwg9x6eemitdinbpi7u8bjjwsgqfj4wzser3x';
const BLOCK = 'A1'.repeat(32);
/** Above 2^64: no store number type may touch it on the way. */
const BIG = 123_456_789_012_345_678_901_234_567_890n;

/** A run paying ADDR (3 precache works) and carrying dust to ADDR_B (1 ondemand work). */
function newRun(id: string, createdAt: number, previous = { a: { precache: 0, ondemand: 0 }, b: { precache: 0, ondemand: 0 } }): NewPayoutRun {
  return {
    run: { id, createdAt, source: SOURCE, weight: 'work', pool: BIG + 5n, min: 10n },
    payments: [
      { seq: 0, address: ADDR, precache: 3, ondemand: 0, amount: BIG, carriedIn: 0n, status: 'planned', sendId: `dpow-web:${id}:${ADDR}` },
      { seq: 1, address: ADDR_B, precache: 0, ondemand: 1, amount: 5n, carriedIn: 0n, status: 'carried', reason: 'below the minimum' },
    ],
    snapshot: [
      { entry: { address: ADDR, precache: previous.a.precache + 3, weighted_precache: previous.a.precache + 3 }, previous: previous.a },
      { entry: { address: ADDR_B, ondemand: previous.b.ondemand + 1 }, previous: previous.b },
    ],
    carries: [{ address: ADDR_B, previous: 0n, next: 5n }],
  };
}

export function describePayoutLedger(name: string, make: () => DispatcherStore | Promise<DispatcherStore>): void {
  describe(`${name}: the payout ledger`, () => {
    let store: DispatcherStore;
    afterEach(async () => {
      await store?.close().catch(() => {});
    });
    const open = async () => {
      store = await make();
      for (let i = 0; i < 3; i++) await store.creditClient(ADDR, 'precache', BLOCK);
      await store.creditClient(ADDR_B, 'ondemand', BLOCK);
      return store.payouts;
    };

    it('records a run whole: the run, its payments, the snapshot it pays and the carries it moves', async () => {
      const ledger = await open();
      await ledger.createRun(newRun('r1', 1000));
      const recorded = await ledger.getRun('r1');
      expect(recorded?.run).toEqual({ id: 'r1', createdAt: 1000, source: SOURCE, weight: 'work', pool: BIG + 5n, min: 10n, status: 'sending' });
      expect(recorded?.payments).toEqual([
        { runId: 'r1', seq: 0, address: ADDR, precache: 3, ondemand: 0, amount: BIG, carriedIn: 0n, status: 'planned', sendId: `dpow-web:r1:${ADDR}` },
        { runId: 'r1', seq: 1, address: ADDR_B, precache: 0, ondemand: 1, amount: 5n, carriedIn: 0n, status: 'carried', reason: 'below the minimum' },
      ]);
      expect(await store.getClient(ADDR)).toMatchObject({ precache: 3, snapshot_precache: 3, snapshot_weighted_precache: 3, snapshot_ondemand: 0 });
      expect(await store.getClient(ADDR_B)).toMatchObject({ snapshot_ondemand: 1 });
      expect(await ledger.carries()).toEqual(new Map([[ADDR_B, 5n]]));
      expect((await ledger.unfinishedRun())?.id).toBe('r1');
      expect((await ledger.listRuns(10)).map((r) => r.id)).toEqual(['r1']);
      expect(await ledger.getRun('nope')).toBeUndefined();
    });

    it('refuses a run while another is unfinished, or when the snapshot or a carry moved, writing nothing', async () => {
      const ledger = await open();
      await ledger.createRun(newRun('r1', 1000));
      const second = newRun('r2', 2000, { a: { precache: 3, ondemand: 0 }, b: { precache: 0, ondemand: 1 } });
      await expect(ledger.createRun(second)).rejects.toMatchObject({ reason: 'unfinished', runId: 'r1' });
      await ledger.setRunStatus('r1', 'done', { at: 1500 });

      // The same snapshot again (the plan read the counters before r1 recorded them): refused.
      await expect(ledger.createRun(newRun('r2', 2000))).rejects.toBeInstanceOf(PayoutConflict);
      await expect(ledger.createRun(newRun('r2', 2000))).rejects.toMatchObject({ reason: 'snapshot-moved' });
      // The carry moved: r1 carried 5 raw to ADDR_B, a plan that read 0 is refused.
      await expect(ledger.createRun(second)).rejects.toMatchObject({ reason: 'carry-moved' });
      expect(await ledger.getRun('r2')).toBeUndefined();
      expect(await store.getClient(ADDR)).toMatchObject({ snapshot_precache: 3 });

      second.carries = [{ address: ADDR_B, previous: 5n, next: 10n }];
      await ledger.createRun(second);
      expect(await ledger.carries()).toEqual(new Map([[ADDR_B, 10n]]));
      expect(await store.getClient(ADDR)).toMatchObject({ snapshot_precache: 6 });
      expect((await ledger.listRuns(10)).map((r) => r.id)).toEqual(['r2', 'r1']);
      expect((await ledger.listRuns(1)).map((r) => r.id)).toEqual(['r2']);
    });

    it('moves a payment planned -> sent -> confirmed, a retry with the same block changing nothing', async () => {
      const ledger = await open();
      await ledger.createRun(newRun('r1', 1000));
      expect(await ledger.markSent('r1', ADDR, BLOCK, 1100)).toMatchObject({ status: 'sent', block: BLOCK, sentAt: 1100, amount: BIG });
      expect(await ledger.markSent('r1', ADDR, BLOCK, 1200)).toMatchObject({ status: 'sent', sentAt: 1100 });
      await expect(ledger.markSent('r1', ADDR, 'B2'.repeat(32), 1300)).rejects.toThrow(/already sent in block .* the node's send id did not hold/);
      await expect(ledger.markSent('r1', ADDR_B, BLOCK, 1300)).rejects.toThrow(/is carried, not planned/);
      await expect(ledger.markSent('r1', SOURCE, BLOCK, 1300)).rejects.toThrow(/no payment/);
      await ledger.markConfirmed('r1', ADDR, 1400);
      await ledger.markConfirmed('r1', ADDR, 1500);
      expect(await ledger.markSent('r1', ADDR, BLOCK, 1600)).toMatchObject({ status: 'confirmed', confirmedAt: 1400, block: BLOCK });
      await expect(ledger.markConfirmed('r1', ADDR_B, 1500)).rejects.toThrow(/not sent/);
    });

    it('carries a refused payment into the address’s carry balance, exactly, and tracks the run’s status', async () => {
      const ledger = await open();
      const run = newRun('r1', 1000);
      run.payments[1] = { ...run.payments[1], status: 'planned', amount: MAX_RAW, sendId: `dpow-web:r1:${ADDR_B}`, reason: undefined };
      delete run.payments[1].reason;
      await ledger.createRun(run);
      await ledger.carryPayment('r1', ADDR_B, 'the node refused the address: Bad destination account');
      expect(await ledger.carries()).toEqual(new Map([[ADDR_B, MAX_RAW + 5n]]));
      expect((await ledger.getRun('r1'))?.payments[1]).toMatchObject({ status: 'carried', reason: 'the node refused the address: Bad destination account' });
      await expect(ledger.carryPayment('r1', ADDR_B, 'again')).rejects.toThrow(/not planned/);

      await ledger.setRunStatus('r1', 'stopped', { error: 'Wallet is locked' });
      expect(await ledger.unfinishedRun()).toMatchObject({ id: 'r1', status: 'stopped', error: 'Wallet is locked' });
      await ledger.setRunStatus('r1', 'sending');
      expect(await ledger.unfinishedRun()).not.toHaveProperty('error');
      await ledger.setRunStatus('r1', 'done', { at: 2000 });
      expect(await ledger.unfinishedRun()).toBeUndefined();
      expect((await ledger.getRun('r1'))?.run).toMatchObject({ status: 'done', finishedAt: 2000 });
      await expect(ledger.setRunStatus('nope', 'done')).rejects.toThrow(/no payout run/);
    });

    it('answers what one address was paid: newest first, bounded, summed exactly, with its carry', async () => {
      const ledger = await open();
      expect(await ledger.forAddress(ADDR, 5)).toEqual({ payments: [], runTimes: {}, paid: 0n, carried: 0n, serverRuns: 0 });
      let previous = { a: { precache: 0, ondemand: 0 }, b: { precache: 0, ondemand: 0 } };
      for (let i = 1; i <= 3; i++) {
        if (i > 1) {
          for (let j = 0; j < 3; j++) await store.creditClient(ADDR, 'precache', BLOCK);
          await store.creditClient(ADDR_B, 'ondemand', BLOCK);
        }
        const run = newRun(`r${i}`, i * 1000, previous);
        run.carries = [{ address: ADDR_B, previous: BigInt(i - 1) * 5n, next: BigInt(i) * 5n }];
        await ledger.createRun(run);
        if (i < 3) await ledger.markSent(`r${i}`, ADDR, `${i}`.repeat(64), i * 1000 + 1);
        await ledger.setRunStatus(`r${i}`, i < 3 ? 'done' : 'stopped', { at: i * 1000 + 2, error: 'Insufficient balance' });
        previous = { a: { precache: i * 3, ondemand: 0 }, b: { precache: 0, ondemand: i } };
      }
      const a = await ledger.forAddress(ADDR, 2);
      expect(a.payments.map((p) => [p.runId, p.status])).toEqual([['r3', 'planned'], ['r2', 'sent']]);
      expect(a.runTimes).toEqual({ r3: 3000, r2: 2000 });
      expect(a.paid).toBe(2n * BIG);
      expect(a).toMatchObject({ carried: 0n, serverRuns: 3 });
      const b = await ledger.forAddress(ADDR_B, 5);
      expect(b).toMatchObject({ payments: [], paid: 0n, carried: 15n, carriedReason: 'below the minimum', serverRuns: 3 });
    });
  });
}
