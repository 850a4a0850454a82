/**
 * The MQTT front in front of a real broker's TCP listener (the embedded aedes one here; Debian's
 * mosquitto with the shipped config in attacks/mosquitto.test.ts and cli/mqtt-front.test.ts):
 * bytes carried unchanged both ways, a packet over its limit stopped at its header before the
 * broker sees any of it, connections capped per source and in total, a broker that does not
 * answer, and the operator's /metrics and /readyz; the plain TCP entry (RabbitMQ's volunteers,
 * deploy/rabbitmq) under the same checks, with one count of connections for both entries.
 */
import { describe, expect, it } from 'vitest';
import { Broker } from './broker.ts';
import { DEFAULT_CONNECTION_CAPS } from './connection-limit.ts';
import { MetricsServer } from './http/metrics-server.ts';
import type { Logger } from './log.ts';
import { MqttFront, type MqttFrontOptions } from './mqtt-front.ts';
import { PACKET_TYPES } from './mqtt-packet-size.ts';
import { cleanupsAfterEach, closeAfter } from '../testkit/cleanups.ts';
import { connectAs, TEST_USERS as USERS } from '../testkit/mqtt.ts';
import { encode, firstByte, fixedHeader, MAX_REMAINING_LENGTH, mib, MiB, RawMqtt, retainedBytes } from '../testkit/mqtt-attack.ts';
import { freePort } from '../testkit/net.ts';
import { waitFor, waitForAsync } from '../testkit/wait.ts';

const cleanups = cleanupsAfterEach();

async function brokerAndFront(options: Partial<MqttFrontOptions> = {}): Promise<{ broker: Broker; front: MqttFront }> {
  const broker = closeAfter(cleanups, await Broker.start({ users: USERS, tcpPort: 0 }));
  const front = closeAfter(cleanups, await MqttFront.start({ broker: broker.tcpUrl!, port: 0, ...options }));
  return { broker, front };
}

/** As a proxy on loopback forwards a caller at `source`. */
const from = (source: string) => ({ headers: { 'X-Forwarded-For': source } });

