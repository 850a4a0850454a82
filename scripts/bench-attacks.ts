/**
 * `npm run bench:attacks`: the MQTT attacks of src/server/attacks/ at full size, each on a target
 * started afresh for it:
 *
 *   dpow          a real `dpow-web start` process (the embedded broker, as an operator runs it)
 *   mosquitto     Debian's mosquitto with the shipped deploy/mosquitto config: over TCP its
 *                 volunteers' listener, over WebSocket through a real `dpow-web mqtt-front`
 *                 process, as the shipped nginx sends volunteers
 *   mosquitto-ws  (for comparison) the same mosquitto with a WebSocket listener of its own, as
 *                 the config had one before the front: unfinished-connect over WebSocket only
 *                 (libwebsockets takes about 0.3 s a connection, so the floods would take hours)
 *
 * For each attack and transport it prints each target process's resident memory (RSS, /proc)
 * before, at its peak during the attack (sampled every 10 ms) and a second after the attacker
 * has gone, and the bytes of log the target wrote meanwhile. Node rarely gives heap back to the
 * system, so a dpow-web "after" near its peak says the heap grew, not that anything is still held
 * (the attack suite measures what is held).
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
 *   connection-flood    2,000 logins from one source, all held open (over TCP bound to 127.0.0.2,
 *                       a stranger's address to the broker; over WebSocket a proxy names the source
 *                       in X-Forwarded-For)
 *   many-sources-flood  300 logins from each of 20 sources, all held open, against a total cap
 *                       of 2,000 (--mqtt-max-connections); WebSocket only (a proxy names them)
 *
 * Options: --only dpow|mosquitto|mosquitto-ws  --attack NAME (repeatable)  --json <file>
 *          --uncapped  dpow-web and the front with connection caps out of reach (the figures
 *                      before they existed)
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { CliProcess } from '../src/testkit/cli-process.ts';
import { Mosquitto } from '../src/testkit/mosquitto.ts';
import { encode, MiB, RawMqtt, rssOf, unfinishedConnects } from '../src/testkit/mqtt-attack.ts';
import { freePort, strangerAddress } from '../src/testkit/net.ts';

const { values } = parseArgs({
  options: { only: { type: 'string' }, attack: { type: 'string', multiple: true }, json: { type: 'string' }, uncapped: { type: 'boolean' } },
});
/** Caps no attack here reaches: the connection caps as they were before they existed. */
const UNCAPPED = values.uncapped ? ['--mqtt-max-connections-per-source', '1000000', '--mqtt-max-connections', '1000000'] : [];

const CLIENT = { username: 'client', password: 'client' };
const BIG = Buffer.alloc(60 * 1024, 0x62);
const hash = (i: number) => i.toString(16).toUpperCase().padStart(64, '0');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Target {
  name: string;
  /** The processes whose memory is weighed, by name. */
  pids: Record<string, number>;
  /** Undefined where the target has no such listener for volunteers. */
  tcpUrl?: string;
  wsUrl: string;
  /** Bytes of log written so far. */
  logBytes(): number;
  /** The dispatcher (or the server login) publishes `n` cancels at QoS 1. */
  cancels(n: number): Promise<void>;
  close(): Promise<void>;
}

/** What an attack needs of its target's start: connection caps, and where dpow-web listens. */
interface TargetSetup {
  /** Connection caps for dpow-web start and the front. */
  capArgs?: string[];
}

