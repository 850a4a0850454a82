/**
 * Test helper, never imported by the product: a payout run recorded in a store's ledger as the
 * payout command would leave it, for tests of what reads the ledger (the endpoint, the page,
 * the worker's summary).
 */
import type { DispatcherStore } from '../server/store/store.ts';

export interface RecordedPayment {
  address: string;
  amount: bigint;
  /** The send block; left out, the payment stays planned (sending). */
  block?: string;
  confirmed?: boolean;
}

/**
 * Credits each address one precache work and records run `id` paying them, its snapshot moved;
 * done unless a payment is left planned.
 */
export async function recordPayoutRun(store: DispatcherStore, id: string, createdAt: number, payments: RecordedPayment[]): Promise<void> {
  const before = await Promise.all(payments.map((p) => store.getClient(p.address)));
  for (const p of payments) await store.creditClient(p.address, 'precache', 'AB'.repeat(32));
  await store.payouts.createRun({
    run: { id, createdAt, source: 'nano_3qb6o6i1tkzr6jwr5s7eehfxwg9x6eemitdinbpi7u8bjjwsgqfj4wzser3x', weight: 'work', pool: payments.reduce((a, p) => a + p.amount, 0n), min: 1n },
    payments: payments.map((p, seq) => ({ seq, address: p.address, precache: 1, ondemand: 0, amount: p.amount, carriedIn: 0n, status: 'planned', sendId: `dpow-web:${id}:${p.address}` })),
    snapshot: payments.map((p, i) => {
      const previous = { precache: before[i]?.snapshot_precache ?? 0, ondemand: before[i]?.snapshot_ondemand ?? 0 };
      return { entry: { address: p.address, precache: (before[i]?.precache ?? 0) + 1 }, previous };
    }),
    carries: [],
  });
  for (const p of payments) {
    if (!p.block) continue;
    await store.payouts.markSent(id, p.address, p.block, createdAt + 1000);
    if (p.confirmed) await store.payouts.markConfirmed(id, p.address, createdAt + 2000);
  }
  if (payments.every((p) => p.block)) await store.payouts.setRunStatus(id, 'done', { at: createdAt + 3000 });
}
