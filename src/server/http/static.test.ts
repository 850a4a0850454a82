import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheControl, contentType, createStaticHandler, resolveStaticPath } from './static.ts';

let base: string;
let root: string;
let server: http.Server;
let port: number;

beforeAll(async () => {
  base = mkdtempSync(path.join(tmpdir(), 'dpow-static-'));
  root = path.join(base, 'dist');
  mkdirSync(path.join(root, 'assets'), { recursive: true });
  writeFileSync(path.join(base, 'secret.txt'), 'TOP-SECRET');
  writeFileSync(path.join(root, '.env'), 'HIDDEN');
  writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>app</title>');
  writeFileSync(path.join(root, 'sw.js'), 'self.addEventListener("fetch", () => {});');
  writeFileSync(path.join(root, 'assets', 'index-Bq3xZ_9k.js'), 'console.log(1)');
  writeFileSync(path.join(root, 'assets', 'pow-D4c2a1Ff.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
  writeFileSync(path.join(root, 'manifest.webmanifest'), '{"name":"dpow-web"}');
  const serve = createStaticHandler({ root });
  server = http.createServer((req, res) => {
    void serve(req, res).then((handled) => {
      if (!handled) res.writeHead(405).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(base, { recursive: true, force: true });
});

/** A raw request: fetch() would normalise `..` away before it ever reached the server. */
function get(rawPath: string, headers: Record<string, string> = {}, method = 'GET') {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: rawPath, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('static path resolution', () => {
  it('refuses every way out of the root', () => {
    for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/assets/..%2f..%2fsecret.txt', '/a/%2E%2E/%2E%2E/secret.txt', '/..\\secret.txt', '/%00index.html', '/%E0%A4%A']) {
      const r = resolveStaticPath('/srv/dist', p);
      expect(r.ok, p).toBe(false);
    }
  });

  it('maps ordinary paths under the root', () => {
    expect(resolveStaticPath('/srv/dist', '/')).toMatchObject({ ok: true, file: '/srv/dist/index.html' });
    expect(resolveStaticPath('/srv/dist', '/assets/x.js?v=1')).toMatchObject({ ok: true, file: '/srv/dist/assets/x.js' });
    expect(resolveStaticPath('/srv/dist', '//assets//x.js')).toMatchObject({ ok: true, file: '/srv/dist/assets/x.js' });
  });

  it('names content types and cache policies', () => {
    expect(contentType('a.wasm')).toBe('application/wasm');
    expect(contentType('manifest.webmanifest')).toBe('application/manifest+json; charset=utf-8');
    expect(contentType('x.JS')).toBe('text/javascript; charset=utf-8');
    expect(contentType('unknown.bin')).toBe('application/octet-stream');
    expect(cacheControl('/assets/index-Bq3xZ_9k.js')).toContain('immutable');
    expect(cacheControl('/index.html')).toBe('no-cache');
    expect(cacheControl('/sw.js')).toBe('no-cache');
    expect(cacheControl('/icon.svg')).toBe('no-cache');
  });
});

describe('static handler', () => {
  it('never serves a file outside the root or a dot-file', async () => {
    for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/assets/..%2f..%2fsecret.txt', '/.env', '/%2eenv']) {
      const r = await get(p);
      expect([400, 404], p).toContain(r.status);
      expect(r.body.toString()).not.toMatch(/TOP-SECRET|HIDDEN/);
    }
  });

  it('serves the app with the right types and cache headers', async () => {
    const index = await get('/');
    expect(index.status).toBe(200);
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(index.headers['cache-control']).toBe('no-cache');

    const js = await get('/assets/index-Bq3xZ_9k.js');
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');

    const wasm = await get('/assets/pow-D4c2a1Ff.wasm');
    expect(wasm.headers['content-type']).toBe('application/wasm');
    expect([...wasm.body.subarray(0, 4)]).toEqual([0, 0x61, 0x73, 0x6d]);

    const manifest = await get('/manifest.webmanifest');
    expect(manifest.headers['content-type']).toBe('application/manifest+json; charset=utf-8');

    const sw = await get('/sw.js');
    expect(sw.headers['cache-control']).toBe('no-cache');
  });

  it('answers If-None-Match with 304 and HEAD without a body', async () => {
    const first = await get('/index.html');
    const again = await get('/index.html', { 'if-none-match': String(first.headers.etag) });
    expect(again.status).toBe(304);
    const head = await get('/index.html', {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(Number(head.headers['content-length'])).toBe(first.body.length);
  });

  it('falls back to index.html for app routes but not for missing assets', async () => {
    const route = await get('/settings', { accept: 'text/html' });
    expect(route.status).toBe(200);
    expect(route.body.toString()).toContain('<title>app</title>');
    expect((await get('/assets/missing-12345678.js')).status).toBe(404);
    expect((await get('/settings', { accept: 'application/json' })).status).toBe(404);
  });

  it('leaves other methods to the caller', async () => {
    expect((await get('/', {}, 'POST')).status).toBe(405);
  });
});
