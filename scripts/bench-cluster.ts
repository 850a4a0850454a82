/**
 * `npm run bench:cluster`: how long the engines under a no-single-point-of-failure deployment
 * take to come up and to mend, on this machine, so the failure test's CI budget can be sized.
 * Starts the test kit's processes (src/testkit) on free loopback ports:
 *
 * 1. Redis Sentinel: a primary, 2 replicas and 3 sentinels until the group is whole; accepts per
 *    second through the store (64 in flight) straight to the primary (no WAIT) and through
 *    Sentinel (each confirmed by a replica); then the primary killed (SIGKILL) until a replica is
 *    promoted, and until the other replica follows it; then, on one group, --kills more kills of
 *    the primary (each killed server started again and the group settled before the next): the
 *    spread of promotion times, and the kills whose election failed once (Sentinel's config epoch
 *    moved by more than one), which Sentinel retries only after twice its failover-timeout
 *    (--failover-timeout, the test kit's 2500 ms by default).
 * 2. RabbitMQ: 3 nodes from deploy/rabbitmq until they run as one cluster with the logins made;
 *    then one node killed and started again until it runs in the cluster again.
 * 3. RabbitMQ 3.10's pre-login packet buffering: a TCP client declares a 200 MB CONNECT and sends
 *    --connect-mib of it; the node's resident memory before and after (the others' for contrast).
 *
 * Options: --rounds 2 --kills 20 --failover-timeout 2500 --connect-mib 40 --only sentinel|rabbitmq|connect --json <file>
 * Prints one JSON object (times in ms) and the load average, which these figures depend on.
 */
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { RabbitCluster, type RabbitNode } from '../src/testkit/rabbitmq.ts';
import { RedisSentinelGroup } from '../src/testkit/redis-sentinel.ts';
import { RedisStore } from '../src/server/store/redis-store.ts';
import { randomBytes } from 'node:crypto';
import { waitForAsync } from '../src/testkit/wait.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '2' },
    kills: { type: 'string', default: '20' },
    'failover-timeout': { type: 'string', default: '2500' },
    'connect-mib': { type: 'string', default: '40' },
    only: { type: 'string' },
    json: { type: 'string' },
  },
});
const rounds = Number(values.rounds);
const want = (part: string) => values.only === undefined || values.only === part;
const figures: Record<string, unknown> = { loadavgBefore: loadavg().map((l) => Number(l.toFixed(2))) };
const since = (t: number) => Date.now() - t;

/** Accepts per second through a store on `url`, `count` of them, 64 in flight. */
async function acceptRate(url: string, count = 4000): Promise<number> {
  const store = await RedisStore.open(url, { prefix: `bench${randomBytes(3).toString('hex')}:` });
  const t = Date.now();
  let next = 0;
  const lane = async () => {
    while (next++ < count) {
      await store.acceptResult({ hash: randomBytes(32).toString('hex'), work: '00000000000000aa', value: 5n, workType: 'precache', address: 'nano_bench', services: [] });
    }
  };
  await Promise.all(Array.from({ length: 64 }, lane));
  const rate = Math.round(count / ((Date.now() - t) / 1000));
  await store.close();
  return rate;
}

if (want('sentinel')) {
  const runs = [];
  for (let i = 0; i < rounds; i++) {
    let t = Date.now();
    const group = await RedisSentinelGroup.start();
    const up = since(t);
    const old = await group.primary();
    const acceptsPerS = { primaryNoWait: await acceptRate(old.url(0)), sentinelWait1: await acceptRate(group.url(0)) };
    t = Date.now();
    await old.stop('SIGKILL');
    const promoted = await group.promotion(old);
    const promotion = since(t);
    const other = group.servers.find((s) => s !== old && s !== promoted)!;
    await waitForAsync('the other replica to follow', () => group.linkUp(other, promoted), 60_000);
    runs.push({ up, acceptsPerS, promotion, replicaFollows: since(t) });
    await group.close();
  }
  figures.sentinel = runs;

  // Many kills on one group: how promotions spread, and how often an election fails.
  const failoverTimeoutMs = Number(values['failover-timeout']);
  const group = await RedisSentinelGroup.start({ failoverTimeoutMs });
  const epoch = async () => Number((await group.sentinels[0].master(group.masterName))['config-epoch']);
  const promotions: number[] = [];
  const failedElections: Array<{ kill: number; promotionMs: number; load: number }> = [];
  for (let k = 0; k < Number(values.kills); k++) {
    const old = await group.primary();
    const before = await epoch();
    const t = Date.now();
    await old.stop('SIGKILL');
    await group.promotion(old, 120_000);
    const promotionMs = since(t);
    promotions.push(promotionMs);
    if ((await epoch()) - before > 1) failedElections.push({ kill: k, promotionMs, load: Number(loadavg()[0].toFixed(1)) });
    await group.restart(old);
    await group.ready(120_000);
  }
  await group.close();
  const sorted = [...promotions].sort((a, b) => a - b);
  figures.sentinelKills = {
    failoverTimeoutMs,
    kills: promotions.length,
    promotionMs: { min: sorted[0], median: sorted[Math.floor((sorted.length - 1) / 2)], max: sorted.at(-1) },
    failedElections,
  };
}

/** The Erlang VM's resident memory, in MB. */
async function rssMb(node: RabbitNode): Promise<number> {
  return Math.round((await node.rss()) / 1024 / 1024);
}

if (want('rabbitmq') || want('connect')) {
  const runs = [];
  for (let i = 0; i < (want('rabbitmq') ? rounds : 1); i++) {
    let t = Date.now();
    const cluster = await RabbitCluster.start();
    const up = since(t);
    if (want('rabbitmq')) {
      t = Date.now();
      await cluster.nodes[1].kill();
      await cluster.nodes[1].start();
      await cluster.ready();
      runs.push({ up, killedNodeBack: since(t) });
    }
    if (want('connect') && i === 0) {
      const mib = Number(values['connect-mib']);
      const before = await Promise.all(cluster.nodes.map(rssMb));
      const socket = connect(cluster.nodes[0].ports.mqtt, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      let closed = false;
      socket.on('close', () => (closed = true));
      socket.on('error', () => {});
      // CONNECT, remaining length 200,000,000 (varint), then zeros: a packet that never ends.
      socket.write(Buffer.from([0x10, 0x80, 0x84, 0xaf, 0x5f]));
      const block = Buffer.alloc(1 << 20);
      let sent = 0;
      while (!closed && sent < mib) {
        await new Promise((r) => socket.write(block, r));
        sent++;
      }
      const after = await Promise.all(cluster.nodes.map(rssMb));
      figures.unfinishedConnect = { sentMiB: sent, closedByBroker: closed, rssMbBefore: before, rssMbAfter: after };
      socket.destroy();
    }
    await cluster.close();
  }
  if (runs.length) figures.rabbitmq = runs;
}

figures.loadavgAfter = loadavg().map((l) => Number(l.toFixed(2)));
const text = JSON.stringify(figures, null, 2);
console.log(text);
if (values.json) writeFileSync(values.json, `${text}\n`);