async function startDpow(setup: TargetSetup): Promise<Target> {
  const cli = CliProcess.start(['start', '--memory', '--no-demo', '--no-build', '--port', '0', '--broker-tcp-port', '0', ...(setup.capArgs ?? [])]);
  const [, url, wsUrl, tcpUrl] = await cli.waitForOutput(/running at (http:\/\/\S+)\s+\(broker (ws:\/\/\S+), (mqtt:\/\/[^)\s]+)\)/);
  const rpc = async (body: object) => (await fetch(url, { method: 'POST', body: JSON.stringify(body) })).json();
  return {
    name: 'dpow-web start',
    pids: { 'dpow-web': cli.child.pid! },
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

/** The shipped Mosquitto, volunteers over TCP on its listener for them and over WebSocket through a `dpow-web mqtt-front` process. */
async function startMosquitto(setup: TargetSetup): Promise<Target> {
  const broker = await Mosquitto.start();
  const front = CliProcess.start(['mqtt-front', '--broker', broker.volunteersUrl, '--port', '0', ...(setup.capArgs ?? [])]);
  const [, wsUrl] = await front.waitForOutput(/running at (ws:\/\/\S+)/);
  return mosquittoTarget('mosquitto (deploy/mosquitto) + mqtt-front', broker, { front }, broker.volunteersUrl, wsUrl);
}

/** The shipped Mosquitto with a WebSocket listener of its own, as before the front: for comparison. */
async function startMosquittoWs(): Promise<Target> {
  const port = await freePort();
  const broker = await Mosquitto.start({ extraConfig: `listener ${port} lo\nprotocol websockets` });
  return mosquittoTarget("mosquitto's own WebSocket listener", broker, {}, undefined, `ws://127.0.0.1:${port}`);
}

async function mosquittoTarget(name: string, broker: Mosquitto, others: { front?: CliProcess }, tcpUrl: string | undefined, wsUrl: string): Promise<Target> {
  const server = await mqtt.connectAsync(broker.tcpUrl, { username: 'server', password: broker.secrets.server, protocolVersion: 4, reconnectPeriod: 0 });
  return {
    name,
    pids: { mosquitto: broker.process.pid!, ...(others.front ? { 'mqtt-front': others.front.child.pid! } : {}) },
    tcpUrl,
    wsUrl,
    logBytes: () => Buffer.byteLength(broker.log) + Buffer.byteLength(others.front?.output ?? ''),
    async cancels(n) {
      await Promise.all(Array.from({ length: n }, (_, i) => server.publishAsync('cancel/precache', hash(i), { qos: 1 })));
    },
    async close() {
      await server.endAsync(true);
      await others.front?.kill('SIGTERM');
      await broker.close();
    },
  };
}

/** Opens a connection to the target; with `source`, as a proxy on loopback forwards a caller there (WebSocket). */
type Open = (source?: string) => Promise<RawMqtt>;
type Attack = (target: Target, url: string, open: Open) => Promise<string>;

/** How each attack wants its target started, where it is not the default. */
const SETUPS: Record<string, TargetSetup> = {
  'connection-flood': {},
  'many-sources-flood': { capArgs: ['--mqtt-max-connections', '2000'] },
};

/** Logs in `n` times from `source` (each held open); how many the target took. */
async function logins(open: Open, n: number, source?: string): Promise<number> {
  let admitted = 0;
  for (let i = 0; i < n; i++) {
    const raw = await open(source).catch(() => undefined);
    const connack = await raw?.login(CLIENT).catch(() => undefined);
    if (connack?.returnCode === 0) admitted++;
  }
  return admitted;
}

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
    const { raws, sent } = await unfinishedConnects(open, 4, 64 * MiB);
    await Promise.race([Promise.all(raws.map((r) => r.closed)), sleep(500)]);
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

  async 'connection-flood'(_target, url, open) {
    // Over WebSocket as a proxy names the source; over TCP from a loopback address other than
    // 127.0.0.1, which the broker counts as a stranger's (127.0.0.1 is the operator's own).
    return `${await logins(open, 2000, url.startsWith('ws') ? '198.51.100.7' : strangerAddress())} of 2,000 admitted`;
  },

  async 'many-sources-flood'(_target, url, open) {
    if (!url.startsWith('ws')) return 'skipped: a proxy names many sources over WebSocket only';
    let admitted = 0;
    for (let s = 0; s < 20; s++) admitted += await logins(open, 300, `198.51.100.${s + 1}`);
    return `${admitted} of 6,000 admitted`;
  },
};

