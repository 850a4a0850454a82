import { describe, expect, it } from 'vitest';
import { startBroker } from '../broker.ts';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { quietLogger } from '../../testkit/log.ts';
import { connectAs, TEST_USERS } from '../../testkit/mqtt.ts';
import { waitFor } from '../../testkit/wait.ts';
import { BrokerSession, type BrokerSessionOptions } from './broker-session.ts';
import { newCounters } from './counters.ts';

const cleanups = cleanupsAfterEach();
const ROOT = 'AB'.repeat(32);

function session(url: string, more: Partial<BrokerSessionOptions> = {}) {
  const results: Array<{ topic: string; payload: string }> = [];
  const counters = newCounters();
  let reconnects = 0;
  const s = new BrokerSession({
    url,
    username: 'server',
    password: TEST_USERS.server.password,
    clientId: `session-${Math.random().toString(16).slice(2)}`,
    connectTimeoutMs: 5000,
    counters,
    log: quietLogger,
    onResult: (topic, payload) => results.push({ topic, payload: payload.toString() }),
    onReconnect: () => reconnects++,
    ...more,
  });
  cleanups.push(() => s.close());
  return { s, results, counters, reconnects: () => reconnects };
}

describe('BrokerSession', () => {
  it('takes results from both result topics and publishes every server topic through its codec, counted', async () => {
    const broker = closeAfter(cleanups, await startBroker({ users: TEST_USERS, tcpPort: 0 }));
    const dash = await connectAs(broker.tcpUrl!, 'dashboard', cleanups);
    const seen: Array<{ topic: string; payload: string }> = [];
    dash.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
    await dash.subscribeAsync(['work/#', 'cancel/#', 'client/#', 'heartbeat', 'statistics']);
    const { s, results, counters } = session(broker.wsUrl);
    expect(await s.open()).toBe(true);
    expect(s.connected).toBe(true);

    const worker = await connectAs(broker.wsUrl, 'client', cleanups);
    await worker.publishAsync('result/precache', `${ROOT},00000000000000aa,nano_x`, { qos: 1 });
    await worker.publishAsync('result/ondemand', 'anything', { qos: 1 });
    await waitFor('both results', () => results.length === 2);
    expect(results).toEqual([
      { topic: 'result/precache', payload: `${ROOT},00000000000000aa,nano_x` },
      { topic: 'result/ondemand', payload: 'anything' },
    ]);

    s.publishWork(ROOT, 0xff00000000000000n, 'ondemand');
    s.publishCancel('ondemand', ROOT);
    s.publishClient('nano_x', { kind: 'error', error: 'why' });
    s.publishHeartbeat();
    s.publishStatistics('{"work":{}}');
    await waitFor('five messages', () => seen.length === 5);
    expect(seen.map((m) => [m.topic, m.payload])).toEqual([
      ['work/ondemand', `${ROOT},ff00000000000000`],
      ['cancel/ondemand', ROOT],
      ['client/nano_x', '{"error":"why"}'],
      ['heartbeat', ''],
      ['statistics', '{"work":{}}'],
    ]);
    expect(counters.published).toEqual({ work: 1, cancel: 1, heartbeat: 1, statistics: 1, client: 1 });
    expect(counters.jobs.ondemand.published).toBe(1);

    // Statistics are retained: a worker that connects later gets them at once.
    const late = await connectAs(broker.wsUrl, 'client', cleanups);
    const retained = new Promise<boolean>((resolve) => late.on('message', (_t, _p, packet) => resolve(packet.retain)));
    await late.subscribeAsync('statistics');
    expect(await retained).toBe(true);
  });

  it('survives a result handler that throws', async () => {
    const broker = closeAfter(cleanups, await startBroker({ users: TEST_USERS, tcpPort: 0 }));
    const errors: string[] = [];
    let calls = 0;
    const { s } = session(broker.tcpUrl!, {
      log: { ...quietLogger, error: (m: string) => errors.push(m) },
      onResult: () => {
        calls++;
        throw new Error('boom');
      },
    });
    await s.open();
    const worker = await connectAs(broker.tcpUrl!, 'client', cleanups);
    await worker.publishAsync('result/precache', 'one', { qos: 1 });
    await worker.publishAsync('result/precache', 'two', { qos: 1 });
    await waitFor('both handled', () => calls === 2);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/^dispatcher: result on result\/precache failed: Error: boom/);
    expect(s.connected).toBe(true);
  });

  it('fails to open with the reason, and opens nothing once closed', async () => {
    const broker = closeAfter(cleanups, await startBroker({ users: TEST_USERS, tcpPort: 0 }));
    await expect(session(broker.tcpUrl!, { password: 'wrong' }).s.open()).rejects.toThrow(
      /^cannot connect to mqtt:\/\/.*: (Bad username or password|Not authorized)/,
    );
    await expect(session('ws://127.0.0.1:1/mqtt', { connectTimeoutMs: 3000 }).s.open()).rejects.toThrow(/^cannot connect to ws:\/\/127\.0\.0\.1:1\/mqtt: /);

    const { s } = session(broker.tcpUrl!);
    const opening = s.open();
    await s.close();
    expect(await opening).toBe(false);
    expect(s.connected).toBe(false);
  });

  it('calls onReconnect when the connection comes back, not for the first one', async () => {
    const first = await startBroker({ users: TEST_USERS, tcpPort: 0 });
    const port = Number(new URL(first.tcpUrl!).port);
    const { s, reconnects } = session(first.tcpUrl!);
    await s.open();
    expect(reconnects()).toBe(0);
    await first.close();
    await waitFor('the disconnect', () => !s.connected);
    closeAfter(cleanups, await startBroker({ users: TEST_USERS, tcpPort: port }));
    await waitFor('the reconnect', () => reconnects() === 1, 10_000);
    expect(s.connected).toBe(true);
    // Leave before the broker closes, so the session does not chase it while the test ends.
    await s.close();
  });
});
