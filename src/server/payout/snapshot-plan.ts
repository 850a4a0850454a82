/**
 * What a snapshot pays, as a pure function of the clients' counters: the shares `dpow-web
 * snapshot` prints and records, and the split a payout run starts from (payout/plan.ts).
 *
 * A client's share is proportional to its work since the last snapshot:
 *   (precache - snapshot_precache) + (ondemand - snapshot_ondemand)
 * or, with weight `difficulty` (as BoomPow pays), to the same works each weighted by the
 * difficulty that was asked for, as a multiplier of the Nano send threshold: one 8x ondemand work
 * earns as much as eight 1x works. The minimums count works either way.
 * Rules kept from the old server: addresses that fail the checksum (or have another coin's
 * prefix) are skipped, never paid; and a work type is paid, and snapshotted, only when at least
 * `min<Type>` new units of it came in since the last snapshot across all payable clients, so
 * small amounts roll over to the next payout instead of being lost.
 */
import { ALL_PREFIXES, checkAddress } from '../../dpow/address.ts';
import type { WorkType } from '../../dpow/codec.ts';
import type { ClientRecord, SnapshotEntry, SnapshotShare } from '../store/store.ts';

export type SnapshotWeight = 'work' | 'difficulty';

export interface SnapshotRules {
  minPrecache: number;
  minOndemand: number;
  prefixes?: readonly string[];
  /** One work, one share (default), or each work weighted by its difficulty multiplier. */
  weight?: SnapshotWeight;
}

export interface SnapshotPlan {
  /** Work types paid (and snapshotted) this time. */
  paid: WorkType[];
  /** What to record: the counters the shares were computed from, for the paid types. */
  entries: SnapshotEntry[];
  /** New work per type across payable clients (paid or not). */
  newWork: { precache: number; ondemand: number };
  shares: SnapshotShare[];
  skipped: { address: string; reason: string }[];
}

/** Pure: what a snapshot of these clients pays under these rules. */
export function planSnapshot(clients: ClientRecord[], rules: SnapshotRules): SnapshotPlan {
  const prefixes = rules.prefixes ?? ALL_PREFIXES;
  const byDifficulty = rules.weight === 'difficulty';
  const payable: { address: string; precache: number; ondemand: number; weighted: Record<WorkType, number>; record: ClientRecord }[] = [];
  const skipped: SnapshotPlan['skipped'] = [];
  for (const c of clients) {
    const precache = Math.max(0, c.precache - c.snapshot_precache);
    const ondemand = Math.max(0, c.ondemand - c.snapshot_ondemand);
    if (precache === 0 && ondemand === 0) continue;
    const check = checkAddress(c.address, prefixes);
    if (!check.ok) {
      skipped.push({ address: c.address, reason: check.reason });
      continue;
    }
    // A store without weighted sums (or a client credited before they existed) counts one each.
    const weighted = {
      precache: Math.max(0, (c.weighted_precache ?? c.precache) - (c.snapshot_weighted_precache ?? c.snapshot_precache)),
      ondemand: Math.max(0, (c.weighted_ondemand ?? c.ondemand) - (c.snapshot_weighted_ondemand ?? c.snapshot_ondemand)),
    };
    payable.push({ address: c.address, precache, ondemand, weighted, record: c });
  }
  const newWork = {
    precache: payable.reduce((n, c) => n + c.precache, 0),
    ondemand: payable.reduce((n, c) => n + c.ondemand, 0),
  };
  const paid: WorkType[] = [];
  if (newWork.precache > 0 && newWork.precache >= rules.minPrecache) paid.push('precache');
  if (newWork.ondemand > 0 && newWork.ondemand >= rules.minOndemand) paid.push('ondemand');
  const amount = (c: (typeof payable)[number], t: WorkType) => (byDifficulty ? c.weighted[t] : c[t]);
  const counted = (c: (typeof payable)[number]) =>
    (paid.includes('precache') ? amount(c, 'precache') : 0) + (paid.includes('ondemand') ? amount(c, 'ondemand') : 0);
  const total = payable.reduce((n, c) => n + counted(c), 0);
  const shares: SnapshotShare[] = payable
    .filter((c) => counted(c) > 0)
    .map((c) => ({
      address: c.address,
      precache: paid.includes('precache') ? c.precache : 0,
      ondemand: paid.includes('ondemand') ? c.ondemand : 0,
      ...(byDifficulty ? { weighted: counted(c) } : {}),
      share: counted(c) / total,
    }))
    .sort((a, b) => b.share - a.share || a.address.localeCompare(b.address));
  const entries: SnapshotEntry[] = payable
    .filter((c) => counted(c) > 0)
    .map((c) => ({
      address: c.address,
      ...(paid.includes('precache') ? { precache: c.record.precache } : {}),
      ...(paid.includes('ondemand') ? { ondemand: c.record.ondemand } : {}),
      // The weighted sums move with the counters whichever weight paid, so switching the weight
      // between payouts never pays a work twice.
      ...(paid.includes('precache') && c.record.weighted_precache !== undefined ? { weighted_precache: c.record.weighted_precache } : {}),
      ...(paid.includes('ondemand') && c.record.weighted_ondemand !== undefined ? { weighted_ondemand: c.record.weighted_ondemand } : {}),
    }));
  return { paid, entries, newWork, shares, skipped };
}
