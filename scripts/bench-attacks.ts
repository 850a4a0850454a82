/**
 * `npm run bench:attacks`: the MQTT attacks of src/server/attacks/ at full size, on a real
 * `dpow-web start` process (the embedded broker, as an operator runs it) and on Debian's
 * mosquitto with the shipped deploy/mosquitto config, each started afresh for every attack. For
 * each attack and transport it prints the target's resident memory (RSS, /proc) before, at its
 * peak during the attack (sampled every 10 ms) and a second after the attacker has gone, and the
 * bytes of log the target wrote meanwhile. Node rarely gives heap back to the system, so a
 * dpow-web "after" near its peak says the heap grew, not that anything is still held (the
 * attack suite measures what is held).
 *
 *   unfinished-connect  4 connections each sending a CONNECT that declares 256 MB, 64 MiB of it
 *   qos2-parking        20 sessions (clean=false) × 100 QoS 2 publishes of 60 KiB, no PUBREL:
 *                       10 to a forbidden topic, 10 to result/precache
 *   parked-sessions     500 sessions (clean=false) subscribed to cancel/# at QoS 1 leave; then
 *                       500 cancels (on dpow-web: work_generate + work_cancel on the RPC)
 *   subscription-flood  2 connections × 20,000 filters of 1,000 bytes
 *   forbidden-flood     20,000 forbidden publishes (reconnecting when closed)
 *   login-flood         500 logins with a 60 KB user name and client id
 *   long-topic-flood    1,000 publishes to 30 KB topics (reconnecting when closed)
 *
 * Options: --only dpow|mosquitto  --json <file>
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { CliProcess } from '../src/testkit/cli-process.ts';
import { Mosquitto } from '../src/testkit/mosquitto.ts';
import { encode, firstByte, fixedHeader, MAX_REMAINING_LENGTH, MiB, RawMqtt, rssOf } from '../src/testkit/mqtt-attack.ts';

const { values } = parseArgs({ options: { only: { type: 'string' }, json: { type: 'string' } } });

const CLIENT = { username: 'client', password: 'client' };
const BIG = Buffer.alloc(60 * 1024, 0x62);
const hash = (i: number) => i.toString(16).toUpperCase().padStart(64, '0');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Target {
  name: string;
  pid: number;
  tcpUrl: string;
  wsUrl: string;
  /** Bytes of log written so far. */
  logBytes(): number;
  /** The dispatcher (or the server login) publishes `n` cancels at QoS 1. */
  cancels(n: number): Promise<void>;
  close(): Promise<void>;
}

async function startDpow(): Promise<Target> {
  const cli = CliProcess.start(['start', '--memory', '--no-demo', '--no-build', '--port', '0', '--broker-tcp-port', '0']);
  const [, url, wsUrl, tcpUrl] = await cli.waitForOutput(/running at (http:\/\/\S+)\s+\(broker (ws:\/\/\S+), (mqtt:\/\/[^)\s]+)\)/);
  const rpc = async (body: object) => (await fetch(url, { method: 'POST', body: JSON.stringify(body) })).json();
  return {
    name: 'dpow-web start',
    pid: cli.child.pid!,
    tcpUrl,
    wsUrl,
    logBytes: () => Buffer.byteLength(cli.output),
    async cancels(n) {
      // Each work_generate publishes work/ondemand and waits; its work_cancel publishes the cancel.
      for (let at = 0; at < n; at += 50) {
        const batch = Array.from({ length: Math.min(50, n - at) }, (_, i) => hash(at + i + 1));
        const waiting = batch.map((h) => rpc({ action: 'work_generate', hash: h }));
        await sleep(50);
        await Promise.all(batch.map((h) => rpc({ action: 'work_cancel', hash: h })));
        await Promise.all(waiting);
      }
    },
    close: () => cli.kill('SIGTERM'),
  };
}

