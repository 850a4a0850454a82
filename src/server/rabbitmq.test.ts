/**
 * The shipped RabbitMQ deployment (deploy/rabbitmq/) as a 3-node cluster of Debian's real
 * rabbitmq-server 3.10 on loopback: rabbitmq.conf as shipped (plus each node's ports and name),
 * the logins made by make-users.sh. Checks the three DPoW roles with real MQTT clients over TCP
 * and Web MQTT, across nodes, and records what RabbitMQ does differently from Mosquitto: a
 * forbidden publish or subscription closes the connection, QoS 2 is granted as QoS 1, retained
 * messages stay on the node that took them, and a publish over the size cap is refused.
 * `dpow-web mqtt-front` in front of each node, as deploy/rabbitmq ships it, bounds what 3.10
 * cannot: an unfinished 40 MiB CONNECT through a front, over TCP or WebSocket, is closed at its
 * header and the node's memory stays flat, while sent straight to the node it grows; the roles
 * work through the fronts, whose caps count both entries together, and nginx spreads the page
 * over the fronts and skips the one whose node is dead.
 *
 * Skipped with a message only when rabbitmq-server is not installed AND this is not CI (.ci/run
 * installs it); under CI a missing binary fails.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateWork } from '../pow/work.ts';
import { CliProcess } from '../testkit/cli-process.ts';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeAddress } from '../dpow/address.ts';
import { subscriptionsFor } from '../dpow/session.ts';
import { cleanupsAfterEach } from '../testkit/cleanups.ts';
import { sample } from '../testkit/metrics.ts';
import { freePort, listeningAddresses } from '../testkit/net.ts';
import { makeCertificate, NGINX_SITE, nginxInstalled, startNginx } from '../testkit/nginx.ts';
import { DEPLOY_RABBITMQ, loginToRabbit, RabbitCluster, skipWithoutRabbitmq } from '../testkit/rabbitmq.ts';
import { firstByte, fixedHeader, MAX_REMAINING_LENGTH, mib, MiB, RawMqtt } from '../testkit/mqtt-attack.ts';
import { MqttFront } from './mqtt-front.ts';
import { sleep, waitFor, waitForAsync } from '../testkit/wait.ts';

const skip = skipWithoutRabbitmq('rabbitmq.test.ts');
const UPSTREAM = join(DEPLOY_RABBITMQ, 'nginx-mqtt-upstream.conf');

/**
 * deploy/nginx/dpow-web.conf with the edit nginx-mqtt-upstream.conf asks for (its `location /mqtt`
 * proxies to the cluster), and the upstream file with the test fronts' WebSocket ports.
 */
