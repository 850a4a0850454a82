/**
 * A payout address's history in this browser: accepted and published results and the time spent
 * taking work, per local hour for the last 24 hours and per local day for the last 30. Plain
 * functions over plain values (no storage, no DOM); history-store.ts keeps them in IndexedDB.
 */

export const HOURS_KEPT = 24;
export const DAYS_KEPT = 30;

/** Counts within one hour or one day, starting at `start` (ms, local time). */
export interface HistoryBucket {
  start: number;
  /** Results this browser published. */
  published: number;
  /** Of those, the ones the dispatcher credited. */
  accepted: number;
  /** Time the worker was taking work (online and not paused), ms. */
  uptimeMs: number;
}

export interface AddressHistory {
  address: string;
  /** Oldest first; only buckets that have something in them. */
  hours: HistoryBucket[];
  days: HistoryBucket[];
}

export type HistoryDelta = Partial<Pick<HistoryBucket, 'published' | 'accepted' | 'uptimeMs'>>;

export function emptyHistory(address: string): AddressHistory {
  return { address, hours: [], days: [] };
}

export const hourStart = (at: number): number => {
  const d = new Date(at);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate(), d.getHours()).getTime();
};

export const dayStart = (at: number): number => {
  const d = new Date(at);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
};

/** The start of the local day `days` days after (or before) the one starting at `start`. */
const addDays = (start: number, days: number): number => {
  const d = new Date(start);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() + days).getTime();
};

const addHours = (start: number, hours: number): number => hourStart(start + hours * 3_600_000 + 1_800_000);

function addTo(buckets: HistoryBucket[], start: number, delta: HistoryDelta, oldest: number): HistoryBucket[] {
  const out = buckets.filter((b) => b.start >= oldest);
  let bucket = out.find((b) => b.start === start);
  if (!bucket) {
    bucket = { start, published: 0, accepted: 0, uptimeMs: 0 };
    out.push(bucket);
    out.sort((a, b) => a.start - b.start);
  }
  bucket.published += Math.max(0, delta.published ?? 0);
  bucket.accepted += Math.max(0, delta.accepted ?? 0);
  bucket.uptimeMs += Math.max(0, delta.uptimeMs ?? 0);
  return out;
}

/** `history` with `delta` counted at `at`, and what fell out of the kept hours and days dropped. */
export function record(history: AddressHistory, at: number, delta: HistoryDelta): AddressHistory {
  const hour = hourStart(at);
  const day = dayStart(at);
  return {
    address: history.address,
    hours: addTo(history.hours.map((b) => ({ ...b })), hour, delta, addHours(hour, -(HOURS_KEPT - 1))),
    days: addTo(history.days.map((b) => ({ ...b })), day, delta, addDays(day, -(DAYS_KEPT - 1))),
  };
}

/** Adds two deltas (pending writes are summed before they go to storage). */
export function addDeltas(a: HistoryDelta, b: HistoryDelta): HistoryDelta {
  return {
    published: (a.published ?? 0) + (b.published ?? 0),
    accepted: (a.accepted ?? 0) + (b.accepted ?? 0),
    uptimeMs: (a.uptimeMs ?? 0) + (b.uptimeMs ?? 0),
  };
}

export interface HistorySummary {
  /** Accepted per hour, the oldest of the last 24 first (the current hour last). */
  acceptedPerHour: { start: number; accepted: number }[];
  /** Accepted per day, the oldest of the last 30 first (today last). */
  acceptedPerDay: { start: number; accepted: number }[];
  accepted24h: number;
  published24h: number;
  uptime24hMs: number;
  accepted30d: number;
  published30d: number;
  uptime30dMs: number;
  /** Accepted over published in the last 24 hours, or null when nothing was published. */
  acceptRate24h: number | null;
  acceptRate30d: number | null;
}

/** The figures the history card and the kiosk show, as of `now`. */
export function summarize(history: AddressHistory, now: number): HistorySummary {
  const hour = hourStart(now);
  const day = dayStart(now);
  const byHour = new Map(history.hours.map((b) => [b.start, b]));
  const byDay = new Map(history.days.map((b) => [b.start, b]));
  const hours = Array.from({ length: HOURS_KEPT }, (_, i) => addHours(hour, i - (HOURS_KEPT - 1)));
  const days = Array.from({ length: DAYS_KEPT }, (_, i) => addDays(day, i - (DAYS_KEPT - 1)));
  const sum = (buckets: (HistoryBucket | undefined)[], field: 'published' | 'accepted' | 'uptimeMs') =>
    buckets.reduce((n, b) => n + (b?.[field] ?? 0), 0);
  const lastHours = hours.map((start) => byHour.get(start));
  const lastDays = days.map((start) => byDay.get(start));
  const rate = (accepted: number, published: number) => (published > 0 ? Math.min(1, accepted / published) : null);
  const accepted24h = sum(lastHours, 'accepted');
  const published24h = sum(lastHours, 'published');
  const accepted30d = sum(lastDays, 'accepted');
  const published30d = sum(lastDays, 'published');
  return {
    acceptedPerHour: hours.map((start) => ({ start, accepted: byHour.get(start)?.accepted ?? 0 })),
    acceptedPerDay: days.map((start) => ({ start, accepted: byDay.get(start)?.accepted ?? 0 })),
    accepted24h,
    published24h,
    uptime24hMs: sum(lastHours, 'uptimeMs'),
    accepted30d,
    published30d,
    uptime30dMs: sum(lastDays, 'uptimeMs'),
    acceptRate24h: rate(accepted24h, published24h),
    acceptRate30d: rate(accepted30d, published30d),
  };
}

/** Reads back a stored history, or null when it is not one (a corrupt or foreign record). */
export function asHistory(value: unknown, address: string): AddressHistory | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Partial<AddressHistory>;
  const buckets = (list: unknown): HistoryBucket[] | null =>
    Array.isArray(list) &&
    list.every(
      (b: Partial<HistoryBucket>) =>
        typeof b === 'object' && b !== null && [b.start, b.published, b.accepted, b.uptimeMs].every((n) => typeof n === 'number' && Number.isFinite(n)),
    )
      ? (list as HistoryBucket[])
      : null;
  const hours = buckets(v.hours);
  const days = buckets(v.days);
  if (v.address !== address || !hours || !days) return null;
  return { address, hours, days };
}