async function startMosquitto(): Promise<Target> {
  const broker = await Mosquitto.start();
  const server = await mqtt.connectAsync(broker.tcpUrl, { username: 'server', password: broker.secrets.server, protocolVersion: 4, reconnectPeriod: 0 });
  return {
    name: 'mosquitto (deploy/mosquitto)',
    pid: broker.process.pid!,
    tcpUrl: broker.tcpUrl,
    wsUrl: broker.wsUrl,
    logBytes: () => Buffer.byteLength(broker.log),
    async cancels(n) {
      await Promise.all(Array.from({ length: n }, (_, i) => server.publishAsync('cancel/precache', hash(i), { qos: 1 })));
    },
    async close() {
      await server.endAsync(true);
      await broker.close();
    },
  };
}

type Attack = (target: Target, url: string, open: () => Promise<RawMqtt>) => Promise<string>;

/** Opens logged-in connections as they are closed; `each` is given the current one. */
async function reconnecting(open: () => Promise<RawMqtt>, login: typeof CLIENT, times: number, each: (raw: RawMqtt, i: number) => Promise<void>): Promise<number> {
  let raw: RawMqtt | undefined;
  let connections = 0;
  for (let i = 0; i < times; i++) {
    if (!raw || raw.isClosed) {
      raw?.close();
      raw = await open();
      await raw.login(login);
      connections++;
    }
    await each(raw, i);
  }
  raw?.close();
  return connections;
}

/** Waits until the connection has handled what was sent (a ping answered) or is closed. */
async function settled(raw: RawMqtt): Promise<void> {
  await raw.send(encode({ cmd: 'pingreq' }));
  await raw.next('pingresp').catch(() => undefined);
}

const attacks: Record<string, Attack> = {
  async 'unfinished-connect'(_target, _url, open) {
    const raws: RawMqtt[] = [];
    let sent = 0;
    for (let c = 0; c < 4; c++) {
      const raw = await open();
      raws.push(raw);
      await raw.send(fixedHeader(firstByte(1), MAX_REMAINING_LENGTH));
      sent += await raw.sendFiller(64 * MiB);
      await Promise.race([raw.closed, sleep(500)]);
    }
    const closed = raws.filter((r) => r.isClosed).length;
    for (const raw of raws) raw.close();
    return `${(sent / MiB).toFixed(1)} MiB sent; ${closed} of 4 closed by the broker`;
  },

  async 'qos2-parking'(_target, _url, open) {
    let closed = 0;
    for (const topic of ['work/ondemand', 'result/precache']) {
      for (let c = 0; c < 10; c++) {
        const raw = await open();
        await raw.login(CLIENT, { clean: false, clientId: `parker-${topic}-${c}-${Date.now()}` });
        await raw.send(Buffer.concat(Array.from({ length: 100 }, (_, i) => encode({ cmd: 'publish', topic, payload: BIG, qos: 2, messageId: i + 1, retain: false, dup: false }))));
        await settled(raw);
        if (raw.isClosed) closed++;
        raw.close();
      }
    }
    return `${closed} of 20 closed by the broker`;
  },

  async 'parked-sessions'(target, _url, open) {
    for (let s = 0; s < 500; s++) {
      const raw = await open();
      await raw.login(CLIENT, { clean: false, clientId: `parked-${s}-${Date.now()}` });
      await raw.send(encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'cancel/#', qos: 1 }] }));
      await raw.next('suback');
      await raw.send(encode({ cmd: 'disconnect' }));
      raw.close();
    }
    await target.cancels(500);
    return '500 sessions, 500 cancels';
  },

  async 'subscription-flood'(_target, _url, open) {
    let granted = 0;
    for (let c = 0; c < 2; c++) {
      const raw = await open();
      await raw.login(CLIENT);
      for (let w = 0; w < 200 && !raw.isClosed; w++) {
        const packets = Array.from({ length: 100 }, (_, p) =>
          encode({ cmd: 'subscribe', messageId: ((w * 100 + p) % 65535) + 1, subscriptions: [{ topic: `work/${'x'.repeat(980)}-${c}-${w}-${p}`, qos: 0 }] }),
        );
        await raw.send(Buffer.concat(packets));
      }
      await settled(raw);
      granted += raw.received.filter((p) => p.cmd === 'suback' && (p as { granted: number[] }).granted[0] !== 128).length;
      raw.close();
    }
    return `${granted} of 40,000 granted`;
  },

  async 'forbidden-flood'(_target, _url, open) {
    const connections = await reconnecting(open, CLIENT, 200, async (raw) => {
      await raw.send(Buffer.concat(Array.from({ length: 100 }, () => encode({ cmd: 'publish', topic: 'work/ondemand', payload: 'forged', qos: 0, retain: false, dup: false }))));
      await settled(raw);
    });
    return `20,000 publishes over ${connections} connections`;
  },

  async 'login-flood'(_target, _url, open) {
    const name = 'u'.repeat(60_000);
    for (let i = 0; i < 500; i++) {
      const raw = await open();
      await raw.send(encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `${name}${i}`, keepalive: 0, username: name, password: Buffer.from('x') }));
      await Promise.race([raw.next('connack').catch(() => undefined), raw.closed]);
      raw.close();
    }
    return '500 logins';
  },

  async 'long-topic-flood'(_target, _url, open) {
    const topic = `work/${'t'.repeat(30 * 1024)}`;
    const connections = await reconnecting(open, CLIENT, 1000, async (raw) => {
      await raw.send(encode({ cmd: 'publish', topic, payload: 'x', qos: 0, retain: false, dup: false }));
      await settled(raw);
    });
    return `1000 publishes over ${connections} connections`;
  },
};