function proxiedSite(site: string, upstream: string, wsPorts: number[]): { site: string; upstream: string } {
  const edit = [...upstream.matchAll(/^# {5}(\S.*;)$/gm)].map((m) => m[1]);
  const location = /(location \/mqtt \{\n(\s*))proxy_pass http:\/\/dpow_web;/;
  if (edit.length !== 4 || !location.test(site)) throw new Error('the /mqtt edit of nginx-mqtt-upstream.conf does not fit deploy/nginx/dpow-web.conf');
  const servers = [...upstream.matchAll(/^\s*server 10\.0\.0\.\d:9001 (.*);$/gm)];
  if (servers.length !== wsPorts.length) throw new Error(`nginx-mqtt-upstream.conf names ${servers.length} fronts`);
  let i = 0;
  return {
    site: site.replace(location, (_, head: string, indent: string) => head + edit.join(`\n${indent}`)),
    upstream: upstream.replace(/^(\s*)server 10\.0\.0\.\d:9001 /gm, (_, indent: string) => `${indent}server 127.0.0.1:${wsPorts[i++]} `),
  };
}
let cluster: RabbitCluster;
/** One `dpow-web mqtt-front` per node, WebSocket and TCP, piping to that node's TCP listener. */
let fronts: MqttFront[] = [];
type Role = 'server' | 'client' | 'dashboard';
type Transport = 'tcp' | 'ws';

function inbox(c: MqttClient): string[] {
  const got: string[] = [];
  c.on('message', (topic, payload) => got.push(`${topic} ${String(payload)}`));
  return got;
}

/** 'closed' when the broker hangs up before `act` completes, else 'done'. */
function outcome(c: MqttClient, act: Promise<unknown>): Promise<'closed' | 'done'> {
  return Promise.race([act.then(() => 'done' as const, () => 'closed' as const), new Promise<'closed'>((resolve) => c.once('close', () => resolve('closed')))]);
}

describe.skipIf(skip)('deploy/rabbitmq as a 3-node cluster of real RabbitMQ', () => {
  beforeAll(async () => {
    cluster = await RabbitCluster.start();
    fronts = await Promise.all(cluster.nodes.map((n) => MqttFront.start({ broker: n.mqttUrl, port: 0, tcpPort: 0 })));
  }, 300_000);
  afterAll(async () => {
    await Promise.all(fronts.map((f) => f.close()));
    await cluster?.close();
  });
  const cleanups = cleanupsAfterEach();

  const url = (node: number, transport: Transport) => (transport === 'tcp' ? cluster.nodes[node].mqttUrl : cluster.nodes[node].wsUrl);
  const password = (role: Role) => (role === 'client' ? 'client' : cluster.secrets[role]);
  const login = (role: Role, node: number, transport: Transport) => loginToRabbit(url(node, transport), { username: role, password: password(role) }, cleanups);

  /**
   * The dispatcher's side, logged in on `node`: `job` sends an ondemand job easy enough for one
   * WASM thread and resolves with its result line once one arrives, its work checked.
   */
  const dispatcherOn = async (node: number) => {
    const easy = 'fff0000000000000';
    const server = await login('server', node, 'tcp');
    const results = inbox(server);
    await server.subscribeAsync('result/+', { qos: 1 });
    const job = async (hash: string): Promise<string> => {
      await server.publishAsync('heartbeat', '', { qos: 0 });
      await server.publishAsync('work/ondemand', `${hash},${easy}`, { qos: 1 });
      const result = await waitFor(`the result for ${hash.slice(0, 8)}`, () => results.find((r) => r.startsWith(`result/ondemand ${hash},`)), 60_000);
      expect(validateWork(hash, result.split(',')[1], easy).valid).toBe(true);
      return result;
    };
    return { job, easy };
  };

  it('listens on loopback only', () => {
    // Read from the kernel's table of listening sockets: nothing is sent to another address.
    for (const node of cluster.nodes) {
      for (const port of [node.ports.mqtt, node.ports.ws]) {
        const bound = listeningAddresses(port);
        expect(bound.length, `port ${port}`).toBeGreaterThan(0);
        for (const address of bound) expect(['127.0.0.1', '0:0:0:0:0:0:0:1'], `port ${port}`).toContain(address);
      }
    }
  });

  it.each<Transport>(['tcp', 'ws'])('refuses wrong passwords, anonymous logins and the removed guest over %s', async (transport) => {
    // Over TCP the CONNACK says why; Web MQTT hangs up without one.
    const refused = (options: mqtt.IClientOptions) =>
      new Promise<string>((resolve) => {
        const c = mqtt.connect(url(0, transport), { protocolVersion: 4, reconnectPeriod: 0, ...options });
        c.once('connect', () => (c.end(true), resolve('connected')));
        c.once('error', (err) => (c.end(true), resolve(err.message)));
        c.once('close', () => resolve('closed'));
      });
    const want = transport === 'tcp' ? /Bad username or password/ : /^closed$/;
    expect(await refused({ username: 'server', password: 'client' })).toMatch(want);
    expect(await refused({ username: 'dashboard', password: 'wrong' })).toMatch(want);
    expect(await refused({})).toMatch(want);
    expect(await refused({ username: 'guest', password: 'guest' })).toMatch(want);
  });

  it('carries the roles across nodes over TCP and Web MQTT: work out to a volunteer, its result back to the dispatcher, all of it to the dashboard', async () => {
    const address = encodeAddress(randomBytes(32));
    const volunteer = await login('client', 1, 'ws');
    const got = inbox(volunteer);
    // Exactly what a worker subscribes to ("any" work): granted, at the QoS asked.
    const subscriptions = subscriptionsFor('any', address);
    const granted = await volunteer.subscribeAsync(subscriptions);
    expect(granted.map((g) => [g.topic, g.qos])).toEqual(Object.entries(subscriptions).map(([topic, { qos }]) => [topic, qos]));
    const dashboard = await login('dashboard', 2, 'ws');
    const seen = inbox(dashboard);
    await dashboard.subscribeAsync('#', { qos: 1 });
    const server = await login('server', 0, 'tcp');
    const results = inbox(server);
    await server.subscribeAsync(['result/precache', 'result/ondemand'], { qos: 1 });

    const sent = [
      ['work/precache', 'A,fffffff800000000'],
      ['work/ondemand', 'B,fffffff800000000'],
      ['cancel/ondemand', 'B'],
      [`client/${address}`, '{"precache":1}'],
      ['heartbeat', ''],
      ['statistics', '{}'],
    ];
    for (const [topic, payload] of sent) await server.publishAsync(topic, payload, { qos: 1 });
    await waitFor('the volunteer to get everything', () => got.length === sent.length);
    expect(got).toEqual(sent.map(([t, p]) => `${t} ${p}`));

    const worker = await login('client', 2, 'tcp');
    await worker.publishAsync('result/ondemand', `B,0000000000000001,${address}`, { qos: 1 });
    await waitFor('the dispatcher to get the result', () => results.length === 1);
    expect(results).toEqual([`result/ondemand B,0000000000000001,${address}`]);
    await waitFor('the dashboard to see it all', () => seen.length === sent.length + 1);
    expect(seen).toEqual(expect.arrayContaining([...sent.map(([t, p]) => `${t} ${p}`), `result/ondemand B,0000000000000001,${address}`]));
  });

  it.each<Transport>(['tcp', 'ws'])(
    'a volunteer cannot publish work or read results, and the dashboard publishes nothing: over %s the connection is closed and nothing is delivered',
    async (transport) => {
      const watcher = await login('dashboard', 0, 'tcp');
      const seen = inbox(watcher);
      await watcher.subscribeAsync('#', { qos: 1 });

      const forged: Array<[Role, string]> = [
        ['client', 'work/ondemand'],
        ['client', 'cancel/precache'],
        ['client', 'heartbeat'],
        ['client', 'statistics'],
        ['client', 'client/nano_x'],
        ['dashboard', 'work/ondemand'],
        ['dashboard', 'result/precache'],
      ];
      for (const [role, topic] of forged) {
        const rogue = await login(role, 1, transport);
        expect(await outcome(rogue, rogue.publishAsync(topic, 'forged', { qos: 1 })), `${role} publishing ${topic}`).toBe('closed');
      }
      // Subscriptions that would cover results (every volunteer's address and work).
      for (const filter of ['#', '+/+', '+/precache', 'result/#', 'result/ondemand']) {
        const snoop = await login('client', 2, transport);
        expect(await outcome(snoop, snoop.subscribeAsync(filter, { qos: 1 })), `client subscribing ${filter}`).toBe('closed');
      }
      // The dispatcher may publish there: the barrier after which a forgery would have arrived.
      const server = await login('server', 2, transport);
      await server.publishAsync('work/ondemand', 'barrier', { qos: 1 });
      await waitFor('the barrier', () => seen.length >= 1);
      expect(seen).toEqual(['work/ondemand barrier']);
    },
  );

  it('grants a QoS 2 subscription as QoS 1 (RabbitMQ has no QoS 2)', async () => {
    const volunteer = await login('client', 0, 'tcp');
    expect((await volunteer.subscribeAsync('heartbeat', { qos: 2 }))[0].qos).toBe(1);
  });

  it('keeps a retained message on the node that took it: a subscriber on another node does not get it', async () => {
    const server = await login('server', 0, 'tcp');
    await server.publishAsync('statistics', '{"retained":"node0"}', { qos: 1, retain: true });
    const here = await login('client', 0, 'ws');
    const hereGot = inbox(here);
    await here.subscribeAsync('statistics', { qos: 1 });
    await waitFor('the retained statistics on its own node', () => hereGot.length === 1);
    expect(hereGot).toEqual(['statistics {"retained":"node0"}']);

    const there = await login('client', 1, 'ws');
    const thereGot = inbox(there);
    await there.subscribeAsync('statistics', { qos: 1 });
    // A live publish is the barrier: the retained one would have come before it.
    await server.publishAsync('statistics', '{"live":true}', { qos: 1 });
    await waitFor('the live statistics on the other node', () => thereGot.length >= 1);
    expect(thereGot).toEqual(['statistics {"live":true}']);
    // Cleared, so the other tests start without it.
    await server.publishAsync('statistics', '', { qos: 1, retain: true });
  });

  it.each<Transport>(['tcp', 'ws'])('drops a publish over 64 KiB (max_message_size) over %s; a normal result passes', async (transport) => {
    const server = await login('server', 0, 'tcp');
    const results = inbox(server);
    await server.subscribeAsync('result/precache', { qos: 1 });
    const big = await login('client', 1, transport);
    // Never acknowledged (RabbitMQ 3.10 closes the session's channel, not its connection).
    big.publish('result/precache', Buffer.alloc(70_000, 'a'), { qos: 1 });
    const normal = await login('client', 1, transport);
    await normal.publishAsync('result/precache', 'A,0000000000000001,nano_x', { qos: 1 });
    await waitFor('the normal result', () => results.length >= 1);
    expect(results).toEqual(['result/precache A,0000000000000001,nano_x']);
  });

  it('caps MQTT connections across the cluster at make-users.sh MAX_CONNECTIONS: past it a TCP login is refused, a WebSocket one closed', async () => {
    const attempt = (u: string) =>
      new Promise<string>((resolve) => {
        const c = mqtt.connect(u, { username: 'client', password: 'client', protocolVersion: 4, reconnectPeriod: 0 });
        cleanups.push(() => c.endAsync(true));
        c.once('connect', () => resolve('connected'));
        c.once('error', (err) => resolve(err.message));
        c.once('close', () => resolve('closed'));
      });
    await cluster.makeUsers({ MAX_CONNECTIONS: '2' });
    cleanups.push(() => cluster.makeUsers());
    expect(await attempt(url(0, 'tcp'))).toBe('connected');
    expect(await attempt(url(1, 'ws'))).toBe('connected');
    // The check RabbitMQ makes at each login (MQTT's are not in list_connections in 3.10): true once both are counted.
    const full = () => cluster.nodes[2].ctl(['eval', 'rabbit_vhost_limit:is_over_connection_limit(<<"/">>).']);
    await waitForAsync('the cluster to count both', async () => (await full()).includes('{true,2}'));
    expect(await attempt(url(2, 'tcp'))).toMatch(/Not authorized/);
    expect(await attempt(url(2, 'ws'))).toBe('closed');
  });

  describe('behind dpow-web mqtt-front', () => {
    /**
     * The node's RSS growth while a connection at `url` sends the header of a CONNECT declaring
     * 256 MB and then up to 40 MiB of it, held open (as bench:cluster's measurement did).
     */
    const unfinishedConnect = async (node: number, url: string) => {
      const before = await cluster.nodes[node].rss();
      const raw = await RawMqtt.open(url, cleanups);
      await raw.send(fixedHeader(firstByte(1), MAX_REMAINING_LENGTH));
      const sent = await raw.sendFiller(40 * MiB);
      const grown = (await cluster.nodes[node].rss()) - before;
      return { raw, sent, grown };
    };

    it('closes an unfinished 40 MiB CONNECT at its header over TCP and WebSocket, the node flat; straight to the node it grows', { timeout: 120_000 }, async () => {
      for (const url of [fronts[0].tcpUrl!, fronts[0].url]) {
        const { raw, sent, grown } = await unfinishedConnect(0, url);
        await raw.closed;
        console.log(`rabbitmq behind mqtt-front (${url.split(':')[0]}): an unfinished CONNECT declaring 256 MB, ${mib(sent)} sent before the close: node RSS grew ${mib(grown)}`);
        expect(sent).toBeLessThan(8 * MiB);
        expect(grown).toBeLessThan(8 * MiB);
      }
      expect(fronts[0].counters.oversizePackets).toMatchObject({ connect: 2 });
      // The same packet at the node's own listener, which the fronts keep private: 3.10 keeps it.
      const { raw, sent, grown } = await unfinishedConnect(0, cluster.nodes[0].mqttUrl);
      console.log(`rabbitmq straight: an unfinished CONNECT declaring 256 MB, ${mib(sent)} sent, ${raw.isClosed ? 'closed' : 'still open'}: node RSS grew ${mib(grown)}`);
      raw.close();
      expect(grown).toBeGreaterThan(32 * MiB);
    });

    it('is transparent: a headless worker over TCP computes work for the dispatcher, a dashboard over WebSocket sees it all', { timeout: 120_000 }, async () => {
      const address = encodeAddress(randomBytes(32));
      const { job, easy } = await dispatcherOn(0);
      const dashboard = await loginToRabbit(fronts[1].url, { username: 'dashboard', password: password('dashboard') }, cleanups);
      const seen = inbox(dashboard);
      await dashboard.subscribeAsync('#', { qos: 1 });
      const worker = CliProcess.start(['worker', '--broker', fronts[2].tcpUrl!, '--address', address, '--backend', 'wasm', '--threads', '1']);
      cleanups.push(() => worker.kill('SIGKILL'));
      await worker.waitForOutput(new RegExp(`Connected to ${fronts[2].tcpUrl}`), 60_000);

      const hash = 'C3'.repeat(32);
      const result = await job(hash);
      expect(result.split(',')[2]).toBe(address);
      await waitFor('the dashboard to see the job and the result', () => seen.includes(`work/ondemand ${hash},${easy}`) && seen.includes(result));
      // The node's refusals travel back unchanged: a wrong password gets its CONNACK through the front.
      await expect(loginToRabbit(fronts[2].tcpUrl!, { username: 'server', password: 'wrong' }, cleanups)).rejects.toThrow(/Bad username or password/);
      await worker.kill('SIGTERM');
      expect(fronts[2].counters.piped).toBeGreaterThanOrEqual(2);
    });

    it('caps connections across its TCP and WebSocket entries together', async () => {
      const front = await MqttFront.start({ broker: cluster.nodes[1].mqttUrl, port: 0, tcpPort: 0, limits: { maxConnectionsPerSource: 2, maxConnections: 3 } });
      cleanups.push(() => front.close());
      const client = { username: 'client', password: 'client' };
      // 127.0.0.2 is a stranger on loopback: over TCP by its address, over WebSocket as the proxy names it.
      const tcp = (from = '127.0.0.2') => RawMqtt.open(front.tcpUrl!, cleanups, { localAddress: from });
      const ws = (source: string) => RawMqtt.open(front.url, cleanups, { headers: { 'X-Forwarded-For': source } });
      const loggedIn = async (raw: RawMqtt) => expect((await raw.login(client)).returnCode).toBe(0);
      await loggedIn(await tcp());
      await loggedIn(await ws('127.0.0.2'));
      await expect(ws('127.0.0.2')).rejects.toMatchObject({ status: 429 });
      await (await tcp()).closed;
      await loggedIn(await ws('198.51.100.7'));
      await expect(ws('192.0.2.44')).rejects.toMatchObject({ status: 503 });
      await (await tcp('127.0.0.3')).closed;
      expect(front.counters.refusedConnections).toEqual({ 'per-source': 2, total: 2 });
      expect(front.connections.open).toBe(3);
    });
  });

  // These last three kill a node (and bring it back for whatever runs after).
  it('a dispatcher given every node keeps the statistics on every node, and moves on when its node dies', { timeout: 300_000 }, async () => {
    const brokers = cluster.nodes.map((n) => n.mqttUrl);
    const dispatcher = CliProcess.start(
      ['start', '--dispatcher-only', '--broker', brokers.join(','), '--broker-username', 'server', '--memory', '--metrics-port', '0',
        '--demo', '--demo-difficulty', 'fff0000000000000', '--demo-precache-every', '0.5', '--demo-ondemand-every', '0'],
      { DPOW_BROKER_PASSWORD: cluster.secrets.server },
    );
    cleanups.push(() => dispatcher.kill('SIGKILL'));
    const metricsUrl = (await dispatcher.waitForOutput(/at (http:\/\/\S+)\)/, 60_000))[1];
    // Its two connections (the standby takes results too) on nodes of their own.
    await dispatcher.waitForOutput(new RegExp(`connected to ${brokers[0]} and ${brokers[1]} as server`));

    /**
     * The statistics a volunteer who subscribes on this node gets at once: the retained copy, or
     * undefined when a live publish after the SUBACK (the barrier, figures of nothing) comes first.
     */
    const server = await login('server', 2, 'tcp');
    const barrier = JSON.stringify({ services: { public: [], private: { count: 0, precache: 0, ondemand: 0 } }, work: { precache: 0, ondemand: 0 } });
    const retainedOn = async (node: number, transport: Transport): Promise<{ work: { precache: number } } | undefined> => {
      const volunteer = await login('client', node, transport);
      const first = new Promise<{ payload: string; retain: boolean }>((resolve) =>
        volunteer.once('message', (_topic, payload, packet) => resolve({ payload: String(payload), retain: packet.retain })),
      );
      await volunteer.subscribeAsync('statistics', { qos: 1 });
      await server.publishAsync('statistics', barrier, { qos: 1 });
      const got = await first;
      await volunteer.endAsync(true);
      if (got.retain) return JSON.parse(got.payload);
      await sleep(200); // polled: one login at a time, gently
      return undefined;
    };
    // The dispatcher leads on its own store: its statistics wait on every node, over TCP and Web MQTT.
    for (const node of [0, 1, 2]) {
      for (const transport of ['tcp', 'ws'] as const) {
        expect(await waitForAsync(`the statistics on node ${node} over ${transport}`, () => retainedOn(node, transport))).toMatchObject({ work: { precache: expect.any(Number) } });
      }
    }

    // A volunteer on node 2 computes the demo's jobs; a watcher on node 1 follows the credited work.
    const worker = CliProcess.start(['worker', '--broker', brokers[2], '--address', encodeAddress(randomBytes(32)), '--backend', 'wasm', '--threads', '1']);
    cleanups.push(() => worker.kill('SIGKILL'));
    const watcher = await login('dashboard', 1, 'tcp');
    let credited = 0;
    watcher.on('message', (_topic, payload) => (credited = Math.max(credited, (JSON.parse(String(payload)) as { work: { precache: number } }).work.precache)));
    await watcher.subscribeAsync('statistics', { qos: 1 });
    await waitFor('credited work in the statistics', () => credited > 0, 120_000);

    // A node of the dispatcher dies: that connection moves to the node the other is not on and
    // subscribes there, and results are accepted again.
    await cluster.nodes[0].kill();
    await dispatcher.waitForOutput(new RegExp(`broker node ${brokers[0]} is gone; connected to ${brokers[2]}, subscribed to results again`), 60_000);
    // Figures published after the kill, so node 0 cannot have them.
    const atKill = credited;
    await waitFor('work credited after the move', () => credited > atKill, 120_000);
    const after = credited;
    expect(sample(await (await fetch(new URL('metrics', metricsUrl))).text(), 'dpow_broker_failovers_total')).toBe(1);

    // Node 0 comes back with the statistics it kept on its disk: the leader puts the latest there.
    await cluster.nodes[0].start();
    await cluster.ready();
    await waitForAsync('the latest statistics on the node that came back', async () => ((await retainedOn(0, 'tcp'))?.work.precache ?? 0) >= after, 120_000);
    await worker.kill('SIGTERM');
    await dispatcher.kill('SIGTERM');
  });

  it.skipIf(!nginxInstalled && !process.env.CI)('the page reaches the cluster through nginx and the fronts: /mqtt spread over them, the one whose node is dead skipped', { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dpow-nginx-mqtt-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const certificate = makeCertificate(dir);
    const files = proxiedSite(readFileSync(NGINX_SITE, 'utf8'), readFileSync(UPSTREAM, 'utf8'), fronts.map((f) => Number(new URL(f.url).port)));
    // No dpow-web behind it here (a port nothing listens on): only /mqtt is asked for, and it goes to the cluster.
    const ports = await startNginx(dir, files.site, await freePort(), certificate, { 'dpow-mqtt.conf': files.upstream });
    cleanups.push(() => ports.stop());

    const server = await login('server', 2, 'tcp');
    // A connection nginx failed to place is an error (502), never retried here.
    const page = () => loginToRabbit(`wss://127.0.0.1:${ports.https}/mqtt`, { username: 'client', password: 'client' }, cleanups, { ca: certificate.ca }, /Server unavailable/);
    /** Volunteers through the proxy, each subscribed, each then hearing one heartbeat. */
    const volunteers = async (n: number) => {
      const heard: string[][] = [];
      for (let i = 0; i < n; i++) {
        const v = await page();
        heard.push(inbox(v));
        await v.subscribeAsync('heartbeat', { qos: 0 });
      }
      await server.publishAsync('heartbeat', '', { qos: 1 });
      await waitFor('every volunteer to hear the heartbeat', () => heard.every((h) => h.length >= 1));
    };
    await volunteers(3);

    await cluster.nodes[1].kill();
    // Its front lives on and answers 502 once it finds the node gone; round robin sends some of
    // these there first, and nginx moves each on to a live one.
    await waitForAsync("node 1's front to find it gone", async () => (await fronts[1].notReady()) !== undefined);
    const piped = fronts.map((f) => f.counters.piped);
    await volunteers(6);
    expect(fronts[1].counters.piped).toBe(piped[1]);
    expect(fronts[0].counters.piped + fronts[2].counters.piped).toBe(piped[0] + piped[2] + 6);

    await cluster.nodes[1].start();
    await cluster.ready();
  });

  // Last: it kills a node (and brings it back for whatever runs after).
  it('a headless worker given every node fails over when its node is killed, and keeps working', { timeout: 300_000 }, async () => {
    const address = encodeAddress(randomBytes(32));
    const { job } = await dispatcherOn(2);
    const brokers = cluster.nodes.map((n) => n.mqttUrl).join(',');
    const worker = CliProcess.start(['worker', '--broker', brokers, '--address', address, '--backend', 'wasm', '--threads', '1']);
    cleanups.push(() => worker.kill('SIGKILL'));
    await worker.waitForOutput(new RegExp(`Connected to ${cluster.nodes[0].mqttUrl}`), 60_000);

    await job('A1'.repeat(32));

    await cluster.nodes[0].kill();
    await worker.waitForOutput(new RegExp(`Disconnected from the broker ${cluster.nodes[0].mqttUrl}.*; reconnecting to ${cluster.nodes[1].mqttUrl}`), 60_000);
    await worker.waitForOutput(new RegExp(`Connected to ${cluster.nodes[1].mqttUrl}`), 60_000);
    await job('B2'.repeat(32));

    await worker.kill('SIGTERM');
    await cluster.nodes[0].start();
    await cluster.ready();
  });
});
