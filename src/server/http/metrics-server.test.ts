import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach } from '../../testkit/cleanups.ts';
import { Dispatcher } from '../dispatcher/dispatcher.ts';
import { MemoryStore } from '../store/memory-store.ts';
import { hashApiKey } from './api-keys.ts';
import { MetricsServer } from './metrics-server.ts';

const cleanups = cleanupsAfterEach();

/** A dispatcher that has not connected yet: what the operator's server sees while it starts. */
function unstartedDispatcher(store: MemoryStore): Dispatcher {
  return new Dispatcher({ brokerUrl: 'mqtt://127.0.0.1:1', username: 'server', password: 'x', store });
}

describe('MetricsServer', () => {
  it('answers /readyz 503 until the dispatcher is connected, and only the operator paths', async () => {
    const store = new MemoryStore();
    const served = await MetricsServer.start({ port: 0, store, dispatcher: unstartedDispatcher(store), access: 'loopback' });
    cleanups.push(() => served.close());
    expect(served.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);

    const ready = await fetch(new URL('/readyz', served.url));
    expect([ready.status, await ready.json()]).toEqual([503, { status: 'unavailable', reason: 'the dispatcher is not connected to the broker' }]);
    expect((await fetch(new URL('/healthz', served.url))).status).toBe(200);
    const metrics = await (await fetch(new URL('/metrics', served.url))).text();
    expect(metrics).toMatch(/^dpow_broker_connected 0$/m);
    expect(metrics).toMatch(/^dpow_dispatcher_leader 0$/m);
    const other = await fetch(new URL('/config.json', served.url));
    expect(other.status).toBe(404);
    expect(other.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('does not serve /metrics when access is off, but still /healthz and /readyz', async () => {
    const store = new MemoryStore();
    const served = await MetricsServer.start({ port: 0, store, access: false });
    cleanups.push(() => served.close());
    expect((await fetch(new URL('/metrics', served.url))).status).toBe(404);
    expect((await fetch(new URL('/healthz', served.url))).status).toBe(200);
    expect((await fetch(new URL('/readyz', served.url))).status).toBe(200);
  });

  it('refuses a foreign Host and another page\'s Origin, answers its --public-name, and takes the operator password', async () => {
    const store = new MemoryStore();
    const served = await MetricsServer.start({
      port: 0,
      store,
      access: { apiKeys: true },
      publicNames: ['metrics.example'],
      operatorPasswordHash: await hashApiKey('operator-secret', { N: 16, r: 1, p: 1 }),
    });
    cleanups.push(() => served.close());
    const port = Number(new URL(served.url).port);
    const get = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/metrics', headers, setHost: !('Host' in headers) }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    const operator = { Authorization: `Basic ${Buffer.from('metrics:operator-secret').toString('base64')}` };
    expect(await get(operator)).toBe(200);
    expect(await get({ ...operator, Host: 'metrics.example' })).toBe(200);
    expect(await get({ ...operator, Host: 'rebound.example' })).toBe(403);
    expect(await get({ ...operator, Origin: 'http://attacker.example' })).toBe(403);
    // keys mode: nothing without the operator's login, loopback or not.
    expect(await get({})).toBe(401);
  });

  it('fails to start on a taken port, with the error code for the caller to explain', async () => {
    const store = new MemoryStore();
    const first = await MetricsServer.start({ port: 0, store, access: 'loopback' });
    cleanups.push(() => first.close());
    const port = Number(new URL(first.url).port);
    await expect(MetricsServer.start({ port, store, access: 'loopback' })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});