interface Row {
  target: string;
  transport: string;
  attack: string;
  rssBeforeMiB: number;
  rssPeakMiB: number;
  rssAfterMiB: number;
  logBytes: number;
  note: string;
}

async function measure(target: Target, transport: 'tcp' | 'ws', attack: string): Promise<Row> {
  const url = transport === 'tcp' ? target.tcpUrl : target.wsUrl;
  const held: (() => unknown)[] = [];
  const open = () => RawMqtt.open(url, held);
  const rss = () => rssOf(target.pid) / MiB;
  const before = rss();
  const logBefore = target.logBytes();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rss())), 10);
  let note: string;
  try {
    note = await attacks[attack](target, url, open);
  } catch (err) {
    note = `attack failed: ${(err as Error).message}`;
  }
  peak = Math.max(peak, rss());
  for (const close of held) await close();
  await sleep(1000);
  clearInterval(sampler);
  const row = {
    target: target.name,
    transport,
    attack,
    rssBeforeMiB: +before.toFixed(1),
    rssPeakMiB: +peak.toFixed(1),
    rssAfterMiB: +rss().toFixed(1),
    logBytes: target.logBytes() - logBefore,
    note,
  };
  console.log(
    `${row.target.padEnd(30)} ${transport.padEnd(3)} ${attack.padEnd(19)} RSS ${String(row.rssBeforeMiB).padStart(6)} → peak ${String(row.rssPeakMiB).padStart(6)} → after ${String(row.rssAfterMiB).padStart(6)} MiB  log ${String(row.logBytes).padStart(9)} B  (${note})`,
  );
  return row;
}

const rows: Row[] = [];
for (const [which, start] of [
  ['dpow', startDpow],
  ['mosquitto', startMosquitto],
] as const) {
  if (values.only && values.only !== which) continue;
  for (const transport of ['tcp', 'ws'] as const) {
    for (const attack of Object.keys(attacks)) {
      // A fresh target for each attack, so nothing an earlier one left (or made the heap grow
      // to) is counted against it; one honest worker first, so what the first connection of all
      // allocates is not counted either.
      const target = await start();
      const warm = await mqtt.connectAsync(transport === 'tcp' ? target.tcpUrl : target.wsUrl, { ...CLIENT, protocolVersion: 4, reconnectPeriod: 0 });
      await warm.subscribeAsync('work/#');
      await warm.endAsync();
      await sleep(500);
      rows.push(await measure(target, transport, attack));
      await target.close();
    }
  }
}
if (values.json) writeFileSync(values.json, `${JSON.stringify(rows, null, 2)}\n`);
