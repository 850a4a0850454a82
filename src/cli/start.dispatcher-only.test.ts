/**
 * `dpow-web start --dispatcher-only --metrics-port N`: a real child process against Debian's
 * mosquitto (the shipped ACL) and a real redis-server serves /healthz, /readyz and /metrics on a
 * port of its own, and /readyz turns 503 with the reason when Redis goes away. Bad port values
 * are refused before anything starts. A full server behind the same broker keeps its --abuse-*
 * limits with --shared-results; --lookup-* bound the store lookups of results for jobs not held.
 */
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { encodeAddress } from '../dpow/address.ts';
import { CliProcess } from '../testkit/cli-process.ts';
import { sample } from '../testkit/metrics.ts';
import { Mosquitto, skipWithoutMosquitto } from '../testkit/mosquitto.ts';
import { RedisServer, skipWithoutRedis } from '../testkit/redis.ts';
import { waitForAsync } from '../testkit/wait.ts';
import { main } from './main.ts';

const skip = skipWithoutRedis('start.dispatcher-only.test.ts') || skipWithoutMosquitto('start.dispatcher-only.test.ts');

describe.skipIf(skip)('start --dispatcher-only --metrics-port', () => {
  let redis: RedisServer;
  let broker: Mosquitto;
  let dispatcher: CliProcess | undefined;
  beforeAll(async () => {
    [redis, broker] = await Promise.all([RedisServer.start(), Mosquitto.start()]);
  });
  afterAll(async () => {
    await dispatcher?.kill('SIGKILL');
    await Promise.all([redis?.close(), broker?.close()]);
  });

  it('serves /healthz, /readyz and /metrics with the leader gauge, and is not ready while Redis is down', { timeout: 30_000 }, async () => {
    dispatcher = CliProcess.start(
      ['start', '--dispatcher-only', '--broker', broker.tcpUrl, '--broker-username', 'server', '--store', redis.url(3), '--no-demo', '--metrics-port', '0'],
      { DPOW_BROKER_PASSWORD: broker.secrets.server },
    );
    const url = (await dispatcher.waitForOutput(/\/readyz at (http:\/\/127\.0\.0\.1:\d+\/)/, 15_000))[1];
    const get = (path: string, headers: Record<string, string> = {}) => fetch(new URL(path, url), { headers });

    const health = await get('/healthz');
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
    const ready = await get('/readyz');
    expect([ready.status, await ready.json()]).toEqual([200, { status: 'ready' }]);

    // The dispatcher's and the store's metrics under the full server's names; no embedded broker.
    const metrics = await get('/metrics');
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(sample(text, 'dpow_results_total{outcome="accepted"}')).toBe(0);
    expect(sample(text, 'dpow_jobs_published_total{type="ondemand"}')).toBe(0);
    expect(sample(text, 'dpow_store_errors_total')).toBe(0);
    expect(sample(text, 'dpow_broker_connected')).toBe(1);
    // The only dispatcher on this Redis holds the singleton lease by the time it says it runs.
    expect(sample(text, 'dpow_dispatcher_leader')).toBe(1);
    expect(text).not.toContain('dpow_workers_connected');
    // /metrics follows --rpc (loopback, never through a proxy); other paths are not served.
    expect((await get('/metrics', { 'X-Forwarded-For': '203.0.113.9' })).status).toBe(403);
    expect((await get('/')).status).toBe(404);

    await redis.stop();
    const down = await waitForAsync('/readyz to say 503', async () => {
      const res = await get('/readyz');
      return res.status === 503 ? ((await res.json()) as { status: string; reason: string }) : undefined;
    });
    expect(down.status).toBe('unavailable');
    expect(down.reason).toMatch(/^the store does not answer: /);
    expect((await get('/healthz')).status).toBe(200);
    // Without Redis the lease cannot be renewed: within its 2 s this dispatcher stops leading.
    await waitForAsync('the leader gauge to drop', async () => sample(await (await get('/metrics')).text(), 'dpow_dispatcher_leader') === 0, 5_000);

    await redis.start();
    await waitForAsync('/readyz to recover', async () => (await get('/readyz')).status === 200);
    await dispatcher.kill('SIGTERM');
    expect((await dispatcher.exited).code).toBe(0);
  });

  it('a full server with --shared-results still takes the --abuse-* limits', { timeout: 30_000 }, async () => {
    const server = CliProcess.start(
      ['start', '--broker', broker.tcpUrl, '--broker-username', 'server', '--store', redis.url(4), '--broker-public-url', broker.wsUrl, '--shared-results', 'fronts', '--abuse-threshold', '2', '--port', '0', '--no-build', '--no-demo'],
      { DPOW_BROKER_PASSWORD: broker.secrets.server },
    );
    try {
      const url = (await server.waitForOutput(/running at (http:\/\/127\.0\.0\.1:\d+\/)/, 15_000))[1];
      // Behind an external broker the publisher is unknown: the payout address is contained.
      const address = encodeAddress(randomBytes(32));
      const volunteer = await mqtt.connectAsync(broker.tcpUrl, { username: 'client', password: 'client', protocolVersion: 4 });
      for (let i = 0; i < 3; i++) await volunteer.publishAsync('result/precache', `${randomBytes(32).toString('hex')},0000000000000000,${address}`, { qos: 1 });
      await volunteer.endAsync();
      const contained = await waitForAsync('the containment', async () => {
        const text = await (await fetch(new URL('/metrics', url))).text();
        const n = sample(text, 'dpow_abuse_containments_total{source="address"}');
        return n ? n : undefined;
      });
      expect(contained).toBe(1);
    } finally {
      await server.kill('SIGTERM');
    }
    expect((await server.exited).code).toBe(0);
  });

  it('--lookups-in-flight, --lookup-rate and --lookup-burst bound the lookups of results for jobs held elsewhere', { timeout: 30_000 }, async () => {
    const only = CliProcess.start(
      ['start', '--dispatcher-only', '--broker', broker.tcpUrl, '--broker-username', 'server', '--store', redis.url(5), '--no-demo', '--metrics-port', '0', '--lookups-in-flight', '1', '--lookup-rate', '1', '--lookup-burst', '1'],
      { DPOW_BROKER_PASSWORD: broker.secrets.server },
    );
    try {
      const url = (await only.waitForOutput(/\/readyz at (http:\/\/127\.0\.0\.1:\d+\/)/, 15_000))[1];
      const volunteer = await mqtt.connectAsync(broker.tcpUrl, { username: 'client', password: 'client', protocolVersion: 4 });
      for (let i = 1; i < 50; i++) volunteer.publish('result/precache', `${randomBytes(32).toString('hex')},0000000000000000,${encodeAddress(randomBytes(32))}`);
      await volunteer.publishAsync('result/precache', `${randomBytes(32).toString('hex')},0000000000000000,${encodeAddress(randomBytes(32))}`, { qos: 1 });
      await volunteer.endAsync();
      const text = await waitForAsync('50 results counted', async () => {
        const text = await (await fetch(new URL('/metrics', url))).text();
        const counted = (sample(text, 'dpow_results_total{outcome="unknown-hash"}') ?? 0) + (sample(text, 'dpow_results_total{outcome="dropped"}') ?? 0);
        return counted === 50 && text;
      });
      // One lookup at a time, one a second: most of 50 sent at once are dropped unlooked-up.
      expect(sample(text, 'dpow_results_dropped_total{reason="lookup-bound"}')).toBeGreaterThan(0);
      expect(sample(text, 'dpow_result_lookups_in_flight')).toBe(0);
    } finally {
      await only.kill('SIGTERM');
    }
    expect((await only.exited).code).toBe(0);
  });
});

