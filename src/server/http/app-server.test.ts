import http from 'node:http';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodeAddress } from '../../dpow/address.ts';
import { clientCodec, workCodec } from '../../dpow/codec.ts';
import { parseDeployment } from '../../dpow/deployment.ts';
import { difficultyPolicy } from '../../pow/difficulty.ts';
import { toU64Hex, validateWork } from '../../pow/work.ts';
import { createServer, type AppConfig, type AppServer } from '../create-server.ts';
import { Broker } from '../broker.ts';
import { MemoryStore } from '../store/memory-store.ts';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { connectAs } from '../../testkit/mqtt.ts';
import { waitFor } from '../../testkit/wait.ts';
import { findWork } from '../../testkit/work.ts';

let dist: string;
beforeAll(() => {
  dist = mkdtempSync(path.join(tmpdir(), 'dpow-app-'));
  mkdirSync(path.join(dist, 'assets'));
  writeFileSync(path.join(dist, 'index.html'), '<!doctype html><title>dpow-web</title>');
  writeFileSync(path.join(dist, 'assets', 'pow-D4c2a1Ff.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
});
afterAll(() => rmSync(dist, { recursive: true, force: true }));

const cleanup = cleanupsAfterEach();

async function start(config: Omit<AppConfig, 'kind' | 'http'> = {}): Promise<AppServer> {
  return closeAfter(cleanup, await createServer({ kind: 'app', http: { port: 0, staticDir: dist }, ...config }));
}

describe('the app server (createServer, kind app)', () => {
  it('serves the app, /config.json and security headers on one origin', async () => {
    const app = await start();
    expect(app.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const index = await fetch(app.url);
    expect(index.status).toBe(200);
    expect(await index.text()).toContain('<title>dpow-web</title>');
    expect(index.headers.get('x-content-type-options')).toBe('nosniff');
    expect(index.headers.get('referrer-policy')).toBe('no-referrer');
    expect(index.headers.get('content-security-policy')).toBeNull();

    const wasm = await fetch(new URL('/assets/pow-D4c2a1Ff.wasm', app.url));
    expect(wasm.headers.get('content-type')).toBe('application/wasm');

    const config = await fetch(new URL('/config.json', app.url));
    expect(config.headers.get('cache-control')).toBe('no-cache');
    expect(config.headers.get('x-content-type-options')).toBe('nosniff');
    const body = await config.json();
    expect(body).toEqual(parseDeployment(body));
    expect(body).toMatchObject({ brokerUrl: '/mqtt', username: 'client', password: 'client' });
    expect(app.brokerWsUrl).toBe(`${app.url.replace('http', 'ws')}mqtt`);

    const missing = await fetch(new URL('/nope.js', app.url));
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('lets a worker with the /config.json login take a job and get credited, all through one port', async () => {
    const app = await start({ demo: { precacheEveryMs: 100, ondemandEveryMs: 0, difficulty: 'ff00000000000000' } });
    const config = parseDeployment(await (await fetch(new URL('/config.json', app.url))).json());
    const worker = await connectAs(new URL(config.brokerUrl, app.brokerWsUrl).href, { username: config.username, password: config.password }, cleanup);
    const seen: Array<{ topic: string; payload: string }> = [];
    worker.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
    const address = encodeAddress(randomBytes(32));
    await worker.subscribeAsync(['heartbeat', 'work/#', 'cancel/#', `client/${address}`]);
    await waitFor('a demo job', () => seen.some((m) => m.topic === 'work/precache'), 8000);
    const job = workCodec.decode(seen.find((m) => m.topic === 'work/precache')!.payload);
    if (!job.ok) throw new Error(job.reason);
    const work = findWork(job.value.hash, job.value.difficulty);
    await worker.publishAsync('result/precache', `${job.value.hash},${work},${address}`);
    await waitFor('the credit notice and the cancel', () => seen.some((m) => m.topic === `client/${address}`) && seen.some((m) => m.topic === 'cancel/precache' && m.payload === job.value.hash), 8000);
    const notice = clientCodec.decode(seen.find((m) => m.topic === `client/${address}`)!.payload);
    expect(notice.ok && notice.value).toMatchObject({ kind: 'stats', stats: { precache: 1, block_rewarded: job.value.hash } });
    await waitFor('a heartbeat', () => seen.some((m) => m.topic === 'heartbeat'), 3000);
    expect(app.demo!.counters.precache).toBeGreaterThan(0);

    // The public client login cannot forge jobs.
    worker.publish('work/ondemand', `${'AB'.repeat(32)},ff00000000000000`);
    await waitFor('the refusal', () => app.broker!.counters.refusedPublish === 1, 5000);
  });

  it('routes the service API and its WebSocket, and refuses unknown upgrades', async () => {
    const app = await start();
    const res = await fetch(new URL('/service/', app.url), { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(await res.json()).toEqual({ error: 'Incorrect submission. Required information: user, api_key, hash' });
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');

    const ws = new WebSocket(new URL('/service_ws/', app.brokerWsUrl).href);
    cleanup.push(() => ws.terminate());
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send('not json');
    const reply = await new Promise<string>((resolve) => ws.once('message', (d) => resolve(d.toString())));
    expect(JSON.parse(reply)).toEqual({ error: 'Bad request (not json)' });

    const bad = new WebSocket(new URL('/elsewhere', app.brokerWsUrl).href);
    const status = await new Promise<number>((resolve) => {
      bad.once('unexpected-response', (_req, r: http.IncomingMessage) => resolve(r.statusCode ?? 0));
      bad.once('error', () => resolve(-1));
    });
    expect(status).toBe(404);
  });

  it('answers a service request with work a worker found', async () => {
    const store = closeAfter(cleanup, new MemoryStore());
    const app = await start({ store: { kind: 'given', store }, policy: difficultyPolicy({ minDifficulty: 0n }) });
    const { hashApiKey } = await import('./api-keys.ts');
    await store.addService({ user: 'wallet', apiKeyHash: await hashApiKey('key-123'), display: 'W', website: 'w', public: true, precache: 0, ondemand: 0, rateLimit: 0, createdAt: 0 });
    const worker = await connectAs(app.brokerWsUrl, 'client', cleanup);
    const address = encodeAddress(randomBytes(32));
    worker.on('message', (_topic, payload) => {
      const job = workCodec.decode(payload);
      if (job.ok) worker.publish('result/ondemand', `${job.value.hash},${findWork(job.value.hash, job.value.difficulty)},${address}`);
    });
    await worker.subscribeAsync('work/ondemand');
    const hash = randomBytes(32).toString('hex');
    const res = await fetch(new URL('/service/', app.url), {
      method: 'POST',
      body: JSON.stringify({ user: 'wallet', api_key: 'key-123', hash, difficulty: 'ff00000000000000', timeout: 10 }),
    });
    const body = (await res.json()) as { work?: string; hash?: string };
    expect(body.hash).toBe(hash);
    expect(validateWork(hash, body.work!, 0xff00000000000000n).valid).toBe(true);
    await waitFor('the accepted result', () => app.dispatcher!.counters.results.accepted === 1);
  });

  it('points the page and the dispatcher at an external broker', async () => {
    const external = await Broker.start({
      users: { server: { username: 'srv', password: 'ext-secret' }, client: { username: 'client', password: 'client' } },
    });
    cleanup.push(() => external.close());
    const app = await start({ broker: { kind: 'external', url: external.wsUrl, username: 'srv', password: 'ext-secret' } });
    expect(app.broker).toBeUndefined();
    const config = (await (await fetch(new URL('/config.json', app.url))).json()) as { brokerUrl: string };
    expect(config.brokerUrl).toBe(external.wsUrl);
    expect(app.dispatcher!.connected).toBe(true);
    // No embedded broker behind /mqtt any more.
    const ws = new WebSocket(`${app.url.replace('http', 'ws')}mqtt`, 'mqtt');
    const status = await new Promise<number>((resolve) => {
      ws.once('unexpected-response', (_req, r: http.IncomingMessage) => resolve(r.statusCode ?? 0));
      ws.once('open', () => resolve(101));
      ws.once('error', () => resolve(-1));
    });
    ws.terminate();
    expect(status).toBe(404);
  });

  it('fails to start against a broker it cannot use, with the reason', async () => {
    const external = closeAfter(cleanup, await Broker.start({ users: { server: { username: 'srv', password: 'right' }, client: { username: 'client', password: 'client' } } }));
    const attempt = (url: string, password: string) =>
      createServer({ kind: 'app', http: { port: 0, staticDir: dist }, broker: { kind: 'external', url, username: 'srv', password } });
    await expect(attempt(external.wsUrl, 'wrong')).rejects.toThrow(/Bad username or password|Not authorized/);
    // A WebSocket path that is not a broker (404) fails too instead of hanging.
    await expect(attempt(external.wsUrl.replace('/mqtt', '/nothing'), 'right')).rejects.toThrow(/cannot connect/);
    expect(external.counters.refusedLogins).toBe(1);
  });
});
