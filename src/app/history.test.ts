import { describe, expect, it } from 'vitest';
import { asHistory, DAYS_KEPT, emptyHistory, HOURS_KEPT, record, summarize } from './history.ts';
import { openHistoryStore } from './history-store.ts';

const ADDRESS = 'nano_1ik4ab366ik4ab366ik4ab366ik4ab366ik4ab366ik4ab366ik4myzudyzq';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Noon on a day with no clock change in any zone's usual rules. */
const NOON = new Date(2026, 2, 10, 12, 0, 0).getTime();

describe('history', () => {
  it('counts per local hour and per day, and sums the last 24 hours and 30 days', () => {
    let h = emptyHistory(ADDRESS);
    h = record(h, NOON, { published: 4, accepted: 3, uptimeMs: 60_000 });
    h = record(h, NOON + 10 * 60_000, { published: 1, accepted: 1 });
    h = record(h, NOON - 2 * HOUR, { published: 2, accepted: 0, uptimeMs: 1_000 });
    h = record(h, NOON - 3 * DAY, { published: 5, accepted: 5 });
    const s = summarize(h, NOON + 30 * 60_000);
    expect(s.acceptedPerHour).toHaveLength(HOURS_KEPT);
    expect(s.acceptedPerHour.at(-1)).toEqual({ start: NOON, accepted: 4 });
    expect(s.acceptedPerHour.at(-3)?.accepted).toBe(0);
    expect(s).toMatchObject({ accepted24h: 4, published24h: 7, uptime24hMs: 61_000, accepted30d: 9, published30d: 12 });
    expect(s.acceptRate24h).toBeCloseTo(4 / 7, 9);
    expect(s.acceptedPerDay).toHaveLength(DAYS_KEPT);
    expect(s.acceptedPerDay.at(-1)?.accepted).toBe(4);
    expect(s.acceptedPerDay.at(-4)?.accepted).toBe(5);
  });

  it('drops hours older than a day and days older than thirty as it records', () => {
    let h = record(emptyHistory(ADDRESS), NOON - 40 * DAY, { accepted: 9, published: 9 });
    h = record(h, NOON - 2 * DAY, { accepted: 1, published: 1 });
    h = record(h, NOON, { accepted: 1, published: 2 });
    expect(h.days).toHaveLength(2);
    expect(h.hours).toHaveLength(1);
    expect(summarize(h, NOON)).toMatchObject({ accepted30d: 2, published30d: 3, accepted24h: 1, acceptRate24h: 0.5 });
  });

  it('has no accept rate before anything was published', () => {
    expect(summarize(emptyHistory(ADDRESS), NOON).acceptRate24h).toBeNull();
  });

  it('reads back only a record that is a history of this address', () => {
    const h = record(emptyHistory(ADDRESS), NOON, { accepted: 1 });
    expect(asHistory(structuredClone(h), ADDRESS)).toEqual(h);
    expect(asHistory(h, 'nano_other')).toBeNull();
    expect(asHistory({ address: ADDRESS, hours: [{ start: 'x' }], days: [] }, ADDRESS)).toBeNull();
    expect(asHistory('junk', ADDRESS)).toBeNull();
  });

  it('keeps the history in memory, with a reason to show, where there is no IndexedDB (as in Node)', async () => {
    const store = await openHistoryStore();
    expect(store.problem).toBe('this browser has no IndexedDB');
    await store.add(ADDRESS, NOON, { accepted: 2, published: 2 });
    expect(summarize(await store.load(ADDRESS), NOON).accepted24h).toBe(2);
  });
});