describe('start --metrics-port and --lookup-* refuse bad values', () => {
  let stderr: string[];
  beforeEach(() => {
    stderr = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (stderr.push(String(chunk)), true));
  });
  afterEach(() => vi.restoreAllMocks());

  it.each([
    ['70000', 'must be a port number from 0 to 65535, got "70000"'],
    ['abc', 'must be a port number from 0 to 65535, got "abc"'],
    ['-1', 'must be a port number from 0 to 65535, got "-1"'],
    ['', 'must be a port number from 0 to 65535, got ""'],
    ['1e3', 'must be a port number from 0 to 65535, got "1e3"'],
  ])('--metrics-port %j: one clear line, exit 2', async (value, message) => {
    const argv = ['start', '--dispatcher-only', '--broker', 'mqtt://127.0.0.1:1', '--broker-username', 'server', '--broker-password', 'x', '--memory', '--metrics-port', value];
    expect(await main(argv)).toBe(2);
    expect(stderr.join('')).toBe(`dpow-web start: --metrics-port ${message}\n`);
  });

  it('is refused without --dispatcher-only, whose full server serves them on --port', async () => {
    expect(await main(['start', '--memory', '--no-build', '--metrics-port', '9100'])).toBe(2);
    expect(stderr.join('')).toBe('dpow-web start: --metrics-port is for --dispatcher-only; the full server serves /metrics, /healthz and /readyz on --port\n');
  });

  it.each([
    ['--lookups-in-flight', '0'],
    ['--lookup-rate', 'x'],
    ['--lookup-burst', '1.5'],
  ])('%s %j: one clear line, exit 2', async (flag, value) => {
    expect(await main(['start', '--memory', '--no-build', flag, value])).toBe(2);
    expect(stderr.join('')).toBe(`dpow-web start: ${flag} must be an integer >= 1, got "${value}"\n`);
  });
});