describe('the MQTT front', () => {
  it("carries a worker's MQTT to the broker and back, unchanged", async () => {
    const { broker, front } = await brokerAndFront();
    expect(front.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/mqtt$/);
    const server = await connectAs(broker.tcpUrl!, 'server', cleanups);
    const worker = await connectAs(front.url, 'client', cleanups);
    const jobs: string[] = [];
    worker.on('message', (topic, payload) => jobs.push(`${topic} ${payload}`));
    await worker.subscribeAsync(['work/#', 'cancel/#']);
    const results: string[] = [];
    server.on('message', (topic, payload) => results.push(`${topic} ${payload}`));
    await server.subscribeAsync('result/+');

    const hash = 'A'.repeat(64);
    await server.publishAsync('work/ondemand', `${hash},fffffff800000000`, { qos: 0 });
    await server.publishAsync('cancel/ondemand', hash, { qos: 1 });
    await waitFor('the job and its cancel', () => jobs.length === 2);
    expect(jobs).toEqual([`work/ondemand ${hash},fffffff800000000`, `cancel/ondemand ${hash}`]);
    // A result-sized payload, over many WebSocket frames and TCP segments.
    const result = `${hash},${'0'.repeat(16)},nano_${'1'.repeat(60)}`;
    await worker.publishAsync('result/ondemand', result, { qos: 1 });
    await waitFor('the result', () => results.length === 1);
    expect(results).toEqual([`result/ondemand ${result}`]);
    // The broker's own refusals travel back as they are: a wrong password gets CONNACK 4 through the front.
    await expect(connectAs(front.url, { username: 'client', password: 'wrong' }, cleanups)).rejects.toThrow(/Bad username or password/);
    expect(front.counters.piped).toBe(2);
    // Plain HTTP: the MQTT path wants an upgrade, nothing else is here.
    const http = front.url.replace(/^ws/, 'http');
    expect((await fetch(http)).status).toBe(426);
    expect((await fetch(new URL('/api/payouts/nano_x', http))).status).toBe(404);
  });

  it('closes a connection at the header of an oversize packet of every type, before the broker sees a byte of it', async () => {
    const { broker, front } = await brokerAndFront();
    for (const [n, type] of PACKET_TYPES.entries()) {
      const raw = await RawMqtt.open(front.url, cleanups);
      // After a login for all but CONNECT, as a worker's connection would be.
      if (type !== 'connect') expect((await raw.login(USERS.client)).returnCode).toBe(0);
      await raw.send(fixedHeader(firstByte(n), MAX_REMAINING_LENGTH));
      await raw.closed;
      expect(front.counters.oversizePackets[type], type).toBe(1);
    }
    // A PUBLISH a little over the payload limit and its topic, and a SUBSCRIBE over 1 KiB.
    for (const packet of [
      encode({ cmd: 'publish', topic: 'result/precache', payload: Buffer.alloc(66 * 1024), qos: 0, retain: false, dup: false }),
      encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `work/${'x'.repeat(2000)}`, qos: 0 }] }),
    ]) {
      const raw = await RawMqtt.open(front.url, cleanups);
      await raw.login(USERS.client);
      await raw.send(packet);
      await raw.closed;
    }
    expect(front.counters.oversizePackets).toMatchObject({ publish: 2, subscribe: 2 });
    // The broker checks sizes too, and saw none of these headers.
    expect(broker.counters.oversizePackets).toEqual({});
  });

  it('keeps no memory for unfinished packets that declare 256 MB', async () => {
    const { front } = await brokerAndFront();
    const before = retainedBytes();
    const raws: RawMqtt[] = [];
    let sent = 0;
    for (const type of ['connect', 'connect', 'subscribe', 'publish'] as const) {
      const raw = await RawMqtt.open(front.url, cleanups);
      raws.push(raw);
      if (type !== 'connect') await raw.login(USERS.client);
      await raw.send(fixedHeader(firstByte(PACKET_TYPES.indexOf(type)), MAX_REMAINING_LENGTH));
      sent += await raw.sendFiller(24 * MiB);
    }
    const held = retainedBytes() - before;
    console.log(`mqtt-front: 4 unfinished 256 MB packets, ${mib(sent)} sent: ${mib(held)} held`);
    expect(held).toBeLessThan(8 * MiB);
    for (const raw of raws) await raw.closed;
    expect(front.counters.oversizePackets).toEqual({ connect: 2, subscribe: 1, publish: 1 });
    // Stopped before the broker had even answered the first two: not the broker's failure.
    expect(front.counters.brokerUnreachable).toBe(0);
    expect(front.connections.caps).toEqual(DEFAULT_CONNECTION_CAPS);
  });

  it("caps connections per source and in total before the broker sees them, never the operator's own", async () => {
    const { broker, front } = await brokerAndFront({ limits: { maxConnectionsPerSource: 2, maxConnections: 4 } });
    const open = (source: string) => RawMqtt.open(front.url, cleanups, from(source));
    const first = await open('198.51.100.7');
    await open('198.51.100.7');
    await expect(open('198.51.100.7')).rejects.toMatchObject({ status: 429 });
    // One IPv6 /64 is one source.
    await open('2001:db8:5:5::1');
    await open('2001:db8:5:5::2');
    await expect(open('2001:db8:5:5:ffff::3')).rejects.toMatchObject({ status: 429 });
    // Four held: the total is reached for everyone else.
    await expect(open('192.0.2.44')).rejects.toMatchObject({ status: 503 });
    expect(front.counters.refusedConnections).toEqual({ 'per-source': 2, total: 1 });
    // ... but not for a worker on this machine that no proxy forwarded.
    const local = await connectAs(front.url, 'client', cleanups);
    expect(local.connected).toBe(true);
    expect([front.connections.open, front.connections.sources]).toEqual([5, 2]);
    // The refused ones never reached the broker: its connections are the five let in, and the server.
    await connectAs(broker.tcpUrl!, 'server', cleanups);
    await waitFor('the broker to count its connections', () => broker.connections.open === 6);
    // A connection that leaves frees its place.
    first.close();
    await waitFor('the place to be freed', () => front.connections.open === 4);
    await open('198.51.100.7');
  });

  it('answers a WebSocket 502 and closes a TCP connection while the broker takes none, counted and logged once', async () => {
    const lines: string[] = [];
    const log: Logger = { info: () => {}, warn: (m) => void lines.push(m), error: (m) => void lines.push(m) };
    const front = closeAfter(cleanups, await MqttFront.start({ broker: `mqtt://127.0.0.1:${await freePort()}`, port: 0, tcpPort: 0, log, logIntervalMs: 3_600_000 }));
    // Before any WebSocket exists: a proxy over several fronts takes a 502 for a reason to try the next.
    for (let i = 0; i < 2; i++) await expect(RawMqtt.open(front.url, cleanups)).rejects.toMatchObject({ status: 502 });
    const raw = await RawMqtt.open(front.tcpUrl!, cleanups);
    await raw.closed;
    expect(front.counters.brokerUnreachable).toBe(3);
    expect(front.connections.open).toBe(0);
    expect(lines).toEqual([expect.stringMatching(/^mqtt-front: answered a WebSocket upgrade 502 \(broker mqtt:\/\/127\.0\.0\.1:\d+\): the broker does not accept connections: .*ECONNREFUSED/)]);
    expect(await front.notReady()).toMatch(/^the broker does not accept connections: .*ECONNREFUSED/);
  });

  it('serves its counters on /metrics and says on /readyz whether the broker takes connections', async () => {
    const { broker, front } = await brokerAndFront({ limits: { maxConnectionsPerSource: 1 } });
    const served = closeAfter(cleanups, await MetricsServer.start({ port: 0, front, access: 'loopback' }));
    await RawMqtt.open(front.url, cleanups, from('198.51.100.7'));
    await expect(RawMqtt.open(front.url, cleanups, from('198.51.100.7'))).rejects.toMatchObject({ status: 429 });
    const oversize = await RawMqtt.open(front.url, cleanups);
    await oversize.send(fixedHeader(firstByte(1), 4096));
    await oversize.closed;

    const text = await (await fetch(new URL('/metrics', served.url))).text();
    expect(text).toMatch(/^dpow_mqtt_connections_refused_total\{reason="per-source"\} 1$/m);
    expect(text).toMatch(/^dpow_mqtt_oversize_packets_total\{type="connect"\} 1$/m);
    expect(text).toMatch(/^dpow_mqtt_open_connections 1$/m);
    expect(text).toMatch(/^dpow_mqtt_sources 1$/m);
    expect(text).toMatch(/^dpow_mqtt_front_piped_total 2$/m);
    expect(text).toMatch(/^dpow_mqtt_front_broker_unreachable_total 0$/m);
    expect((await fetch(new URL('/readyz', served.url))).status).toBe(200);
    // Once the broker is gone and the front has seen its connections end, a probe says so.
    await broker.close();
    const down = await waitForAsync('/readyz to say 503', async () => {
      const res = await fetch(new URL('/readyz', served.url));
      return res.status === 503 && ((await res.json()) as { reason: string });
    });
    expect(down.reason).toMatch(/^the broker does not accept connections/);
  });

  describe('with a TCP entry', () => {
    it("carries a worker's MQTT over TCP to the broker and back, unchanged", async () => {
      const { broker, front } = await brokerAndFront({ tcpPort: 0 });
      expect(front.tcpUrl).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
      const server = await connectAs(broker.tcpUrl!, 'server', cleanups);
      const worker = await connectAs(front.tcpUrl!, 'client', cleanups);
      const jobs: string[] = [];
      worker.on('message', (topic, payload) => jobs.push(`${topic} ${payload}`));
      await worker.subscribeAsync('work/#');
      const results: string[] = [];
      server.on('message', (topic, payload) => results.push(`${topic} ${payload}`));
      await server.subscribeAsync('result/+');
      const hash = 'B'.repeat(64);
      await server.publishAsync('work/ondemand', `${hash},fffffff800000000`, { qos: 1 });
      await waitFor('the job', () => jobs.length === 1);
      const result = `${hash},${'0'.repeat(16)},nano_${'1'.repeat(60)}`;
      await worker.publishAsync('result/ondemand', result, { qos: 1 });
      await waitFor('the result', () => results.length === 1);
      expect([jobs, results]).toEqual([[`work/ondemand ${hash},fffffff800000000`], [`result/ondemand ${result}`]]);
      await expect(connectAs(front.tcpUrl!, { username: 'client', password: 'wrong' }, cleanups)).rejects.toThrow(/Bad username or password/);
      expect(front.counters.piped).toBe(2);
    });

    it('closes a TCP connection at the header of an oversize packet, keeping none of its body, before the broker sees it', async () => {
      const { broker, front } = await brokerAndFront({ tcpPort: 0 });
      const before = retainedBytes();
      const connect = await RawMqtt.open(front.tcpUrl!, cleanups);
      await connect.send(fixedHeader(firstByte(1), MAX_REMAINING_LENGTH));
      const sent = await connect.sendFiller(40 * MiB);
      await connect.closed;
      const subscribe = await RawMqtt.open(front.tcpUrl!, cleanups);
      expect((await subscribe.login(USERS.client)).returnCode).toBe(0);
      await subscribe.send(encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `work/${'x'.repeat(2000)}`, qos: 0 }] }));
      await subscribe.closed;
      const held = retainedBytes() - before;
      console.log(`mqtt-front tcp: an unfinished CONNECT declaring 256 MB, ${mib(sent)} sent before the close: ${mib(held)} held`);
      expect(sent).toBeLessThan(8 * MiB);
      expect(held).toBeLessThan(8 * MiB);
      expect(front.counters.oversizePackets).toEqual({ connect: 1, subscribe: 1 });
      expect(broker.counters.oversizePackets).toEqual({});
    });

    it('counts TCP and WebSocket connections under one cap per source and one total', async () => {
      const { front } = await brokerAndFront({ tcpPort: 0, limits: { maxConnectionsPerSource: 2, maxConnections: 3 } });
      // A stranger on loopback: 127.0.0.2 over TCP, and the same address named by the proxy over WebSocket.
      const tcp = () => RawMqtt.open(front.tcpUrl!, cleanups, { localAddress: '127.0.0.2' });
      const ws = (source: string) => RawMqtt.open(front.url, cleanups, from(source));
      const first = await tcp();
      await ws('127.0.0.2');
      // The source holds two, one on each entry: a third is refused on either.
      await expect(ws('127.0.0.2')).rejects.toMatchObject({ status: 429 });
      const third = await tcp();
      await third.closed;
      expect(front.counters.refusedConnections).toEqual({ 'per-source': 2, total: 0 });
      // One more source fills the total of three; past it both entries refuse.
      await ws('198.51.100.7');
      await expect(ws('192.0.2.44')).rejects.toMatchObject({ status: 503 });
      const over = await RawMqtt.open(front.tcpUrl!, cleanups, { localAddress: '127.0.0.3' });
      await over.closed;
      expect(front.counters.refusedConnections).toEqual({ 'per-source': 2, total: 2 });
      expect([front.connections.open, front.connections.sources]).toEqual([3, 2]);
      // A TCP connection that leaves frees its place for a WebSocket.
      first.close();
      await waitFor('the place to be freed', () => front.connections.open === 2);
      await ws('192.0.2.44');
    });
  });
});
