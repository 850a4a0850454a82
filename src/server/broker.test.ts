import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { Broker, type BrokerOptions } from './broker.ts';
import { filtersOverlap, topicMatches } from './broker-rules.ts';
import { cleanupsAfterEach, closeAfter } from '../testkit/cleanups.ts';
import { connectAs, TEST_USERS as USERS } from '../testkit/mqtt.ts';
import { sleep, waitFor } from '../testkit/wait.ts';
import { MOSQUITTO_ACL_BEHAVIOUR, observeAcl } from '../testkit/broker-acl.ts';

const cleanup = cleanupsAfterEach();

async function broker(extra: Partial<BrokerOptions> = {}): Promise<Broker> {
  return closeAfter(cleanup, await Broker.start({ users: USERS, tcpPort: 0, ...extra }));
}

/** Collects messages per topic for a subscriber. */
function collect(c: MqttClient): Array<{ topic: string; payload: string }> {
  const seen: Array<{ topic: string; payload: string }> = [];
  c.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
  return seen;
}

/** Subscribes topic by topic and returns the granted code of each (128 = refused). */
async function grantedCodes(c: MqttClient, topics: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const topic of topics) {
    out[topic] = await new Promise<number>((resolve) =>
      c.subscribe(topic, (err, granted) => {
        if (err) resolve((err as Error & { packet?: { granted?: number[] } }).packet?.granted?.[0] ?? -1);
        else resolve(granted?.[0]?.qos ?? -1);
      }),
    );
  }
  return out;
}

describe('topic filters', () => {
  it('matches concrete topics like MQTT does', () => {
    expect(topicMatches('client/+', 'client/nano_abc')).toBe(true);
    expect(topicMatches('client/+', 'client/a/b')).toBe(false);
    expect(topicMatches('work/#', 'work')).toBe(true);
    expect(topicMatches('#', '$SYS/x')).toBe(false);
    expect(topicMatches('result/precache', 'result/ondemand')).toBe(false);
  });

  it('grants a subscription when it could deliver at least one allowed topic', () => {
    const overlaps: Array<[string, string, boolean]> = [
      ['work/#', 'work/#', true],
      ['work/#', 'work/precache', true],
      ['work/#', 'work', true],
      ['work/#', '#', true],
      ['work/#', '+/precache', true],
      ['work/#', '+/+', true],
      ['heartbeat', '+', true],
      ['heartbeat', '+/+', false],
      ['heartbeat', 'heartbeat/#', true],
      ['heartbeat', 'heartbeat/x', false],
      ['result/+', 'result/#', true],
      ['result/+', 'result', false],
      ['client/+', 'client/nano_x/y', false],
      ['work/#', 'result/#', false],
      ['#', '$SYS/#', false],
      ['+/+', '$SYS/x', false],
      ['$SYS/#', '$SYS/x', true],
    ];
    for (const [a, b, want] of overlaps) {
      expect(filtersOverlap(a, b), `${a} ~ ${b}`).toBe(want);
      expect(filtersOverlap(b, a), `${b} ~ ${a}`).toBe(want);
    }
  });
});

