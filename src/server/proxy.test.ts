/**
 * The shipped reverse-proxy config (deploy/nginx/dpow-web.conf) on Debian's real nginx, run
 * unprivileged-style on loopback with a self-signed certificate made by openssl, in front of a
 * real dpow-web app server: the page and /config.json over https, MQTT over wss:// through
 * /mqtt, http:// redirected, the loopback-only work RPC refused to proxied callers, and
 * /api/payouts/ passed through, also in the variant the file describes for serving dist/; MQTT
 * connections capped per address; and, in the variant for Mosquitto, /mqtt through dpow-web
 * mqtt-front to Debian's mosquitto with the shipped config.
 *
 * Skipped with a message only when nginx is not installed AND this is not CI (.ci/run installs
 * Debian's `nginx`); under CI a missing binary fails. DPOW_NGINX names another binary.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type AppServer } from './create-server.ts';
import { hashApiKey } from './http/api-keys.ts';
import { httpsRequest, makeCertificate, NGINX, NGINX_SITE as CONF, nginxInstalled as installed, startNginx, type Nginx } from '../testkit/nginx.ts';
import { Mosquitto, mosquittoInstalled } from '../testkit/mosquitto.ts';
import { firstByte, fixedHeader, MAX_REMAINING_LENGTH, RawMqtt } from '../testkit/mqtt-attack.ts';
import { connectAs } from '../testkit/mqtt.ts';
import { encodeAddress } from '../dpow/address.ts';

const METRICS_PASSWORD = 'operator-metrics-password';
if (!installed && !process.env.CI) console.warn(`proxy.test.ts: skipped, ${NGINX} or openssl is not installed (apt-get install nginx)`);

/**
 * The site with Mosquitto as the broker, as the file's own comment says: /mqtt to dpow-web
 * mqtt-front (on `frontPort` instead of 9001); and nginx's cap on MQTT connections an address
 * may hold set to `connections` instead of 256.
 */
