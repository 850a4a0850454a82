import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { encodeAddress } from '../../dpow/address.ts';
import { difficultyPolicy } from '../../pow/difficulty.ts';
import { cleanupsAfterEach } from '../../testkit/cleanups.ts';
import { ReferenceWorker } from '../../testkit/reference-worker.ts';
import { addTestService } from '../../testkit/services.ts';
import { loginCodeFrom } from '../../testkit/mqtt.ts';
import { encode, firstByte, fixedHeader, RawMqtt } from '../../testkit/mqtt-attack.ts';
import { waitFor } from '../../testkit/wait.ts';
import { randomRoot } from '../../testkit/work.ts';
import { createServer, type AppConfig } from '../create-server.ts';
import { hashApiKey } from './api-keys.ts';
import { METRICS_USER } from './metrics.ts';
import { MemoryStore } from '../store/memory-store.ts';

const cleanups = cleanupsAfterEach();
const EASY = 'ff00000000000000';
const FAST_KEYS = { N: 16, r: 1, p: 1 };

async function start(config: Omit<AppConfig, 'kind' | 'http' | 'store'> = {}, store = new MemoryStore()) {
  const app = await createServer({ kind: 'app', http: { port: 0, staticDir: 'no-such-dir' }, store: { kind: 'given', store }, ...config });
  cleanups.push(() => app.close());
  return { app, store };
}

