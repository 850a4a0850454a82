import { describe, expect, it } from 'vitest';
import { StateFeed } from './state-feed.ts';

describe('StateFeed', () => {
  it('builds the snapshot once per change and notifies once per burst of changes', async () => {
    let builds = 0;
    let value = 0;
    const feed = new StateFeed(() => ({ value, build: ++builds }));
    const seen: number[] = [];
    feed.subscribe((s) => seen.push(s.value));
    expect(feed.get()).toBe(feed.get());
    expect(builds).toBe(1);
    for (value = 1; value <= 3; value++) feed.changed();
    value = 3;
    await Promise.resolve();
    expect(seen).toEqual([3]);
    expect(builds).toBe(2);
  });

  it('keeps notifying the other listeners when one throws, and stops after unsubscribe', async () => {
    const feed = new StateFeed(() => ({}));
    const calls: string[] = [];
    feed.subscribe(() => {
      calls.push('broken');
      throw new Error('view bug');
    });
    const off = feed.subscribe(() => calls.push('ok'));
    feed.changed();
    await Promise.resolve();
    off();
    feed.changed();
    await Promise.resolve();
    expect(calls).toEqual(['broken', 'ok', 'broken']);
  });
});