describe('embedded broker roles', () => {
  it('lets a client publish results that the server reads', async () => {
    const b = await broker();
    const server = await connectAs(b.tcpUrl!, 'server', cleanup);
    const seen = collect(server);
    await server.subscribeAsync(['result/precache', 'result/ondemand']);
    const client = await connectAs(b.wsUrl, 'client', cleanup);
    await client.publishAsync('result/ondemand', 'a,b,c');
    await waitFor('the message', () => seen.length === 1);
    expect(seen[0]).toEqual({ topic: 'result/ondemand', payload: 'a,b,c' });
  });

  it('refuses client publishes outside result/ and delivers none of them', async () => {
    const b = await broker();
    const dash = await connectAs(b.tcpUrl!, 'dashboard', cleanup);
    const seen = collect(dash);
    await dash.subscribeAsync('#');
    const forbidden = ['work/precache', 'work/x', 'cancel/ondemand', 'cancel/x', 'heartbeat', 'statistics', 'client/nano_x'];
    for (const topic of forbidden) {
      const client = await connectAs(b.wsUrl, 'client', cleanup);
      client.publish(topic, 'forged');
      await waitFor('the refusal', () => b.counters.refusedByTopic[`client:${topic}`] === 1);
    }
    // A legitimate publish after the forgeries proves the subscriber was listening all along.
    const honest = await connectAs(b.wsUrl, 'client', cleanup);
    await honest.publishAsync('result/precache', 'ok');
    await waitFor('the honest message', () => seen.length >= 1);
    await sleep(50);
    expect(seen).toEqual([{ topic: 'result/precache', payload: 'ok' }]);
    expect(b.counters.refusedPublish).toBe(forbidden.length);
  });

  it('refuses client subscriptions that can deliver nothing readable, such as result/', async () => {
    const b = await broker();
    const client = await connectAs(b.wsUrl, 'client', cleanup);
    const byTopic = await grantedCodes(client, ['result/#', 'result/precache', '$SYS/#', '#', 'work/#', 'cancel/#', 'client/+', 'heartbeat', 'statistics']);
    expect(byTopic['result/#']).toBe(128);
    expect(byTopic['result/precache']).toBe(128);
    expect(byTopic['$SYS/#']).toBe(128);
    for (const ok of ['#', 'work/#', 'cancel/#', 'client/+', 'heartbeat', 'statistics']) expect(byTopic[ok]).toBe(0);
    expect(b.counters.refusedSubscribe).toBe(3);

    // And nothing published on result/ reaches it.
    const seen = collect(client);
    const other = await connectAs(b.wsUrl, 'client', cleanup);
    await other.publishAsync('result/precache', 'secret');
    await sleep(100);
    expect(seen).toEqual([]);
    expect(client.connected).toBe(true);
  });

  it('behaves as mosquitto with the original ACL: wildcards granted and filtered, a forbidden QoS 1 publish acked and dropped', async () => {
    const b = await broker();
    // The scenario and the observations are the ones mosquitto.test.ts checks on real mosquitto.
    expect(await observeAcl((role) => connectAs(b.wsUrl, role, cleanup))).toEqual(MOSQUITTO_ACL_BEHAVIOUR);
    // The forgery is still counted and logged as a refusal.
    expect(b.counters.refusedByTopic['client:work/ondemand']).toBe(1);
  });

  it('refuses a bad password, an unknown user and an anonymous login', async () => {
    const b = await broker();
    await expect(connectAs(b.tcpUrl!, { username: 'server', password: 'wrong' }, cleanup)).rejects.toThrow(/Bad username or password|Not authorized/);
    await expect(connectAs(b.wsUrl, { username: 'nobody', password: 'client' }, cleanup)).rejects.toThrow();
    await expect(mqtt.connectAsync(b.wsUrl, { protocolVersion: 4, reconnectPeriod: 0 })).rejects.toThrow();
    expect(b.counters.refusedLogins).toBe(3);
  });

  it('does not let a worker take over the dispatcher’s session by reusing its client id', async () => {
    const b = await broker();
    const server = await connectAs(b.tcpUrl!, 'server', cleanup, { clientId: 'dispatcher-1' });
    await expect(
      connectAs(b.wsUrl, 'client', cleanup, { clientId: 'dispatcher-1' }),
    ).rejects.toThrow(/Identifier rejected/);
    await sleep(50);
    expect(server.connected).toBe(true);
  });

  it('lets the dashboard read everything and publish nothing', async () => {
    const b = await broker();
    const dash = await connectAs(b.wsUrl, 'dashboard', cleanup);
    const seen = collect(dash);
    await dash.subscribeAsync('#');
    const server = await connectAs(b.tcpUrl!, 'server', cleanup);
    const client = await connectAs(b.tcpUrl!, 'client', cleanup);
    await server.publishAsync('work/ondemand', 'w');
    await client.publishAsync('result/ondemand', 'r');
    await waitFor('both messages', () => seen.length === 2);
    expect(seen.map((m) => m.topic).sort()).toEqual(['result/ondemand', 'work/ondemand']);

    const dash2 = await connectAs(b.wsUrl, 'dashboard', cleanup);
    dash2.publish('work/ondemand', 'forged');
    await waitFor('the refusal', () => b.counters.refusedByTopic['dashboard:work/ondemand'] === 1);
    await sleep(50);
    expect(seen).toHaveLength(2);
  });

  it('keeps the server from publishing results or reading client topics', async () => {
    const b = await broker();
    const server = await connectAs(b.tcpUrl!, 'server', cleanup);
    expect(await grantedCodes(server, ['work/#', 'result/+'])).toEqual({ 'work/#': 128, 'result/+': 0 });
    server.publish('result/precache', 'forged');
    await waitFor('the refusal', () => b.counters.refusedByTopic['server:result/precache'] === 1);
  });

  it('retains nothing but the latest statistics, which a new subscriber gets at once', async () => {
    const b = await broker();
    const server = await connectAs(b.tcpUrl!, 'server', cleanup);
    await server.publishAsync('statistics', '{"old":1}', { retain: true, qos: 1 });
    await server.publishAsync('statistics', '{"new":2}', { retain: true, qos: 1 });
    await server.publishAsync('heartbeat', '', { retain: true, qos: 1 });
    await server.publishAsync('work/precache', `${'AB'.repeat(32)},fffffff800000000`, { retain: true, qos: 1 });
    const client = await connectAs(b.wsUrl, 'client', cleanup);
    const seen = collect(client);
    await client.subscribeAsync(['statistics', 'heartbeat', 'work/#']);
    await waitFor('the retained statistics', () => seen.length > 0);
    await sleep(100);
    expect(seen).toEqual([{ topic: 'statistics', payload: '{"new":2}' }]);
    // A worker cannot plant statistics (the ACL refuses it) nor retain a result.
    const other = await connectAs(b.tcpUrl!, 'client', cleanup);
    await other.publishAsync('result/precache', `${'CD'.repeat(32)},0000000000000000,nano_x`, { retain: true, qos: 1 });
    const late = await connectAs(b.wsUrl, 'dashboard', cleanup);
    const lateSeen = collect(late);
    await late.subscribeAsync('#');
    await waitFor('the retained statistics', () => lateSeen.length > 0);
    await sleep(100);
    expect(lateSeen.filter((m) => !m.topic.startsWith('$'))).toEqual([{ topic: 'statistics', payload: '{"new":2}' }]);
  });

  it('serves WebSocket clients on a path of a shared http server and leaves other paths alone', async () => {
    const server = http.createServer((_req, res) => res.end('app'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
    const b = await broker({ server, wsPath: '/mqtt', tcpPort: undefined });
    const port = (server.address() as AddressInfo).port;
    expect(b.wsUrl).toBe(`ws://127.0.0.1:${port}/mqtt`);
    expect(b.tcpUrl).toBeUndefined();
    const client = await connectAs(b.wsUrl, 'client', cleanup);
    expect(client.connected).toBe(true);
    const body = await (await fetch(`http://127.0.0.1:${port}/`)).text();
    expect(body).toBe('app');
    await expect(connectAs(`ws://127.0.0.1:${port}/other`, 'client', cleanup, { connectTimeout: 500 })).rejects.toThrow();
  });
});
