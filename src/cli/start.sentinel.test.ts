/**
 * `--store redis+sentinel://…` on the commands that take `--store`, against a real Sentinel group
 * (a primary, 2 replicas, 3 sentinels) whose data nodes ask for a password that only
 * $DPOW_REDIS_PASSWORD carries. `service` and `snapshot` use it; a `start --dispatcher-only`
 * child process follows a promotion by itself: after the primary is killed (SIGKILL) it is
 * ready again, leads again and accepts a volunteer's result, credited once, on the new primary.
 */
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { encodeAddress } from '../dpow/address.ts';
import { RedisStore } from '../server/store/redis-store.ts';
import { CliProcess } from '../testkit/cli-process.ts';
import { sample } from '../testkit/metrics.ts';
import { Mosquitto, skipWithoutMosquitto } from '../testkit/mosquitto.ts';
import { captureOutput } from '../testkit/output.ts';
import { RedisSentinelGroup, skipWithoutSentinel } from '../testkit/redis-sentinel.ts';
import { waitForAsync } from '../testkit/wait.ts';
import { findWork, randomRoot } from '../testkit/work.ts';
import { main } from './main.ts';

const skip = skipWithoutSentinel('start.sentinel.test.ts') || skipWithoutMosquitto('start.sentinel.test.ts');
const PASSWORD = randomBytes(9).toString('hex');

describe.skipIf(skip)('--store redis+sentinel://', () => {
  let group: RedisSentinelGroup;
  let broker: Mosquitto;
  const { stdout, stderr } = captureOutput();
  beforeAll(async () => {
    [group, broker] = await Promise.all([RedisSentinelGroup.start({ password: PASSWORD }), Mosquitto.start()]);
  });
  afterAll(async () => {
    await Promise.all([group?.close(), broker?.close()]);
  });

  it('service and snapshot keep their state on the Sentinel primary, logging in from $DPOW_REDIS_PASSWORD', async () => {
    const url = group.url(1);
    expect(await main(['service', 'list', '--store', url])).toBe(2);
    expect(stderr.join('')).toMatch(/cannot open the store redis\+sentinel:\/\/.*\/dpow\/1: cannot connect to Redis .*NOAUTH/);

    vi.stubEnv('DPOW_REDIS_PASSWORD', PASSWORD);
    expect(await main(['service', 'add', 'wallet', '--display', 'Wallet', '--store', url])).toBe(0);
    stdout.length = 0;
    expect(await main(['service', 'list', '--json', '--store', url])).toBe(0);
    expect(JSON.parse(stdout.join(''))).toMatchObject([{ user: 'wallet' }]);
    expect(await main(['snapshot', '--json', '--store', url])).toBe(0);
    expect(stdout.join('') + stderr.join('')).not.toContain(PASSWORD);
  });

  it('start --dispatcher-only follows a promotion: ready and leading again, and a result after it is credited once', { timeout: 120_000 }, async () => {
    const url = group.url(2);
    const dispatcher = CliProcess.start(
      ['start', '--dispatcher-only', '--broker', broker.tcpUrl, '--broker-username', 'server', '--store', url, '--no-demo', '--metrics-port', '0'],
      { DPOW_BROKER_PASSWORD: broker.secrets.server, DPOW_REDIS_PASSWORD: PASSWORD },
    );
    const store = await RedisStore.open(url, { credentials: { password: PASSWORD } });
    const volunteer = await mqtt.connectAsync(broker.tcpUrl, { username: 'client', password: 'client', protocolVersion: 4 });
    try {
      const base = (await dispatcher.waitForOutput(/\/readyz at (http:\/\/127\.0\.0\.1:\d+\/)/, 30_000))[1];
      const metrics = async () => (await fetch(new URL('/metrics', base))).text();
      await waitForAsync('the dispatcher to lead', async () => sample(await metrics(), 'dpow_dispatcher_leader') === 1, 30_000);
      // The lease itself waits for a replica.
      expect(sample(await metrics(), 'dpow_store_replicated_writes_total{outcome="confirmed"}')).toBeGreaterThan(0);

      const old = await group.primary();
      await old.stop('SIGKILL');
      await group.promotion(old);
      await dispatcher.waitForOutput(/Sentinel named a new Redis primary, 127\.0\.0\.1:\d+; following it/, 30_000);
      await waitForAsync('/readyz after the promotion', async () => (await fetch(new URL('/readyz', base))).status === 200, 30_000);
      await waitForAsync('the dispatcher to lead again', async () => sample(await metrics(), 'dpow_dispatcher_leader') === 1, 30_000);

      // A job another dispatcher published (its pending record in the store), and a volunteer's result for it.
      const root = randomRoot();
      const difficulty = 0xfff0000000000000n;
      await store.savePending({ hash: root, difficulty, workType: 'ondemand', expiresAt: Date.now() + 600_000, createdAt: Date.now() });
      const address = encodeAddress(randomBytes(32));
      await volunteer.publishAsync('result/ondemand', `${root},${findWork(root, difficulty)},${address}`, { qos: 1 });
      expect(await waitForAsync('the credit', () => store.getClient(address).catch(() => undefined), 30_000)).toMatchObject({ ondemand: 1 });
      expect(await store.getTotals()).toMatchObject({ ondemand: 1 });
      expect(dispatcher.output).not.toContain(PASSWORD);
    } finally {
      await volunteer.endAsync();
      await store.close();
      await dispatcher.kill('SIGTERM');
      await group.restart(group.servers.find((s) => !s.running)!);
    }
    expect((await dispatcher.exited).code).toBe(0);
  });
});
