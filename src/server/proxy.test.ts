/**
 * The shipped reverse-proxy config (deploy/nginx/dpow-web.conf) on Debian's real nginx, run
 * unprivileged-style on loopback with a self-signed certificate made by openssl, in front of a
 * real dpow-web app server: the page and /config.json over https, MQTT over wss:// through
 * /mqtt, http:// redirected, the loopback-only work RPC refused to proxied callers, and
 * /api/payouts/ passed through, also in the variant the file describes for serving dist/.
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
import { encodeAddress } from '../dpow/address.ts';

const METRICS_PASSWORD = 'operator-metrics-password';
if (!installed && !process.env.CI) console.warn(`proxy.test.ts: skipped, ${NGINX} or openssl is not installed (apt-get install nginx)`);

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
