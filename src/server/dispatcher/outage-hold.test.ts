import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { collectingLog } from '../../testkit/log.ts';
import { newCounters } from './counters.ts';
import { OutageHold } from './outage-hold.ts';

interface Item {
  name: string;
  /** Its work unchecked (a result for a job held elsewhere, not yet looked up). */
  unchecked?: boolean;
}

/** A hold in front of a store that is down until `up` is set; what reached the store, in order. */
function setup(options: { limit?: number; unchecked?: number } = {}) {
  const counters = newCounters();
  const { lines, ...log } = collectingLog();
  const store = { up: false, taken: [] as string[], tries: 0 };
  const letGo: string[] = [];
  const hold: OutageHold<Item> = new OutageHold<Item>({
    retryMs: 100,
    limit: options.limit,
    expendable: options.unchecked === undefined ? undefined : { is: (item) => item.unchecked === true, limit: options.unchecked, drop: (item) => letGo.push(item.name) },
    counters: counters.deferred,
    log,
    describe: (item) => `result ${item.name}`,
    retry: async (item) => {
      store.tries++;
      if (store.up) store.taken.push(item.name);
      else hold.hold(item, new Error('connection refused'));
    },
  });
  return { hold, counters, lines, store, letGo };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('OutageHold', () => {
  it('offers held results again, waiting twice as long each failed round, and settles them once the store answers', async () => {
    const { hold, counters, lines, store } = setup();
    expect(hold.hold({ name: 'a' }, new Error('connection refused'))).toBe(true);
    expect(hold.hold({ name: 'b' }, new Error('connection refused'))).toBe(true);
    expect(counters.deferred).toEqual({ total: 2, held: 2, retried: 0 });
    expect(lines[0]).toBe('error dispatcher: store: connection refused; holding result a (1 held), not answered until the store takes it');

    // The round stops at a, still refused: b goes back untried.
    await vi.advanceTimersByTimeAsync(100);
    expect(store.tries).toBe(1);
    // Held again, but counted once: total is results held, not attempts.
    expect(counters.deferred).toEqual({ total: 2, held: 2, retried: 1 });
    expect(lines).toContain('warn dispatcher: store still failing (connection refused); retrying in 200 ms');

    // The store still failed: the next round waits 200 ms.
    await vi.advanceTimersByTimeAsync(199);
    expect(store.tries).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(store.tries).toBe(2);

    store.up = true;
    await vi.advanceTimersByTimeAsync(400);
    // In the order they came.
    expect(store.taken).toEqual(['a', 'b']);
    expect(counters.deferred).toEqual({ total: 2, held: 0, retried: 4 });
    expect(hold.size).toBe(0);
    expect(lines.at(-1)).toBe('info dispatcher: store answers again; 2 held results settled');

    // Answered: the next outage starts again from the first wait.
    hold.hold({ name: 'c' }, new Error('timeout'));
    await vi.advanceTimersByTimeAsync(100);
    expect(store.taken).toEqual(['a', 'b', 'c']);
  });

  it('refuses past its limit, and retries nothing after stop()', async () => {
    const { hold, counters, lines, store } = setup({ limit: 2 });
    expect(hold.hold({ name: 'a' }, new Error('down'))).toBe(true);
    expect(hold.hold({ name: 'b' }, new Error('down'))).toBe(true);
    expect(hold.hold({ name: 'c' }, new Error('down'))).toBe(false);
    expect(counters.deferred).toEqual({ total: 2, held: 2, retried: 0 });

    hold.stop();
    expect(lines.at(-1)).toBe('error dispatcher: stopping with 2 held results the store never took (not answered, not credited)');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(store.tries).toBe(0);
  });

  it('holds unchecked items in a share of their own, letting the oldest go; checked ones are never let go for them', async () => {
    const { hold, counters, lines, store, letGo } = setup({ limit: 4, unchecked: 2 });
    expect(hold.hold({ name: 'a' }, new Error('down'))).toBe(true);
    for (const name of ['j1', 'j2', 'j3']) expect(hold.hold({ name, unchecked: true }, new Error('down'))).toBe(true);
    expect(letGo).toEqual(['j1']);
    expect(hold.size).toBe(3);
    expect(hold.hold({ name: 'b' }, new Error('down'))).toBe(true);
    // The hold is full: a checked item takes the place of the oldest unchecked one, until none is left.
    expect(hold.hold({ name: 'c' }, new Error('down'))).toBe(true);
    expect(hold.hold({ name: 'd' }, new Error('down'))).toBe(true);
    expect(letGo).toEqual(['j1', 'j2', 'j3']);
    expect(hold.hold({ name: 'e' }, new Error('down'))).toBe(false);
    expect(hold.hold({ name: 'j4', unchecked: true }, new Error('down'))).toBe(false);
    expect(counters.deferred).toMatchObject({ total: 7, held: 4 });
    // One line for the first held; the rest are counted into the summary at the interval's end.
    expect(lines).toEqual(['error dispatcher: store: down; holding result a (1 held), not answered until the store takes it']);

    store.up = true;
    await vi.advanceTimersByTimeAsync(100);
    expect(store.taken).toEqual(['a', 'b', 'c', 'd']);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(lines).toContain('error dispatcher: holding result: 6 more in 10 s, not logged one by one; the last: dispatcher: store: down; holding result d (4 held), not answered until the store takes it');
  });

  it('never waits longer than 1 s between rounds', async () => {
    const { hold, store } = setup();
    hold.hold({ name: 'a' }, new Error('down'));
    // 100, 200, 400, 800, then 1000 each.
    await vi.advanceTimersByTimeAsync(100 + 200 + 400 + 800);
    expect(store.tries).toBe(4);
    await vi.advanceTimersByTimeAsync(999);
    expect(store.tries).toBe(4);
    await vi.advanceTimersByTimeAsync(1);
    expect(store.tries).toBe(5);
    await vi.advanceTimersByTimeAsync(1000);
    expect(store.tries).toBe(6);
  });

  it('asks a store that is still down once a round, however many are held, and keeps their order', async () => {
    const { hold, counters, store } = setup({ unchecked: 50 });
    for (let i = 0; i < 100; i++) hold.hold({ name: `r${i}` }, new Error('down'));
    for (let i = 0; i < 20; i++) hold.hold({ name: `j${i}`, unchecked: true }, new Error('down'));
    // Four rounds while it is down (100, 200, 400, 800 ms): one call each.
    await vi.advanceTimersByTimeAsync(100 + 200 + 400 + 800);
    expect(store.tries).toBe(4);
    expect(counters.deferred).toMatchObject({ total: 120, held: 120 });

    store.up = true;
    await vi.advanceTimersByTimeAsync(1000);
    // Checked work first, each kind in arrival order.
    expect(store.taken).toEqual([...Array.from({ length: 100 }, (_, i) => `r${i}`), ...Array.from({ length: 20 }, (_, i) => `j${i}`)]);
    expect(hold.size).toBe(0);
  });
});
