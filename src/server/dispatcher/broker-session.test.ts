import { describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { Broker } from '../broker.ts';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { quietLogger } from '../../testkit/log.ts';
import { connectAs, TEST_USERS } from '../../testkit/mqtt.ts';
import { waitFor, waitForAsync } from '../../testkit/wait.ts';
import { BrokerSession, newClientId, secretGroup, type BrokerSessionOptions } from './broker-session.ts';
import { newCounters } from './counters.ts';

const cleanups = cleanupsAfterEach();
const ROOT = 'AB'.repeat(32);

function session(url: string, more: Partial<BrokerSessionOptions> = {}) {
  const results: Array<{ topic: string; payload: string }> = [];
  const counters = newCounters();
  let reconnects = 0;
  /** The clients it opened, to learn their ids as a thief would (tests only: nothing else can). */
  const clients: MqttClient[] = [];
  const s = new BrokerSession({
    url,
    username: 'server',
    password: TEST_USERS.server.password,
    connectTimeoutMs: 5000,
    counters,
    log: quietLogger,
    onResult: (topic, payload) => results.push({ topic, payload: payload.toString() }),
    onReconnect: () => reconnects++,
    connect: (u, options) => {
      const client = mqtt.connect(u, options);
      clients.push(client);
      return client;
    },
    ...more,
  });
  cleanups.push(() => s.close());
  return { s, results, counters, clients, reconnects: () => reconnects };
}

/** A login that takes a client id over, and takes it back each time it is knocked off (as mqtt.js reconnects). */
async function thief(url: string, clientId: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { ...TEST_USERS.server, clientId, protocolVersion: 4, reconnectPeriod: 20 });
  cleanups.push(() => c.endAsync(true));
  return c;
}

