import { describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { breakChecksum } from '../../testkit/address.ts';
import type { ClientRecord } from '../store/store.ts';
import { planSnapshot } from './snapshot-plan.ts';

const A = encodeAddress('a1'.repeat(32), 'nano');
const B = encodeAddress('b2'.repeat(32), 'nano');
const Q = encodeAddress('c3'.repeat(32), 'qlc');
const BAD = breakChecksum(A);
const client = (address: string, precache: number, ondemand: number, sp = 0, so = 0): ClientRecord => ({
  address,
  precache,
  ondemand,
  snapshot_precache: sp,
  snapshot_ondemand: so,
});

describe('planSnapshot', () => {
  it('shares are proportional to the work since the last snapshot', () => {
    const plan = planSnapshot([client(A, 10, 5, 4, 1), client(B, 3, 0), client(Q, 7, 7, 7, 7)], { minPrecache: 1, minOndemand: 1 });
    expect(plan.paid).toEqual(['precache', 'ondemand']);
    expect(plan.newWork).toEqual({ precache: 9, ondemand: 4 });
    expect(plan.shares).toEqual([
      { address: A, precache: 6, ondemand: 4, share: 10 / 13 },
      { address: B, precache: 3, ondemand: 0, share: 3 / 13 },
    ]);
  });

  it('records the counters the shares came from, for the paid types only', () => {
    const plan = planSnapshot([client(A, 10, 5, 4, 1), client(B, 3, 0)], { minPrecache: 1, minOndemand: 10 });
    expect(plan.paid).toEqual(['precache']);
    expect(plan.entries).toEqual([{ address: A, precache: 10 }, { address: B, precache: 3 }]);
  });

  it('skips invalid addresses and other coins’ prefixes', () => {
    const plan = planSnapshot([client(BAD, 5, 5), client(A, 1, 0), client(Q, 2, 0)], { minPrecache: 1, minOndemand: 1, prefixes: ['nano', 'xrb'] });
    expect(plan.shares.map((s) => s.address)).toEqual([A]);
    expect(plan.skipped.map((s) => s.address).sort()).toEqual([BAD, Q].sort());
    expect(plan.skipped.find((s) => s.address === BAD)?.reason).toMatch(/checksum/);
  });

  it('pays a work type only when enough of it came in', () => {
    const plan = planSnapshot([client(A, 50, 2), client(B, 0, 1)], { minPrecache: 10, minOndemand: 5 });
    expect(plan.paid).toEqual(['precache']);
    expect(plan.shares).toEqual([{ address: A, precache: 50, ondemand: 0, share: 1 }]);
    expect(planSnapshot([client(A, 5, 2)], { minPrecache: 10, minOndemand: 5 }).paid).toEqual([]);
  });
});

describe('planSnapshot --weight difficulty', () => {
  it('records the weighted sums beside the counters, whichever weight paid', () => {
    const weighted = (address: string, precache: number, w: number, sp = 0, sw = 0): ClientRecord => ({
      ...client(address, precache, 0, sp),
      weighted_precache: w,
      weighted_ondemand: 0,
      snapshot_weighted_precache: sw,
      snapshot_weighted_ondemand: 0,
    });
    const clients = [weighted(A, 4, 10, 2, 4), weighted(B, 1, 0.125)];
    const byWork = planSnapshot(clients, { minPrecache: 1, minOndemand: 1 });
    expect(byWork.shares.map((s) => s.share)).toEqual([2 / 3, 1 / 3]);
    expect(byWork.entries).toEqual([
      { address: A, precache: 4, weighted_precache: 10 },
      { address: B, precache: 1, weighted_precache: 0.125 },
    ]);
    const byDifficulty = planSnapshot(clients, { minPrecache: 1, minOndemand: 1, weight: 'difficulty' });
    expect(byDifficulty.shares).toEqual([
      { address: A, precache: 2, ondemand: 0, weighted: 6, share: 6 / 6.125 },
      { address: B, precache: 1, ondemand: 0, weighted: 0.125, share: 0.125 / 6.125 },
    ]);
    expect(byDifficulty.entries).toEqual(byWork.entries);
  });
});
