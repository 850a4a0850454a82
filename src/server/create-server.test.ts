/**
 * createServer as the dispatcher-only process runs it, and what every kind shares: the store it
 * opens and closes (or leaves to its caller), the demo only when asked, the feeds and their
 * metrics, and a failed start that leaves nothing behind. The full app is app-server.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach, closeAfter } from '../testkit/cleanups.ts';
import { TEST_USERS } from '../testkit/mqtt.ts';
import { canConnect, freePort } from '../testkit/net.ts';
import { waitFor } from '../testkit/wait.ts';
import { Broker } from './broker.ts';
import { createServer } from './create-server.ts';
import { MemoryStore } from './store/memory-store.ts';

const cleanups = cleanupsAfterEach();

async function external(): Promise<{ broker: Broker; config: { kind: 'external'; url: string; username: string; password: string } }> {
  const broker = closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: 0 }));
  return { broker, config: { kind: 'external', url: broker.tcpUrl!, username: 'server', password: TEST_USERS.server.password } };
}

describe('createServer, kind dispatcher', () => {
  it('runs the dispatcher against an external broker, with /healthz, /readyz and /metrics on a port of their own', async () => {
    const { broker, config } = await external();
    const server = closeAfter(cleanups, await createServer({ kind: 'dispatcher', broker: config, metrics: { port: 0, access: 'loopback' } }));
    expect(server.dispatcher.connected).toBe(true);
    expect(server.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const ready = await fetch(new URL('/readyz', server.metricsUrl!));
    expect([ready.status, await ready.json()]).toEqual([200, { status: 'ready' }]);
    expect(await (await fetch(new URL('/metrics', server.metricsUrl!))).text()).toMatch(/^dpow_dispatcher_leader 1$/m);
    // The dispatcher is the broker's server role: it publishes the heartbeat there. On an external
    // broker (which lets any login take over a client id) it holds a standby connection for results.
    await waitFor('a heartbeat', () => server.dispatcher.counters.published.heartbeat > 0);
    expect(broker.connectedByRole().server).toBe(2);

    await server.close();
    const port = Number(new URL(server.metricsUrl!).port);
    expect(await canConnect('127.0.0.1', port)).toBe(false);
    await waitFor('the dispatcher to leave the broker', () => broker.connectedByRole().server === 0);
  });

  it('leaves no port open when the broker refuses it', async () => {
    const { config } = await external();
    const port = await freePort();
    const attempt = createServer({ kind: 'dispatcher', broker: { ...config, password: 'wrong' }, metrics: { port, access: false } });
    await expect(attempt).rejects.toThrow(/^cannot connect to mqtt:\/\//);
    expect(await canConnect('127.0.0.1', port)).toBe(false);
  });
});

describe('createServer, what every kind shares', () => {
  it('closes the store it opened, and leaves a given one to its caller', async () => {
    const { config } = await external();
    const given = new MemoryStore();
    const server = await createServer({ kind: 'dispatcher', broker: config, store: { kind: 'given', store: given } });
    const owned = await createServer({ kind: 'dispatcher', broker: config });
    await server.close();
    await owned.close();
    await expect(given.getTotals()).resolves.toEqual({ precache: 0, ondemand: 0 });
    await expect(owned.store.getTotals()).rejects.toThrow('store is closed');
    await given.close();
  });

  it('runs the demo only when asked, with its short-lived jobs', async () => {
    const { config } = await external();
    const quiet = closeAfter(cleanups, await createServer({ kind: 'app', http: { port: 0, staticDir: 'no-such-dir' } }));
    expect(quiet.demo).toBeUndefined();
    const demo = closeAfter(
      cleanups,
      await createServer({ kind: 'dispatcher', broker: config, demo: { precacheEveryMs: 20, ondemandEveryMs: 0, difficulty: 'ff00000000000000' } }),
    );
    await waitFor('a demo job', () => demo.dispatcher.pending.length > 0);
    expect(demo.demo!.counters.precache).toBeGreaterThan(0);
    // Demo jobs nobody takes go after two minutes, not the default half hour.
    const job = demo.dispatcher.pending[0];
    expect(job.expiresAt - Date.now()).toBeLessThanOrEqual(120_000);
  });

  it('starts the feeds it is given and reports them in the metrics', async () => {
    const { config } = await external();
    const server = closeAfter(
      cleanups,
      await createServer({
        kind: 'dispatcher',
        broker: config,
        metrics: { port: 0, access: 'loopback' },
        feeds: { specs: [{ kind: 'nano-sim' }], simIntervalMs: 40, nanoDifficulty: 0xff00000000000000n, refreshMs: 0 },
      }),
    );
    expect(server.feeds).toHaveLength(1);
    const [feed] = server.feeds;
    await waitFor('the feed to precache', () => feed.connected && feed.policy.stats.precached > 0);
    const text = await (await fetch(new URL('/metrics', server.metricsUrl!))).text();
    expect(text).toContain(`dpow_feed_connected{feed="${feed.description}"} 1`);
    await server.close();
    expect(server.feeds).toHaveLength(0);
  });
});