interface Row {
  target: string;
  transport: string;
  attack: string;
  /** Per process: RSS before, at peak and after, MiB. */
  rss: Record<string, { beforeMiB: number; peakMiB: number; afterMiB: number }>;
  logBytes: number;
  note: string;
}

async function measure(target: Target, transport: 'tcp' | 'ws', url: string, attack: string): Promise<Row> {
  const held: (() => unknown)[] = [];
  // A source is named in X-Forwarded-For over WebSocket (as the shipped nginx does) and bound as
  // the local address over TCP.
  const open: Open = (source) =>
    RawMqtt.open(url, held, !source ? {} : url.startsWith('ws') ? { headers: { 'X-Forwarded-For': source } } : { localAddress: source });
  const names = Object.keys(target.pids);
  const rss = (name: string) => rssOf(target.pids[name]) / MiB;
  const before = Object.fromEntries(names.map((n) => [n, rss(n)]));
  const peak = { ...before };
  const logBefore = target.logBytes();
  const sample = () => {
    for (const n of names) peak[n] = Math.max(peak[n], rss(n));
  };
  const sampler = setInterval(sample, 10);
  let note: string;
  try {
    note = await attacks[attack](target, url, open);
  } catch (err) {
    note = `attack failed: ${(err as Error).message}`;
  }
  sample();
  for (const close of held) await close();
  await sleep(1000);
  clearInterval(sampler);
  const row: Row = {
    target: target.name,
    transport,
    attack,
    rss: Object.fromEntries(names.map((n) => [n, { beforeMiB: +before[n].toFixed(1), peakMiB: +peak[n].toFixed(1), afterMiB: +rss(n).toFixed(1) }])),
    logBytes: target.logBytes() - logBefore,
    note,
  };
  const memory = Object.entries(row.rss).map(([n, r]) => `${n} ${r.beforeMiB} → ${r.peakMiB} → ${r.afterMiB} MiB`).join(', ');
  console.log(`${row.target.padEnd(42)} ${transport.padEnd(3)} ${attack.padEnd(19)} RSS ${memory}  log ${row.logBytes} B  (${note})`);
  return row;
}

/** Each target, and the attacks it takes (all where absent). */
const TARGETS: Record<string, { start(setup: TargetSetup): Promise<Target>; attacks?: string[] }> = {
  dpow: { start: (setup) => startDpow({ ...setup, capArgs: [...(setup.capArgs ?? []), ...UNCAPPED] }) },
  mosquitto: { start: (setup) => startMosquitto({ ...setup, capArgs: [...(setup.capArgs ?? []), ...UNCAPPED] }) },
  'mosquitto-ws': { start: () => startMosquittoWs(), attacks: ['unfinished-connect'] },
};

const rows: Row[] = [];
for (const [which, { start, attacks: only }] of Object.entries(TARGETS)) {
  if (values.only && values.only !== which) continue;
  for (const transport of ['tcp', 'ws'] as const) {
    for (const attack of Object.keys(attacks)) {
      if ((values.attack && !values.attack.includes(attack)) || (only && !only.includes(attack))) continue;
      // A fresh target for each attack, so nothing an earlier one left (or made the heap grow
      // to) is counted against it; one honest worker first, so what the first connection of all
      // allocates is not counted either.
      const target = await start(SETUPS[attack] ?? {});
      const url = transport === 'tcp' ? target.tcpUrl : target.wsUrl;
      if (!url) {
        await target.close();
        continue;
      }
      const warm = await mqtt.connectAsync(url, { ...CLIENT, protocolVersion: 4, reconnectPeriod: 0 });
      await warm.subscribeAsync('work/#');
      await warm.endAsync();
      await sleep(500);
      rows.push(await measure(target, transport, url, attack));
      await target.close();
    }
  }
}
if (values.json) writeFileSync(values.json, `${JSON.stringify(rows, null, 2)}\n`);
