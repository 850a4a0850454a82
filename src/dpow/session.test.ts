/**
 * The MQTT session against a real in-process broker (aedes over WebSocket) and a real mqtt.js
 * client playing the dispatcher: subscriptions, heartbeat watch, backoff and reconnectNow.
 */
import { describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { EventLog } from './event-log.ts';
import { MqttSession, subscriptionsFor, type SessionOptions, type SessionSettings } from './session.ts';
import { cleanupsAfterEach } from '../testkit/cleanups.ts';
import { waitFor } from '../testkit/wait.ts';
import { startPublisher, startWsBroker } from '../testkit/ws-broker.ts';

const ADDRESS = 'nano_1ik4ab366ik4ab366ik4ab366ik4ab366ik4ab366ik4ab366ik4myzudyzq';

const cleanups = cleanupsAfterEach();

function openSession(url: string | string[], extra: Partial<SessionSettings> = {}, options: Partial<SessionOptions> = {}) {
  const log = new EventLog({ now: Date.now, onChange: () => undefined });
  const messages: { topic: string; payload: string }[] = [];
  const ready: MqttClient[] = [];
  const lost: MqttClient[] = [];
  const session = new MqttSession({
    connect: (u, o) => mqtt.connect(u, o),
    events: log,
    now: Date.now,
    policy: { initialMs: 100, maxMs: 400 },
    random: Math.random,
    tickMs: 1000,
    onMessage: (topic, payload) => messages.push({ topic, payload: Buffer.from(payload).toString() }),
    onReady: (link) => ready.push(link),
    onLinkLost: (link) => lost.push(link),
    onChange: () => undefined,
    ...options,
  });
  cleanups.push(() => session.close());
  const opened = session.open({
    urls: typeof url === 'string' ? [url] : url,
    username: 'client',
    password: 'client',
    heartbeatTimeoutMs: 5000,
    subscriptions: subscriptionsFor('any', ADDRESS),
    ...extra,
  });
  return { session, log, messages, ready, lost, opened };
}

describe('MqttSession', () => {
  it('subscribes to heartbeat, statistics, work, cancel and its own client topic, and is ready once acknowledged', async () => {
    const broker = await startWsBroker();
    cleanups.push(() => broker.close());
    const pub = await startPublisher(broker.url);
    cleanups.push(() => pub.close());
    const { session, messages, ready, opened } = openSession(broker.url);
    await opened;
    await waitFor('online', () => session.connection === 'online');
    expect(ready).toHaveLength(1);
    expect(session.deliverable()).toBe(ready[0]);
    for (const topic of ['heartbeat', 'statistics', 'work/ondemand', 'cancel/precache', `client/${ADDRESS}`, `client/nano_other`, 'result/ondemand']) {
      await pub.publish(topic, 'x');
    }
    await waitFor('five messages', () => messages.length === 5);
    await pub.publish('heartbeat', 'last');
    await waitFor('the last one', () => messages.some((m) => m.payload === 'last'));
    expect(messages.map((m) => m.topic)).toEqual(['heartbeat', 'statistics', 'work/ondemand', 'cancel/precache', `client/${ADDRESS}`, 'heartbeat']);
  });

  it('shows the server offline after the heartbeat timeout, and back online on the next heartbeat', async () => {
    const broker = await startWsBroker();
    cleanups.push(() => broker.close());
    const { session, log, ready } = openSession(broker.url, { heartbeatTimeoutMs: 500 });
    await waitFor('online', () => session.connection === 'online');
    session.heartbeat();
    await waitFor('server-offline', () => session.connection === 'server-offline', 5000);
    const offline = log.events().find((e) => e.kind === 'heartbeat');
    expect(offline?.message).toMatch(/^Server appears to be offline\.\.\. \d+ seconds since last heartbeat$/);
    expect(Date.now() - session.lastHeartbeatAt!).toBeGreaterThan(500);
    // A server heard from and then quiet gets no results: they wait for its next heartbeat.
    expect(session.deliverable()).toBeNull();
    session.heartbeat();
    expect(session.connection).toBe('online');
    expect(log.events()[0].message).toBe('Server is back online');
    expect(Date.now() - session.lastHeartbeatAt!).toBeLessThan(500);
    expect(ready).toHaveLength(2);
  });

  it('keeps retrying with growing, capped delays until the broker comes up', async () => {
    const probe = await startWsBroker();
    const port = probe.port;
    await probe.close(); // nothing listens there now
    const { session, log, opened } = openSession(`ws://127.0.0.1:${port}`, {}, { random: () => 0.999 });
    await opened;
    expect(session.connection).toBe('reconnecting');
    await waitFor('four retries', () => log.events().filter((e) => e.message.startsWith('Cannot reach')).length >= 4);
    const delays = log
      .events()
      .filter((e) => e.message.startsWith('Cannot reach'))
      .map((e) => /retrying in ([\d.]+) s/.exec(e.message)?.[1])
      .reverse()
      .slice(0, 4);
    expect(delays).toEqual(['0.1', '0.2', '0.4', '0.4']);
    expect(log.events()[0].message).toMatch(/ECONNREFUSED/);
    const broker = await startWsBroker(port);
    cleanups.push(() => broker.close());
    await waitFor('online', () => session.connection === 'online');
    expect(session.error).toBeNull();
  });

  it('retries at once on reconnectNow instead of waiting out the backoff', async () => {
    const probe = await startWsBroker();
    const port = probe.port;
    await probe.close();
    const { session, opened } = openSession(`ws://127.0.0.1:${port}`, {}, { policy: { initialMs: 60_000, maxMs: 120_000 } });
    await opened;
    expect(session.connection).toBe('reconnecting');
    const broker = await startWsBroker(port);
    cleanups.push(() => broker.close());
    session.reconnectNow();
    await waitFor('online', () => session.connection === 'online', 5000);
    session.reconnectNow(); // nothing pending: no effect
    expect(session.connection).toBe('online');
  });

  it('goes to the next node of a clustered broker when one cannot be reached or drops, backing off as for one broker', async () => {
    const probe = await startWsBroker();
    const dead = probe.url;
    await probe.close(); // nothing listens there now
    const a = await startWsBroker();
    const b = await startWsBroker();
    cleanups.push(() => a.close(), () => b.close());
    const { session, log, ready } = openSession([dead, a.url, b.url], {}, { random: () => 0.999 });
    await waitFor('online on the second node', () => session.connection === 'online' && a.connections() === 1);
    expect(log.events().some((e) => e.message.startsWith(`Cannot reach the broker ${dead} (`) && e.message.endsWith(`; retrying to ${a.url} in 0.1 s`))).toBe(true);
    expect(ready).toHaveLength(1);

    await a.close();
    await waitFor('online on the third node', () => session.connection === 'online' && b.connections() === 1);
    expect(log.events().some((e) => e.message.startsWith(`Disconnected from the broker ${a.url}`) && e.message.endsWith(`; reconnecting to ${b.url} in 0.2 s`))).toBe(true);
    expect(log.events()[0].message).toBe(`Connected to ${b.url}`);
    expect(ready).toHaveLength(2);
  });

  it('says which connection was lost, and close() ends the retries', async () => {
    const broker = await startWsBroker();
    const { session, log, lost } = openSession(broker.url);
    await waitFor('online', () => session.connection === 'online');
    const link = session.deliverable();
    await broker.close();
    await waitFor('reconnecting', () => session.connection === 'reconnecting');
    expect(lost).toEqual([link]);
    expect(session.deliverable()).toBeNull();
    expect(log.events().some((e) => /^Disconnected from the broker/.test(e.message))).toBe(true);
    await session.close();
    expect(session.connection).toBe('stopped');
    const retries = log.events().length;
    await new Promise((r) => setTimeout(r, 600)); // past the longest backoff
    expect(log.events().length).toBe(retries);
  });
});
