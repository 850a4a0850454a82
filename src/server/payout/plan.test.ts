import { describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { RAW_PER_NANO } from '../../dpow/nano-amount.ts';
import type { ClientRecord } from '../store/store.ts';
import { exactWeights, percentOf, planPayout, splitPool, type PayoutInput } from './plan.ts';
import { planSnapshot } from './snapshot-plan.ts';

const address = (n: number) => encodeAddress(n.toString(16).padStart(2, '0').repeat(32));
const [A, B, C] = [address(1), address(2), address(3)];
const client = (addr: string, precache: number, ondemand: number, weighted?: { precache: number; ondemand: number }): ClientRecord => ({
  address: addr,
  precache,
  ondemand,
  snapshot_precache: 0,
  snapshot_ondemand: 0,
  ...(weighted ? { weighted_precache: weighted.precache, weighted_ondemand: weighted.ondemand, snapshot_weighted_precache: 0, snapshot_weighted_ondemand: 0 } : {}),
});

function input(clients: ClientRecord[], extra: Partial<PayoutInput> = {}): PayoutInput {
  const weight = extra.weight ?? 'work';
  return {
    snapshot: planSnapshot(clients, { minPrecache: 1, minOndemand: 1, weight }),
    weight,
    pool: RAW_PER_NANO,
    min: 1n,
    carried: new Map(),
    unpayable: new Map(),
    ...extra,
  };
}

const byAddress = (plan: ReturnType<typeof planPayout>) => Object.fromEntries(plan.lines.map((l) => [l.address, l]));

describe('planPayout', () => {
  it('pays shares proportional to the works, to the raw', () => {
    const plan = planPayout(input([client(A, 3, 1), client(B, 4, 0), client(C, 0, 2)]));
    const lines = byAddress(plan);
    // 4 : 4 : 2 of one NANO.
    expect(lines[A].amount).toBe(4n * 10n ** 29n);
    expect(lines[B].amount).toBe(4n * 10n ** 29n);
    expect(lines[C].amount).toBe(2n * 10n ** 29n);
    expect(lines[A]).toMatchObject({ precache: 3, ondemand: 1, carried: 0n });
    expect(plan.totals).toMatchObject({ amount: RAW_PER_NANO, carried: 0n, payments: 3, precache: 7, ondemand: 3 });
  });

  it('pays shares proportional to difficulty with --weight difficulty', () => {
    // A: two 1x precache works. B: one 8x ondemand work.
    const clients = [client(A, 2, 0, { precache: 2, ondemand: 0 }), client(B, 0, 1, { precache: 0, ondemand: 8 })];
    const byWork = byAddress(planPayout(input(clients, { pool: 3n * RAW_PER_NANO })));
    expect([byWork[A].amount, byWork[B].amount]).toEqual([2n * RAW_PER_NANO, RAW_PER_NANO]);
    const plan = planPayout(input(clients, { weight: 'difficulty', pool: 10n * RAW_PER_NANO }));
    const lines = byAddress(plan);
    expect(lines[A].amount).toBe(2n * RAW_PER_NANO);
    expect(lines[B].amount).toBe(8n * RAW_PER_NANO);
    expect(percentOf(lines[B].weight, plan.totalWeight)).toBe('80.0000');
  });

  it('splits by largest remainder: every raw of the pool assigned, none created', () => {
    // 10 raw in thirds: 3 each and 1 left, which goes to the first address of the tie.
    expect(splitPool(10n, [1n, 1n, 1n], [B, A, C])).toEqual([3n, 4n, 3n]);
    // Remainders 2/7, 4/7, 1/7 of 7 raw shares 2 left over to the two largest.
    expect(splitPool(2n, [1n, 2n, 4n], [A, B, C])).toEqual([0n, 1n, 1n]);
    for (let trial = 0; trial < 200; trial++) {
      const weights = Array.from({ length: 1 + (trial % 17) }, (_, i) => BigInt((trial * 7919 + i * 104729) % 1000));
      const pool = BigInt(trial) * 1_000_003n + 7n;
      const split = splitPool(pool, weights, weights.map((_, i) => String(i).padStart(3, '0')));
      const total = weights.reduce((a, b) => a + b, 0n);
      expect(split.reduce((a, b) => a + b, 0n)).toBe(total === 0n ? 0n : pool);
      // Each part is within one raw of its exact share.
      split.forEach((part, i) => total && expect(part * total - pool * weights[i] < total && pool * weights[i] - part * total < total).toBe(true));
    }
  });

  it('carries a due below --min to the next run, and pays it when it has grown', () => {
    const min = 10n ** 24n;
    const first = planPayout(input([client(A, 999, 0), client(B, 1, 0)], { pool: 500n * 10n ** 24n, min }));
    const lines = byAddress(first);
    expect(lines[B]).toMatchObject({ amount: 0n, carried: 5n * 10n ** 23n, carry: { reason: 'below-min' } });
    expect(first.totals.amount + first.totals.carried).toBe(500n * 10n ** 24n);

    const second = planPayout(input([client(B, 1, 0)], { pool: 5n * 10n ** 23n, min, carried: new Map([[B, lines[B].carried]]) }));
    expect(byAddress(second)[B]).toMatchObject({ share: 5n * 10n ** 23n, carriedIn: 5n * 10n ** 23n, amount: min, carried: 0n });
    expect(second.totals.amount).toBe(second.pool + second.totals.carriedIn);
  });

  it('carries everything due to an address that cannot receive, and pays carries with no new work', () => {
    const plan = planPayout(input([client(A, 1, 0), client(B, 1, 0)], { unpayable: new Map([[B, 'account not opened']]) }));
    expect(byAddress(plan)[B]).toMatchObject({ amount: 0n, carried: RAW_PER_NANO / 2n, carry: { reason: 'unpayable', detail: 'account not opened' } });
    const later = planPayout(input([], { carried: new Map([[B, RAW_PER_NANO / 2n]]) }));
    expect(later.pool).toBe(0n);
    expect(later.lines).toEqual([expect.objectContaining({ address: B, carriedIn: RAW_PER_NANO / 2n, amount: RAW_PER_NANO / 2n, precache: 0 })]);
  });

  it('keeps sent plus carried equal to the pool plus what came in, whatever the weights', () => {
    for (let trial = 0; trial < 50; trial++) {
      const clients = Array.from({ length: 1 + (trial % 9) }, (_, i) => client(address(i + 1), (trial * 31 + i * 17) % 23, (trial + i) % 5, { precache: ((trial * 13 + i) % 29) / 8, ondemand: (i % 3) * 0.015625 }));
      const carried = new Map([[address(40), BigInt(trial) * 10n ** 20n]]);
      const plan = planPayout(input(clients, { weight: trial % 2 ? 'difficulty' : 'work', pool: BigInt(trial + 1) * 12_345_678_901_234_567n, min: 10n ** 17n, carried }));
      expect(plan.totals.amount + plan.totals.carried).toBe(plan.pool + plan.totals.carriedIn);
    }
  });

  it('turns doubles into exact integer weights on one scale', () => {
    expect(exactWeights([1, 0.5, 0.125, 3])).toEqual([8n, 4n, 1n, 24n]);
    expect(exactWeights([0.1, 0.2])).toEqual([3602879701896397n, 7205759403792794n]);
    expect(exactWeights([Number.MIN_VALUE])[0]).toBe(1n);
    expect(() => exactWeights([Number.NaN])).toThrow(/finite/);
  });
});