describe('BrokerSession', () => {
  it('takes results from both result topics and publishes every server topic through its codec, counted', async () => {
    const broker = closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: 0 }));
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
    // One of each, in any order: MQTT orders a publisher's messages per topic, not across topics
    // of different QoS (on a loaded machine client/… has overtaken cancel/…).
    const byTopic = (a: string[], b: string[]) => a[0].localeCompare(b[0]);
    expect(seen.map((m) => [m.topic, m.payload]).sort(byTopic)).toEqual([
      ['work/ondemand', `${ROOT},ff00000000000000`],
      ['cancel/ondemand', ROOT],
      ['client/nano_x', '{"error":"why"}'],
      ['heartbeat', ''],
      ['statistics', '{"work":{}}'],
    ].sort(byTopic));
    expect(counters.published).toEqual({ work: 1, cancel: 1, heartbeat: 1, statistics: 1, client: 1 });
    expect(counters.jobs.ondemand.published).toBe(1);

    // Statistics are retained: a worker that connects later gets them at once.
    const late = await connectAs(broker.wsUrl, 'client', cleanups);
    const retained = new Promise<boolean>((resolve) => late.on('message', (_t, _p, packet) => resolve(packet.retain)));
    await late.subscribeAsync('statistics');
    expect(await retained).toBe(true);
  });

  it('survives a result handler that throws', async () => {
    const broker = closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: 0 }));
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
    const broker = closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: 0 }));
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

  it('connects under an unguessable client id, and a new one each time: a stolen id knocks it off once, not in a loop', async () => {
    const broker = closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: 0 }));
    const { s, clients, counters, results, reconnects } = session(broker.tcpUrl!);
    await s.open();
    const stolen = clients[0].options.clientId!;
    expect(stolen).toMatch(/^d[0-9A-Za-z]{22}$/);
    expect(new Set(Array.from({ length: 1000 }, newClientId)).size).toBe(1000);
    const t = await thief(broker.tcpUrl!, stolen);
    await waitFor('the session back', () => reconnects() === 1 && s.connected);
    expect(clients[0].options.clientId).not.toBe(stolen);
    // The thief keeps its stolen id; nothing of the session's answers to it any more.
    expect(t.connected).toBe(true);
    const worker = await connectAs(broker.tcpUrl!, 'client', cleanups);
    await worker.publishAsync('result/precache', 'after', { qos: 1 });
    await waitFor('a result after it', () => results.some((r) => r.payload === 'after'));
    expect(counters.broker.disconnects).toBe(1);
    // Alone, one connection cannot tell a takeover from an outage.
    expect(counters.broker.takeovers).toBe(0);
  });

  it('with a standby, takes each result once, loses none while a connection is taken over, and reports the takeover', async () => {
    const broker = closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: 0 }));
    const warnings: string[] = [];
    const { s, results, clients, counters, reconnects } = session(broker.tcpUrl!, {
      standby: true,
      log: { ...quietLogger, warn: (m: string) => warnings.push(m) },
    });
    await s.open();
    expect(clients).toHaveLength(2);
    expect(clients[0].options.clientId).not.toBe(clients[1].options.clientId);
    const worker = await connectAs(broker.tcpUrl!, 'client', cleanups);
    const published: string[] = [];
    const publish = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const payload = `${ROOT},${String(published.length).padStart(16, '0')},nano_x`;
        published.push(payload);
        await worker.publishAsync('result/ondemand', payload, { qos: 1 });
      }
    };
    await publish(5);
    await waitFor('five results', () => results.length === 5);

    // A login takes the first connection's id, and keeps trying while results are published.
    const t = await thief(broker.tcpUrl!, clients[0].options.clientId!);
    await publish(20);
    await waitFor('the takeover reported', () => counters.broker.takeovers === 1);
    await publish(5);
    await waitFor('every result', () => results.length >= published.length);
    expect(results.map((r) => r.payload)).toEqual(published);
    expect(reconnects()).toBe(0); // one connection stayed up: nothing to republish
    expect(counters.broker).toEqual({ disconnects: 1, takeovers: 1 });
    expect(warnings).toContainEqual(expect.stringMatching(/^dispatcher: broker connection 1 of 2 was taken over \(another login used its client id\)/));
    expect(t.connected).toBe(true);
    // Publishing goes on through whichever connection is up.
    s.publishCancel('ondemand', ROOT);
    expect(counters.published.cancel).toBe(1);
  });

  it('joins a shared group under a name only the server password gives', () => {
    expect(secretGroup('dispatchers', 'pw-1')).toMatch(/^dispatchers-[0-9a-f]{32}$/);
    expect(secretGroup('dispatchers', 'pw-1')).toBe(secretGroup('dispatchers', 'pw-1'));
    expect(secretGroup('dispatchers', 'pw-2')).not.toBe(secretGroup('dispatchers', 'pw-1'));
  });

  it('moves to the next node of a clustered broker when its node goes, subscribes there and says so', async () => {
    // Two aedes brokers stand in for two nodes: each is a broker of its own, so a result reaches
    // the session only where it has subscribed.
    const nodes = [await Broker.start({ users: TEST_USERS, tcpPort: 0 }), closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: 0 }))];
    const warnings: string[] = [];
    const { s, results, counters, reconnects, clients } = session(nodes[0].tcpUrl!, {
      failoverUrls: [nodes[1].tcpUrl!],
      log: { ...quietLogger, warn: (m: string) => warnings.push(m) },
    });
    expect(await s.open()).toBe(true);
    expect(s.nodes).toEqual([nodes[0].tcpUrl]);
    expect(counters.brokerFailovers).toBe(0);

    await nodes[0].close();
    await waitFor('the session on the second node', () => reconnects() === 1, 10_000);
    expect(s.nodes).toEqual([nodes[1].tcpUrl]);
    expect(counters.brokerFailovers).toBe(1);
    expect(warnings).toContain(`dispatcher: broker connection: broker node ${nodes[0].tcpUrl} is gone; connected to ${nodes[1].tcpUrl}, subscribed to results again; republishing pending jobs`);

    const worker = await connectAs(nodes[1].tcpUrl!, 'client', cleanups);
    // Subscribed again: a result published on the new node arrives (retried until the SUBACK is in).
    await waitForAsync(
      'a result on the new node',
      async () => {
        await worker.publishAsync('result/ondemand', `${ROOT},00000000000000bb,nano_y`, { qos: 1 });
        return results.length > 0;
      },
      10_000,
    );
    expect(results[0]).toEqual({ topic: 'result/ondemand', payload: `${ROOT},00000000000000bb,nano_y` });
    await s.close();
  });

  it('with a standby, keeps its two connections on different nodes: one node dying leaves results flowing, and the lost one moves to a third', async () => {
    const nodes = [
      await Broker.start({ users: TEST_USERS, tcpPort: 0 }),
      closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: 0 })),
      closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: 0 })),
    ];
    const urls = nodes.map((n) => n.tcpUrl!);
    const { s, results, counters, reconnects } = session(urls[0], { failoverUrls: urls.slice(1), standby: true });
    expect(await s.open()).toBe(true);
    expect(s.nodes).toEqual([urls[0], urls[1]]);

    await nodes[0].close();
    // The other connection is up throughout: results published on its node keep arriving.
    const worker = await connectAs(urls[1], 'client', cleanups);
    await worker.publishAsync('result/precache', `${ROOT},00000000000000cc,nano_z`, { qos: 1 });
    await waitFor('the result through the standing connection', () => results.length === 1);
    // The lost one skips node 2 (the other's) for node 3, and the pending jobs go out again there.
    await waitFor('the move to the third node', () => counters.brokerFailovers === 1, 10_000);
    expect(s.nodes).toEqual([urls[2], urls[1]]);
    expect(reconnects()).toBe(1);
    await s.close();
  });

  it('opens on the next node when the first is down, and gives up only on a refused login or every node failing', async () => {
    const live = closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: 0 }));
    const dead = 'mqtt://127.0.0.1:1';
    const { s } = session(dead, { failoverUrls: [live.tcpUrl!] });
    expect(await s.open()).toBe(true);
    expect(s.nodes).toEqual([live.tcpUrl]);

    await expect(session(dead, { failoverUrls: [live.tcpUrl!], password: 'wrong' }).s.open()).rejects.toThrow(
      /^cannot connect to mqtt:\/\/127\.0\.0\.1:1, mqtt:\/\/.*: (Bad username or password|Not authorized)/,
    );
    await expect(session(dead, { failoverUrls: ['mqtt://127.0.0.1:2'], connectTimeoutMs: 30_000 }).s.open()).rejects.toThrow(
      /^cannot connect to mqtt:\/\/127\.0\.0\.1:1, mqtt:\/\/127\.0\.0\.1:2: connection closed 6 times: .*ECONNREFUSED/,
    );
  });

  it("keeps reconnecting through a node's 'Server unavailable' (RabbitMQ electing its client-id registry) instead of giving up", async () => {
    const node = closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: 0 }));
    const { s, reconnects } = session(node.tcpUrl!);
    await s.open();
    // The broker drops the session's connection and answers the next two logins "Server unavailable".
    const authenticate = node.aedes.authenticate;
    let refusals = 0;
    node.aedes.authenticate = (client, username, password, done) => {
      if (refusals < 2) {
        refusals++;
        return done(Object.assign(new Error('Server unavailable'), { returnCode: 3 }) as never, false);
      }
      return authenticate.call(node.aedes, client, username, password, done);
    };
    for (const client of Object.values((node.aedes as unknown as { clients: Record<string, { close(): void }> }).clients)) client.close();
    await waitFor('the session back after two refusals', () => reconnects() === 1, 15_000);
    expect(refusals).toBe(2);
    expect(s.connected).toBe(true);
    await s.close();
  });

  it('calls onReconnect when the connection comes back, not for the first one', async () => {
    const first = await Broker.start({ users: TEST_USERS, tcpPort: 0 });
    const port = Number(new URL(first.tcpUrl!).port);
    const { s, reconnects } = session(first.tcpUrl!);
    await s.open();
    expect(reconnects()).toBe(0);
    await first.close();
    await waitFor('the disconnect', () => !s.connected);
    closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: port }));
    await waitFor('the reconnect', () => reconnects() === 1, 10_000);
    expect(s.connected).toBe(true);
    // Leave before the broker closes, so the session does not chase it while the test ends.
    await s.close();
  });
});