function mqttVariant(site: string, options: { frontPort?: number; connections?: number }): string {
  let out = site;
  if (options.frontPort !== undefined) {
    const comment = /# With Mosquitto as the broker[^\n]*\n(?:\s*#[^\n]*\n)*?\s*#\s+proxy_pass http:\/\/127\.0\.0\.1:9001;\n/.exec(out);
    if (!comment) throw new Error('deploy/nginx/dpow-web.conf has no "With Mosquitto as the broker" comment ending in its proxy_pass line');
    const mqtt = /(location \/mqtt \{\n\s*)proxy_pass http:\/\/dpow_web;/;
    if (!mqtt.test(out)) throw new Error('deploy/nginx/dpow-web.conf has no `location /mqtt` passing to dpow_web');
    out = out.replace(mqtt, `$1proxy_pass http://127.0.0.1:${options.frontPort};`);
  }
  if (options.connections !== undefined) {
    if (!/^\s*limit_conn dpow_mqtt_connections 256;$/m.test(out)) throw new Error('deploy/nginx/dpow-web.conf has no `limit_conn dpow_mqtt_connections 256;`');
    out = out.replace(/^(\s*)limit_conn dpow_mqtt_connections 256;$/m, `$1limit_conn dpow_mqtt_connections ${options.connections};`);
  }
  return out;
}

/** The site as the file's own comment says to change it when nginx serves dist/ from `root`. */
function staticVariant(site: string, root: string): string {
  const marker = /# To serve the built page \(dist\/\) from nginx instead[^\n]*\n(?:\s*#[^\n]*\n)*/.exec(site);
  if (!marker) throw new Error('deploy/nginx/dpow-web.conf has no "To serve the built page (dist/)" comment');
  const blocks = marker[0]
    .split('\n')
    .filter((line) => /^\s*# {3}/.test(line))
    .map((line) => line.replace(/^(\s*)# {3}/, '$1'))
    .join('\n')
    .replace(/root \S+;/, `root ${root};`);
  const proxied = /\n(\s*)location \/ \{\n\s*proxy_pass http:\/\/dpow_web;\n\s*\}\n/;
  if (!proxied.test(site)) throw new Error('deploy/nginx/dpow-web.conf has no proxied `location /` block');
  return site.replace(proxied, `\n${blocks}\n`);
}

let dir: string;
let app: AppServer;
let nginx: Nginx | undefined;
let ca: string;
let ports: { https: number; http: number };
let certificate: { cert: string; key: string };

describe.skipIf(!installed && !process.env.CI)('deploy/nginx in front of dpow-web on a real nginx', () => {
  beforeAll(async () => {
    expect(existsSync(NGINX), `${NGINX} is required under CI (apt-get install nginx)`).toBe(true);
    dir = mkdtempSync(join(tmpdir(), 'dpow-nginx-'));
    const made = makeCertificate(dir);
    certificate = { cert: made.cert, key: made.key };
    ca = made.ca;

    const site = join(dir, 'site');
    mkdirSync(site);
    writeFileSync(join(site, 'index.html'), '<!doctype html><title>dpow-web behind nginx</title>\n');
    app = await createServer({
      kind: 'app',
      http: { port: 0, staticDir: site, publicNames: ['dpow.example'] },
      metrics: { operatorPasswordHash: await hashApiKey(METRICS_PASSWORD, { N: 16, r: 1, p: 1 }) },
    });
    nginx = await startNginx(join(dir, 'shipped'), readFileSync(CONF, 'utf8'), Number(new URL(app.url).port), certificate);
    ports = nginx;
  });

  afterAll(async () => {
    await nginx?.stop();
    await app?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the page and /config.json over https, and redirects http:// to it', async () => {
    const base = `https://127.0.0.1:${ports.https}`;
    const page = await httpsRequest(`${base}/`, ca);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>dpow-web behind nginx</title>');
    expect(page.headers['strict-transport-security']).toMatch(/max-age=\d+/);
    const config = await httpsRequest(`${base}/config.json`, ca);
    expect(JSON.parse(config.body)).toMatchObject({ brokerUrl: '/mqtt', username: 'client' });

    const plain = await fetch(`http://127.0.0.1:${ports.http}/config.json`, { redirect: 'manual' });
    expect(plain.status).toBe(301);
    expect(plain.headers.get('location')).toBe(`https://127.0.0.1/config.json`);
  });

  it('carries MQTT over wss:// through /mqtt, both ways', async () => {
    const worker = await mqtt.connectAsync(`wss://127.0.0.1:${ports.https}/mqtt`, {
      username: 'client',
      password: 'client',
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ca,
    });
    try {
      // The dispatcher's heartbeat comes back through the proxy once the subscription is in.
      const beat = new Promise<string>((resolve) => worker.on('message', (topic) => resolve(topic)));
      await worker.subscribeAsync('heartbeat', { qos: 0 });
      expect(await beat).toBe('heartbeat');
      // And a publish goes out: the broker acknowledges a QoS 1 result (its content is the
      // dispatcher's business, tested elsewhere).
      await worker.publishAsync('result/precache', 'x', { qos: 1 });
    } finally {
      await worker.endAsync(true);
    }
  });

  it("caps the MQTT connections one address holds at nginx, and dpow-web counts them under the caller's address", async () => {
    const capped = await startNginx(join(dir, 'capped'), mqttVariant(readFileSync(CONF, 'utf8'), { connections: 2 }), Number(new URL(app.url).port), certificate);
    const held: (() => unknown)[] = [];
    try {
      const mqttUrl = `wss://127.0.0.1:${capped.https}/mqtt`;
      for (let i = 0; i < 2; i++) expect((await (await RawMqtt.open(mqttUrl, held, { ca })).login({ username: 'client', password: 'client' })).returnCode).toBe(0);
      await expect(RawMqtt.open(mqttUrl, held, { ca })).rejects.toMatchObject({ status: 429 });
      // Proxied, so not the operator's own: counted under the address nginx names (this test's, 127.0.0.1).
      expect(app.broker!.connections.sources).toBe(1);
    } finally {
      for (const close of held) await close();
      await capped.stop();
    }
  });

  it.skipIf(!mosquittoInstalled && !process.env.CI)('with Mosquitto as the broker, sends /mqtt through dpow-web mqtt-front as the file describes', async () => {
    const broker = await Mosquitto.start();
    const site = mqttVariant(readFileSync(CONF, 'utf8'), { frontPort: broker.ports.ws });
    const variant = await startNginx(join(dir, 'mosquitto'), site, Number(new URL(app.url).port), certificate);
    const held: (() => unknown)[] = [];
    try {
      const mqttUrl = `wss://127.0.0.1:${variant.https}/mqtt`;
      // A volunteer logs in to Mosquitto and gets its work; the front counts it under its address.
      const worker = await connectAs(mqttUrl, { username: 'client', password: 'client' }, held, { ca, connectTimeout: 10_000 });
      const got = new Promise<string>((resolve) => worker.on('message', (topic, payload) => resolve(`${topic} ${payload}`)));
      await worker.subscribeAsync('work/#');
      const server = await connectAs(broker.tcpUrl, { username: 'server', password: broker.secrets.server }, held);
      await server.publishAsync('work/precache', `${'B'.repeat(64)},fffffff800000000`);
      expect(await got).toBe(`work/precache ${'B'.repeat(64)},fffffff800000000`);
      expect(broker.front.connections.sources).toBe(1);
      // An unfinished 256 MB CONNECT through nginx is closed by the front at its header.
      const raw = await RawMqtt.open(mqttUrl, held, { ca });
      await raw.send(fixedHeader(firstByte(1), MAX_REMAINING_LENGTH));
      await raw.sendFiller(4 * 1024 * 1024);
      await raw.closed;
      expect(broker.front.counters.oversizePackets).toEqual({ connect: 1 });
    } finally {
      for (const close of held.reverse()) await close();
      await variant.stop();
      await broker.close();
    }
  });

  it('passes the proxy headers, so the loopback-only work RPC refuses callers from outside', async () => {
    const body = JSON.stringify({ action: 'work_validate', hash: '718CC2121C3E641059BC1C2CFC45666C99E8AE922F7A807B7D07B62C995D79E2', work: '2b3d689bbcb21dca' });
    const proxied = await httpsRequest(`https://127.0.0.1:${ports.https}/`, ca, { method: 'POST', body });
    expect(proxied.status).toBe(403);
    // The same request straight to dpow-web on loopback is answered.
    const direct = await fetch(app.url, { method: 'POST', body });
    expect(await direct.json()).toMatchObject({ valid_all: '1' });
  });

  it('lets the operator read /metrics through the proxy with the metrics password, and no other page', async () => {
    const metrics = `https://127.0.0.1:${ports.https}/metrics`;
    const operator = { Authorization: `Basic ${Buffer.from(`metrics:${METRICS_PASSWORD}`).toString('base64')}` };
    expect((await httpsRequest(metrics, ca)).status).toBe(403);
    const read = await httpsRequest(metrics, ca, { headers: operator });
    expect(read.status).toBe(200);
    expect(read.body).toContain('dpow_service_requests_total');
    expect((await httpsRequest(metrics, ca, { headers: { ...operator, Origin: 'https://attacker.example' } })).status).toBe(403);
    // nginx passes the Host it was asked for: a name dpow-web was not given is refused.
    expect((await httpsRequest(metrics, ca, { headers: { ...operator, Host: 'rebound.example' } })).status).toBe(403);
  });

  it('passes /api/payouts/ through, also when nginx serves the page from dist/ as the file describes', async () => {
    const address = encodeAddress('a1'.repeat(32));
    const proxied = await httpsRequest(`https://127.0.0.1:${ports.https}/api/payouts/${address}`, ca);
    expect(proxied.status).toBe(200);
    expect(JSON.parse(proxied.body)).toEqual({ address, paid: '0', carried: '0', payouts: [], serverHasPaid: false });

    const dist = join(dir, 'dist');
    mkdirSync(dist);
    writeFileSync(join(dist, 'index.html'), '<!doctype html><title>dist served by nginx</title>\n');
    const variant = await startNginx(join(dir, 'static'), staticVariant(readFileSync(CONF, 'utf8'), dist), Number(new URL(app.url).port), certificate);
    try {
      const base = `https://127.0.0.1:${variant.https}`;
      expect((await httpsRequest(`${base}/`, ca)).body).toContain('<title>dist served by nginx</title>');
      expect((await httpsRequest(`${base}/some/route`, ca)).body).toContain('<title>dist served by nginx</title>');
      expect(JSON.parse((await httpsRequest(`${base}/config.json`, ca)).body)).toMatchObject({ brokerUrl: '/mqtt' });
      const payouts = await httpsRequest(`${base}/api/payouts/${address}`, ca);
      expect(payouts.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(JSON.parse(payouts.body)).toMatchObject({ address, serverHasPaid: false });
    } finally {
      await variant.stop();
    }
  });
});
