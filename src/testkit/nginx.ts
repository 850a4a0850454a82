/**
 * Test helper, never imported by the product: Debian's nginx running a shipped site file on
 * loopback, unprivileged-style (its own prefix, pid and temp folders in a directory of its own),
 * with a self-signed certificate made by openssl for 127.0.0.1. DPOW_NGINX names another binary.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { killOnExit } from './exit-kill.ts';
import { canConnect, freePort } from './net.ts';

export const NGINX = process.env.DPOW_NGINX ?? '/usr/sbin/nginx';
export const nginxInstalled = existsSync(NGINX) && spawnSync('openssl', ['version']).status === 0;
/** The shipped site: TLS in front of dpow-web (deploy/nginx). */
export const NGINX_SITE = join(import.meta.dirname, '../../deploy/nginx/dpow-web.conf');

/** The shipped site with test ports and certificate; every substitution must find its line. */
export function siteForTest(template: string, t: { upstream: number; https: number; http: number; cert: string; key: string }): string {
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
export function httpsRequest(url: string, ca: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}) {
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

/** A certificate and key for 127.0.0.1 in `dir`; `ca` is the certificate's text, to trust it. */
export function makeCertificate(dir: string): { cert: string; key: string; ca: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const made = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert],
    { encoding: 'utf8' },
  );
  if (made.status !== 0) throw new Error(`openssl could not make a certificate: ${made.stderr}`);
  return { cert, key, ca: readFileSync(cert, 'utf8') };
}

export interface Nginx {
  https: number;
  http: number;
  stop(): Promise<void>;
}

/**
 * Debian's nginx with `site` (test ports and certificate swapped in), under its own prefix in
 * `dir`, with the host's nginx.conf minus everything that needs root's paths. `snippets` (name to
 * text) are included at http level before the site, as an operator installs conf.d files.
 */
export async function startNginx(
  dir: string,
  site: string,
  upstream: number,
  certificate: { cert: string; key: string },
  snippets: Record<string, string> = {},
): Promise<Nginx> {
  const ports = { https: await freePort(), http: await freePort() };
  mkdirSync(dir, { recursive: true });
  const includes = Object.entries(snippets).map(([name, text]) => (writeFileSync(join(dir, name), text), join(dir, name)));
  writeFileSync(join(dir, 'dpow-web.conf'), siteForTest(site, { upstream, ...ports, ...certificate }));
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
      ...[...includes, join(dir, 'dpow-web.conf')].map((file) => `  include ${file};`),
      '}',
      '',
    ].join('\n'),
  );
  let log = '';
  const nginx = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  killOnExit(nginx);
  nginx.stdout!.on('data', (d) => (log += d));
  nginx.stderr!.on('data', (d) => (log += d));
  const stop = async () => {
    if (nginx.exitCode !== null || nginx.signalCode !== null) return;
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
