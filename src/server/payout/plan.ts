/**
 * What a payout run sends, in raw, computed exactly: a pure function of the snapshot's shares,
 * the pool, the minimum and what earlier runs carried.
 *
 * - Weights become integers without rounding (a work counts 1; a difficulty multiplier, a
 *   double, is an integer times a power of two, so scaling all of them by the largest such
 *   power is exact).
 * - The pool is split by largest remainder: each address gets floor(pool * w / W) raw, and the
 *   raw left over (fewer than one per address) goes one each to the largest remainders, ties to
 *   the smaller address. Every raw of the pool is assigned; nothing is created.
 * - An address's due is its share plus what it was carried before. It is sent when it reaches
 *   the minimum and the address can be paid; otherwise all of it is carried to the next run,
 *   never dropped. So sent + carried = pool + carried in, to the raw.
 */
import type { SnapshotPlan, SnapshotWeight } from './snapshot-plan.ts';

/** Why a due is carried instead of sent. */
export type CarryReason = 'below-min' | 'unpayable';

export interface PayoutLine {
  address: string;
  /** Works paid by this run (0 for an address here only for its carry). */
  precache: number;
  ondemand: number;
  /** Its weight, in the plan's integer units (see PayoutPlan.totalWeight). */
  weight: bigint;
  /** Its part of this run's pool, raw. */
  share: bigint;
  /** Carried to it by earlier runs, raw. */
  carriedIn: bigint;
  /** Sent by this run, raw (0 when carried). */
  amount: bigint;
  /** Carried to the next run, raw. */
  carried: bigint;
  /** Set when carried: why, and for 'unpayable' the node's or the checksum's reason. */
  carry?: { reason: CarryReason; detail: string };
}

export interface PayoutPlan {
  weight: SnapshotWeight;
  /** The pool split this time: 0 when there was no new work (carries alone may still be paid). */
  pool: bigint;
  min: bigint;
  totalWeight: bigint;
  /** Sorted by amount, then carried, largest first; ties by address. */
  lines: PayoutLine[];
  /** Addresses with work that cannot be paid at all (bad checksum, another coin): their work stays counted. */
  skipped: { address: string; reason: string }[];
  totals: { carriedIn: bigint; amount: bigint; carried: bigint; payments: number; precache: number; ondemand: number };
}

export interface PayoutInput {
  snapshot: SnapshotPlan;
  weight: SnapshotWeight;
  /** Raw to split among this snapshot's shares. */
  pool: bigint;
  /** Dues below this many raw are carried. */
  min: bigint;
  /** What earlier runs carried, per address. */
  carried: ReadonlyMap<string, bigint>;
  /** Addresses that cannot receive now (not opened, refused by the node), with the reason. */
  unpayable: ReadonlyMap<string, string>;
}

/** Exact integer weights for finite doubles >= 0, all on one scale. */
export function exactWeights(values: readonly number[]): bigint[] {
  const parts = values.map((v) => {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`a weight must be a finite number >= 0, got ${v}`);
    // Doubling is exact, and a finite double is an integer after at most 1074 doublings.
    let x = v;
    let shift = 0;
    while (!Number.isInteger(x)) {
      x *= 2;
      shift++;
    }
    return { integer: BigInt(x), shift };
  });
  const scale = Math.max(0, ...parts.map((p) => p.shift));
  return parts.map((p) => p.integer << BigInt(scale - p.shift));
}

/** Splits `pool` raw by `weights`, largest remainder; `keys` break ties (smaller first). */
export function splitPool(pool: bigint, weights: readonly bigint[], keys: readonly string[]): bigint[] {
  const total = weights.reduce((a, b) => a + b, 0n);
  if (total === 0n || pool <= 0n) return weights.map(() => 0n);
  const parts = weights.map((w, i) => ({ i, base: (pool * w) / total, remainder: (pool * w) % total }));
  let left = pool - parts.reduce((a, p) => a + p.base, 0n);
  const order = [...parts].sort((a, b) => (a.remainder === b.remainder ? (keys[a.i] < keys[b.i] ? -1 : 1) : a.remainder > b.remainder ? -1 : 1));
  for (const p of order) {
    if (left === 0n) break;
    p.base += 1n;
    left -= 1n;
  }
  return parts.map((p) => p.base);
}

export function planPayout(input: PayoutInput): PayoutPlan {
  const { snapshot, weight, min, carried, unpayable } = input;
  const shares = snapshot.shares;
  const weights = exactWeights(shares.map((s) => (weight === 'difficulty' ? (s.weighted ?? s.precache + s.ondemand) : s.precache + s.ondemand)));
  const totalWeight = weights.reduce((a, b) => a + b, 0n);
  const pool = totalWeight > 0n ? input.pool : 0n;
  const split = splitPool(pool, weights, shares.map((s) => s.address));

  const lines = new Map<string, PayoutLine>();
  shares.forEach((s, i) => {
    lines.set(s.address, { address: s.address, precache: s.precache, ondemand: s.ondemand, weight: weights[i], share: split[i], carriedIn: 0n, amount: 0n, carried: 0n });
  });
  for (const [address, raw] of carried) {
    if (raw <= 0n) continue;
    const line = lines.get(address) ?? { address, precache: 0, ondemand: 0, weight: 0n, share: 0n, carriedIn: 0n, amount: 0n, carried: 0n };
    line.carriedIn = raw;
    lines.set(address, line);
  }
  for (const line of lines.values()) {
    const due = line.share + line.carriedIn;
    const refused = unpayable.get(line.address);
    if (refused !== undefined) line.carry = { reason: 'unpayable', detail: refused };
    else if (due < min || due === 0n) line.carry = { reason: 'below-min', detail: 'below the minimum' };
    if (line.carry) line.carried = due;
    else line.amount = due;
  }

  const sorted = [...lines.values()].sort((a, b) =>
    a.amount !== b.amount ? (a.amount > b.amount ? -1 : 1) : a.carried !== b.carried ? (a.carried > b.carried ? -1 : 1) : a.address < b.address ? -1 : 1,
  );
  const sum = (f: (l: PayoutLine) => bigint) => sorted.reduce((a, l) => a + f(l), 0n);
  return {
    weight,
    pool,
    min,
    totalWeight,
    lines: sorted,
    skipped: snapshot.skipped,
    totals: {
      carriedIn: sum((l) => l.carriedIn),
      amount: sum((l) => l.amount),
      carried: sum((l) => l.carried),
      payments: sorted.filter((l) => l.amount > 0n).length,
      precache: sorted.reduce((n, l) => n + l.precache, 0),
      ondemand: sorted.reduce((n, l) => n + l.ondemand, 0),
    },
  };
}

/** `part` of `whole` in percent with `decimals` places, rounded down ("33.3333"). */
export function percentOf(part: bigint, whole: bigint, decimals = 4): string {
  if (whole <= 0n) return (0).toFixed(decimals);
  const digits = ((part * 100n * 10n ** BigInt(decimals)) / whole).toString().padStart(decimals + 1, '0');
  return decimals > 0 ? `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}` : digits;
}
