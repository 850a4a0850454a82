/**
 * `dpow-web mqtt-front` as the operator runs it (deploy/systemd/dpow-web-mqtt-front.service), in
 * front of Debian's mosquitto with the shipped config: a real volunteer (the headless worker,
 * over ws://) computes a job for a dispatcher through it; an unfinished 256 MB CONNECT is closed
 * at its header while Mosquitto's memory stays flat; a second connection over the source's cap
 * is refused; and /metrics, /readyz on its own port say so. Bad options exit 2.
 *
 * Skipped with a message only when mosquitto is not installed AND this is not CI.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeAddress } from '../dpow/address.ts';
import { rootToHex, validateWork } from '../pow/work.ts';
import { Dispatcher } from '../server/dispatcher/dispatcher.ts';
import { MemoryStore } from '../server/store/memory-store.ts';
import { CliProcess } from '../testkit/cli-process.ts';
import { Mosquitto, skipWithoutMosquitto } from '../testkit/mosquitto.ts';
import { firstByte, fixedHeader, MAX_REMAINING_LENGTH, mib, MiB, RawMqtt, rssOf } from '../testkit/mqtt-attack.ts';

const skip = skipWithoutMosquitto('cli/mqtt-front.test.ts');
let broker: Mosquitto;
let front: CliProcess;
let url: string;
let metricsUrl: string;
const closeAtEnd: (() => unknown)[] = [];

describe.skipIf(skip)('dpow-web mqtt-front in front of the shipped mosquitto', () => {
  beforeAll(async () => {
    broker = await Mosquitto.start();
    front = CliProcess.start(['mqtt-front', '--broker', broker.volunteersUrl, '--port', '0', '--metrics-port', '0', '--mqtt-max-connections-per-source', '1']);
    [, url, metricsUrl] = await front.waitForOutput(/running at (ws:\/\/\S+) for mqtt:\/\/\S+ {2}\(\/metrics, \/healthz, \/readyz at (http:\/\/\S+)\)/);
  });

  afterAll(async () => {
    await Promise.allSettled(closeAtEnd.map(async (close) => close()));
    await front?.kill('SIGTERM');
    await broker?.close();
  });

  it("carries a headless worker's work for the dispatcher", async () => {
    const store = new MemoryStore();
    const dispatcher = new Dispatcher({ brokerUrl: broker.tcpUrl, username: 'server', password: broker.secrets.server, store });
    const address = encodeAddress(randomBytes(32));
    const worker = CliProcess.start(['worker', '--broker', url, '--address', address, '--backend', 'wasm', '--threads', '1']);
    closeAtEnd.push(() => worker.kill('SIGTERM'));
    try {
      await dispatcher.start();
      await worker.waitForOutput(/Connected to /);
      const root = rootToHex(randomBytes(32));
      const answer = await dispatcher.requestWork({ hash: root, difficulty: 0xff00000000000000n, workType: 'ondemand', timeoutMs: 30_000 });
      expect(validateWork(root, answer.work, 'ff00000000000000').valid).toBe(true);
      await expect.poll(async () => (await store.getClient(address))?.ondemand).toBe(1);
    } finally {
      await worker.kill('SIGTERM');
      await dispatcher.stop();
      await store.close();
    }
    expect((await worker.exited).code).toBe(0);
  });

  it("closes an unfinished 256 MB CONNECT at its header, Mosquitto's memory flat; refuses a source its second connection", async () => {
    const before = rssOf(broker.process.pid!);
    const raw = await RawMqtt.open(url, closeAtEnd);
    await raw.send(fixedHeader(firstByte(1), MAX_REMAINING_LENGTH));
    const sent = await raw.sendFiller(64 * MiB);
    await raw.closed;
    const grown = rssOf(broker.process.pid!) - before;
    console.log(`mqtt-front CLI: an unfinished CONNECT declaring 256 MB, ${mib(sent)} sent before the close: mosquitto grew ${mib(grown)}`);
    // Closed at the header: what the attacker got out before it heard is what was in flight.
    expect(sent).toBeLessThan(8 * MiB);
    expect(grown).toBeLessThan(2 * MiB);

    const proxied = { headers: { 'X-Forwarded-For': '198.51.100.7' } };
    await RawMqtt.open(url, closeAtEnd, proxied);
    await expect(RawMqtt.open(url, closeAtEnd, proxied)).rejects.toMatchObject({ status: 429 });

    const metrics = await (await fetch(new URL('/metrics', metricsUrl))).text();
    expect(metrics).toMatch(/^dpow_mqtt_oversize_packets_total\{type="connect"\} 1$/m);
    expect(metrics).toMatch(/^dpow_mqtt_connections_refused_total\{reason="per-source"\} 1$/m);
    expect((await fetch(new URL('/readyz', metricsUrl))).status).toBe(200);
    // Through a proxy /metrics is the operator's only with the password, which is not set here.
    expect((await fetch(new URL('/metrics', metricsUrl), { headers: { 'X-Forwarded-For': '203.0.113.5' } })).status).toBe(403);
    // And the refusals are in its log, each kind once.
    expect(front.output.match(/refused a connection from/g)).toHaveLength(1);
    expect(front.output.match(/closed a connection from/g)).toHaveLength(1);
    expect(metrics).toMatch(/^dpow_mqtt_front_broker_unreachable_total 0$/m);
  });

  it('refuses bad options with exit 2 and one line', async () => {
    for (const args of [['--broker', 'ws://127.0.0.1:9001/mqtt'], ['--port', 'x'], ['--mqtt-max-connections', '0'], ['--mqtt-max-packet', '10'], ['--path', 'mqtt']]) {
      const bad = CliProcess.start(['mqtt-front', ...args]);
      expect((await bad.exited).code, args.join(' ')).toBe(2);
      expect(bad.output, args.join(' ')).toMatch(/^dpow-web mqtt-front: --[a-z-]+ must be .*\n$/);
    }
  });
});
