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
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type AppServer } from './create-server.ts';
import { hashApiKey } from './http/api-keys.ts';
import { canConnect, freePort } from '../testkit/net.ts';
import { encodeAddress } from '../dpow/address.ts';

const NGINX = process.env.DPOW_NGINX ?? '/usr/sbin/nginx';
const METRICS_PASSWORD = 'operator-metrics-password';
const CONF = join(import.meta.dirname, '../../deploy/nginx/dpow-web.conf');
const installed = existsSync(NGINX) && spawnSync('openssl', ['version']).status === 0;
if (!installed && !process.env.CI) console.warn(`proxy.test.ts: skipped, ${NGINX} or openssl is not installed (apt-get install nginx)`);

/** The shipped site with test ports and certificate; every substitution must find its line. */
function siteForTest(template: string, t: { upstream: number; https: number; http: number; cert: string; key: string }): string {
  const swaps: Array<[RegExp, string]> = [
    [/^(\s*)server 127\.0\.0\.1:8787;$/m, `$1server 127.0.0.1:${t.upstream};`],
    [/^(\s*)listen 80;$/m, `$1listen 127.0.0.1:${t.http};`],
    [/^(\s*)listen 443 ssl;$/m, `$1listen 127.0.0.1:${t.https} ssl;`],
    [/^\s*listen \[::\]:80;\n/m, ''],
    [/^\s*listen \[::\]:443 ssl;\n/m, ''],
    [/^(\s*)ssl_certificate\s+\S+;$/m, `$1ssl_certificate ${t.cert};`],
    [/^(\s*)ssl_certificate_key\s+\S+;$/m, `$1ssl_certificate_key ${t.key};`],
  ];
  let out = template;
  for (const [pattern, replacement] of swaps) {
    if (!pattern.test(out)) throw new Error(`deploy/nginx/dpow-web.conf has no line matching ${pattern}`);
    out = out.replace(pattern, replacement);
  }
  return out;
}

/** An https request that trusts only the test certificate. */
function httpsRequest(url: string, ca: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    // The certificate is the address dialled, whatever Host the request names.
    const identity = (_host: string, cert: PeerCertificate) => checkServerIdentity(new URL(url).hostname, cert);
    const req = request(url, { method: init.method ?? 'GET', ca, headers: init.headers, checkServerIdentity: identity }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
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

interface Nginx {
  https: number;
  http: number;
  stop(): Promise<void>;
}

/** Debian's nginx with `site` (test ports and certificate swapped in), under its own prefix in `dir`. */
async function startNginx(dir: string, site: string, upstream: number, cert: string, key: string): Promise<Nginx> {
  const ports = { https: await freePort(), http: await freePort() };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'dpow-web.conf'), siteForTest(site, { upstream, ...ports, cert, key }));
  // The host's nginx.conf minus everything that needs root's paths: the site included as shipped.
  const temp = (name: string) => `${name}_temp_path ${join(dir, name)};`;
  writeFileSync(
    join(dir, 'nginx.conf'),
    [
      'daemon off;',
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'error.log')} notice;`,
      // As root, nginx would switch its workers to a system user that cannot read the temp folder.
      ...(process.getuid?.() === 0 ? ['user root root;'] : []),
      'events { worker_connections 64; }',
      'http {',
      '  access_log off;',
      `  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join('\n  ')}`,
      `  include ${join(dir, 'dpow-web.conf')};`,
      '}',
      '',
    ].join('\n'),
  );
  let log = '';
  const nginx = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  nginx.stdout!.on('data', (d) => (log += d));
  nginx.stderr!.on('data', (d) => (log += d));
  const stop = async () => {
    if (nginx.exitCode !== null) return;
    nginx.kill('SIGQUIT');
    await new Promise((r) => nginx.once('exit', r));
  };
  const deadline = Date.now() + 10_000;
  while (!((await canConnect('127.0.0.1', ports.https)) && (await canConnect('127.0.0.1', ports.http)))) {
    if (nginx.exitCode !== null || Date.now() > deadline) {
      await stop();
      const errors = existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : '';
      throw new Error(`nginx did not start:\n${log}\n${errors}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ...ports, stop };
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
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    certificate = { cert, key };
    const made = spawnSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert],
      { encoding: 'utf8' },
    );
    expect(made.status, made.stderr).toBe(0);
    ca = readFileSync(cert, 'utf8');

    const site = join(dir, 'site');
    mkdirSync(site);
    writeFileSync(join(site, 'index.html'), '<!doctype html><title>dpow-web behind nginx</title>\n');
    app = await createServer({
      kind: 'app',
      http: { port: 0, staticDir: site, publicNames: ['dpow.example'] },
      metrics: { operatorPasswordHash: await hashApiKey(METRICS_PASSWORD, { N: 16, r: 1, p: 1 }) },
    });
    nginx = await startNginx(join(dir, 'shipped'), readFileSync(CONF, 'utf8'), Number(new URL(app.url).port), cert, key);
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
    const variant = await startNginx(join(dir, 'static'), staticVariant(readFileSync(CONF, 'utf8'), dist), Number(new URL(app.url).port), certificate.cert, certificate.key);
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