/** The value of one sample in Prometheus text, found by name and (a subset of) its labels. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('GET /metrics', () => {
  it('reports results, jobs, service requests, workers, latency and containment from the live counters', async () => {
    const { app, store } = await start({
      policy: difficultyPolicy({ minDifficulty: 0n }),
      dispatcher: { abuse: { threshold: 3 } },
    });
    const { user, key } = await addTestService(store, {}, FAST_KEYS);
    const worker = await ReferenceWorker.start({ brokerUrl: app.brokerWsUrl, username: 'client', password: 'client', address: encodeAddress(randomBytes(32)) });
    cleanups.push(() => worker.client.endAsync(true));
    const post = (body: unknown) => fetch(new URL('/service/', app.url), { method: 'POST', body: JSON.stringify(body) });
    expect((await post({ user, api_key: key, hash: randomRoot(), difficulty: EASY })).status).toBe(200);
    expect((await post({ user, api_key: 'wrong', hash: randomRoot() })).status).toBe(401);

    // Three bad results from one connection: contained.
    const flooder = await mqtt.connectAsync(app.brokerWsUrl, { username: 'client', password: 'client', protocolVersion: 4, reconnectPeriod: 0 });
    cleanups.push(() => flooder.endAsync(true));
    for (let i = 0; i < 4; i++) await flooder.publishAsync('result/ondemand', 'junk', { qos: 1 });
    await waitFor('four results handled', () => app.dispatcher!.counters.results.malformed + app.dispatcher!.counters.results.ignored === 4);

    const res = await fetch(new URL('/metrics', app.url));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(sample(text, 'dpow_results_total', { outcome: 'accepted' })).toBe(1);
    expect(sample(text, 'dpow_results_total', { outcome: 'malformed' })).toBe(3);
    expect(sample(text, 'dpow_results_total', { outcome: 'ignored' })).toBe(1);
    expect(sample(text, 'dpow_jobs_published_total', { type: 'ondemand' })).toBe(1);
    expect(sample(text, 'dpow_jobs_expired_total', { type: 'ondemand' })).toBe(0);
    expect(sample(text, 'dpow_service_requests_total', { service: user, outcome: 'work' })).toBe(1);
    expect(sample(text, 'dpow_service_requests_total', { service: '-', outcome: 'invalid-credentials' })).toBe(1);
    expect(sample(text, 'dpow_workers_connected')).toBe(2);
    expect(sample(text, 'dpow_mqtt_connections', { role: 'server' })).toBe(1);
    expect(sample(text, 'dpow_accept_latency_seconds_count', { type: 'ondemand' })).toBe(1);
    expect(sample(text, 'dpow_store_errors_total')).toBe(0);
    expect(sample(text, 'dpow_abuse_containments_total', { source: 'connection' })).toBe(1);
    expect(sample(text, 'dpow_abuse_contained', { source: 'connection' })).toBe(1);
    expect(sample(text, 'dpow_broker_connected')).toBe(1);
    expect(sample(text, 'dpow_broker_disconnects_total')).toBe(0);
    expect(sample(text, 'dpow_broker_takeovers_total')).toBe(0);
    // A store of its own: this dispatcher is always the leader.
    expect(sample(text, 'dpow_dispatcher_leader')).toBe(1);
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
  });

  it("reports the embedded broker's refusals by reason, oversize packets by type, forced clean sessions and connections by source", async () => {
    const { app } = await start({ broker: { kind: 'embedded', limits: { maxSubscriptions: 1, maxConnectionsPerSource: 1 } } });
    const oversize = await RawMqtt.open(app.brokerWsUrl, cleanups);
    await oversize.send(fixedHeader(firstByte(1), 4096)); // a CONNECT over 1 KiB
    await oversize.closed;
    const worker = await RawMqtt.open(app.brokerWsUrl, cleanups);
    await worker.login({ username: 'client', password: 'client' }, { clean: false });
    await worker.send(encode({ cmd: 'publish', topic: 'work/ondemand', payload: 'forged', qos: 1, messageId: 1, retain: false, dup: false }));
    await worker.next('puback');
    await worker.send(encode({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'heartbeat', qos: 0 }, { topic: 'statistics', qos: 0 }] }));
    await worker.next('suback');
    // Through a proxy, one connection from 198.51.100.7; its second is refused.
    const proxied = { headers: { 'X-Forwarded-For': '198.51.100.7' } };
    await RawMqtt.open(app.brokerWsUrl, cleanups, proxied);
    await expect(RawMqtt.open(app.brokerWsUrl, cleanups, proxied)).rejects.toMatchObject({ status: 429 });

    const text = await (await fetch(new URL('/metrics', app.url))).text();
    expect(sample(text, 'dpow_mqtt_connections_refused_total', { reason: 'per-source' })).toBe(1);
    expect(sample(text, 'dpow_mqtt_connections_refused_total', { reason: 'total' })).toBe(0);
    // The dispatcher's, the worker's (both the operator's own, on loopback) and the proxied one.
    expect(sample(text, 'dpow_mqtt_open_connections')).toBe(3);
    expect(sample(text, 'dpow_mqtt_sources')).toBe(1);
    expect(sample(text, 'dpow_mqtt_oversize_packets_total', { type: 'connect' })).toBe(1);
    expect(sample(text, 'dpow_mqtt_refused_total', { reason: 'publish-acl' })).toBe(1);
    expect(sample(text, 'dpow_mqtt_refused_total', { reason: 'subscription-limit' })).toBe(1);
    expect(sample(text, 'dpow_mqtt_refused_total', { reason: 'too-many-refusals' })).toBe(0);
    expect(sample(text, 'dpow_mqtt_clean_sessions_forced_total')).toBe(1);
    // The dispatcher's own two subscriptions are not held to the cap.
    expect(app.dispatcher!.connected).toBe(true);
  });

  it("counts the embedded broker's failed logins, and the logins refused unchecked for them, by reason", async () => {
    const dashboard = { username: 'dash', password: 'dash-pw' };
    const { app } = await start({ broker: { kind: 'embedded', users: { dashboard }, limits: { maxFailedLoginsPerMinute: 2 } } });
    // Through a proxy, from 198.51.100.9: two wrong passwords, then the right one is refused unchecked.
    const codes: number[] = [];
    for (const password of ['guess-1', 'guess-2', dashboard.password]) codes.push(await loginCodeFrom(app.brokerWsUrl, { ...dashboard, password }, '198.51.100.9', cleanups));
    expect(codes).toEqual([4, 4, 5]);
    const text = await (await fetch(new URL('/metrics', app.url))).text();
    expect(sample(text, 'dpow_mqtt_refused_total', { reason: 'login' })).toBe(2);
    expect(sample(text, 'dpow_mqtt_refused_total', { reason: 'login-rate' })).toBe(1);
  });

  it('follows the RPC access rule (loopback without proxy headers, or off); with keys, only the operator password, never a service key', async () => {
    const { app: loopback } = await start();
    expect((await fetch(new URL('/metrics', loopback.url))).status).toBe(200);
    expect((await fetch(new URL('/metrics', loopback.url), { headers: { 'X-Forwarded-For': '203.0.113.9' } })).status).toBe(403);

    // Two servers in one process: each has its own registry.
    const { app: off } = await start({ serviceApi: { rpc: { enabled: false, allow: 'loopback' } } });
    expect((await fetch(new URL('/metrics', off.url))).status).not.toBe(200);
    expect((await fetch(new URL('/healthz', off.url))).status).toBe(200);

    const { app: keyed, store } = await start({
      serviceApi: { rpc: { enabled: true, allow: { apiKeys: true } } },
      metrics: { operatorPasswordHash: await hashApiKey('operator-secret', FAST_KEYS) },
    });
    const { user, key } = await addTestService(store, {}, FAST_KEYS);
    const url = new URL('/metrics', keyed.url);
    const basic = (u: string, k: string) => ({ Authorization: `Basic ${Buffer.from(`${u}:${k}`).toString('base64')}` });
    const none = await fetch(url);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toContain('Basic');
    // A service's key reads nothing: /metrics names every service.
    expect((await fetch(url, { headers: basic(user, key) })).status).toBe(401);
    expect((await fetch(url, { headers: basic(METRICS_USER, 'wrong') })).status).toBe(401);
    expect((await fetch(url, { headers: basic(user, 'operator-secret') })).status).toBe(401);
    const ok = await fetch(url, { headers: basic(METRICS_USER, 'operator-secret') });
    expect(ok.status).toBe(200);
    // Through a proxy too: the password, not the address, is what lets the operator in.
    expect((await fetch(url, { headers: { ...basic(METRICS_USER, 'operator-secret'), 'X-Forwarded-For': '203.0.113.9' } })).status).toBe(200);
    expect(await ok.text()).toContain('dpow_results_total');
  });
});

describe('/metrics logins', () => {
  it('spends no scrypt on a password when no operator password is set', async () => {
    const { app } = await start({ serviceApi: { rpc: { enabled: true, allow: { apiKeys: true } } } });
    const url = new URL('/metrics', app.url);
    for (let i = 0; i < 30; i++) {
      const res = await fetch(url, { headers: { Authorization: `Basic ${Buffer.from(`${METRICS_USER}:guess-${i}`).toString('base64')}` } });
      expect(res.status).toBe(401);
    }
    expect(app.metrics.loginChecks).toEqual({ cached: 0, computed: 0, throttled: 0 });
  });
});

describe('feed metrics', () => {
  it('report a precache feed as connected, with its events', async () => {
    const { app } = await start({ feeds: { specs: [{ kind: 'nano-sim' }], simIntervalMs: 40, nanoDifficulty: 0xff00000000000000n, refreshMs: 0 } });
    const [feed] = app.feeds;
    await waitFor('the feed to connect and precache', () => feed.connected && feed.policy.stats.precached > 0);
    const text = await (await fetch(new URL('/metrics', app.url))).text();
    expect(sample(text, 'dpow_feed_connected', { feed: feed.description })).toBe(1);
    expect(sample(text, 'dpow_precache_events_total', { feed: feed.description, event: 'precached' })).toBeGreaterThan(0);
    await feed.close();
    const after = await (await fetch(new URL('/metrics', app.url))).text();
    expect(sample(after, 'dpow_feed_connected', { feed: feed.description })).toBe(0);
  });
});

describe('GET /healthz and /readyz', () => {
  it('says the process is up, and ready only while the broker is connected and the store answers', async () => {
    const store = new MemoryStore();
    const { app } = await start({}, store);
    const health = await fetch(new URL('/healthz', app.url));
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(new URL('/readyz', app.url));
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });

    await store.close();
    const broken = await fetch(new URL('/readyz', app.url));
    expect(broken.status).toBe(503);
    expect(await broken.json()).toEqual({ status: 'unavailable', reason: 'the store does not answer: store is closed' });
    expect((await fetch(new URL('/healthz', app.url))).status).toBe(200);
  });

  it('answers a crowd of /readyz with one read of the store at a time', async () => {
    const store = new MemoryStore();
    const { app } = await start({}, store);
    let reads = 0;
    const getTotals = store.getTotals.bind(store);
    store.getTotals = async () => {
      reads++;
      await new Promise((resolve) => setTimeout(resolve, 50)); // a store a little slow to answer
      return getTotals();
    };
    const answers = await Promise.all(Array.from({ length: 200 }, () => fetch(new URL('/readyz', app.url)).then((r) => r.status)));
    expect(answers.every((status) => status === 200)).toBe(true);
    // Each read takes at least 50 ms, so only the requests still arriving after one ends start another.
    console.log(`200 concurrent /readyz: ${reads} store reads`);
    expect(reads).toBeLessThan(200);
  });

  it('is not ready while the dispatcher has lost its broker', async () => {
    const { app } = await start();
    await app.broker!.close();
    await waitFor('the dispatcher to notice', () => !app.dispatcher!.connected);
    const res = await fetch(new URL('/readyz', app.url));
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'unavailable', reason: 'the dispatcher is not connected to the broker' });
  });
});

