/**
 * bench:scale child: many simulated volunteers, each one lightweight mqtt.js connection that
 * speaks the protocol (work/+, cancel/+, client/<address>) and answers a job with precomputed
 * valid work after a delay like a real worker's search time, unless a cancel came first.
 * argv: <broker url[,url…] (volunteer i on node i mod n)> <connections> <table json path> <min delay ms> <mean extra delay ms>
 *
 * Reports to the parent: { connected } once all are up, then on { cmd: 'report' }:
 * { connected, published, cancelledBeforePublish, latenciesMs } (publish -> client notice).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { encodeAddress } from '../../src/dpow/address.ts';

const [brokerUrls, countText, tablePath, minDelayText, meanDelayText] = process.argv.slice(2);
const nodes = brokerUrls.split(',');
const table = new Map<string, string>(JSON.parse(readFileSync(tablePath, 'utf8')) as Array<[string, string]>);
const minDelay = Number(minDelayText);
const meanDelay = Number(meanDelayText);
const stats = { connected: 0, published: 0, cancelledBeforePublish: 0, latenciesMs: [] as number[] };

function volunteer(client: MqttClient, address: string): void {
  const timers = new Map<string, NodeJS.Timeout>();
  const sentAt = new Map<string, number>();
  client.on('message', (topic, payload) => {
    const text = String(payload);
    if (topic.startsWith('work/')) {
      const hash = text.split(',')[0];
      const work = table.get(hash);
      if (!work || timers.has(hash)) return;
      // Search time: a floor plus an exponential tail, as hashrates and luck vary.
      const delay = minDelay - meanDelay * Math.log(1 - Math.random());
      timers.set(
        hash,
        setTimeout(() => {
          sentAt.set(hash, performance.now());
          stats.published++;
          client.publish(`result/${topic.slice(5)}`, `${hash},${work},${address}`, { qos: 1 });
        }, delay),
      );
    } else if (topic.startsWith('cancel/')) {
      const timer = timers.get(text);
      if (timer && !sentAt.has(text)) {
        clearTimeout(timer);
        stats.cancelledBeforePublish++;
      }
    } else if (topic.startsWith('client/')) {
      const block = /"block_rewarded":"([0-9A-Fa-f]{64})"/.exec(text)?.[1];
      const t0 = block && sentAt.get(block);
      if (t0) stats.latenciesMs.push(performance.now() - t0);
    }
  });
}

const count = Number(countText);
const clients: MqttClient[] = [];
for (let i = 0; i < count; i++) {
  const address = encodeAddress(randomBytes(32));
  const client = mqtt.connect(nodes[i % nodes.length], { username: 'client', password: 'client', protocolVersion: 4, keepalive: 120, reconnectPeriod: 5000 });
  client.on('connect', () => {
    stats.connected++;
    void client.subscribeAsync(['work/+', 'cancel/+', `client/${address}`], { qos: 0 }).then(() => {
      if (stats.connected === count) process.send!({ connected: stats.connected });
    });
  });
  client.on('close', () => (stats.connected = Math.max(0, stats.connected - 1)));
  client.on('error', () => {});
  volunteer(client, address);
  clients.push(client);
  // Pace the connects so the broker's accept queue keeps up.
  if (i % 50 === 49) await new Promise((r) => setTimeout(r, 20));
}

process.on('message', (message: { cmd: string }) => {
  if (message.cmd === 'report') {
    process.send!({ report: { ...stats, connected: clients.filter((c) => c.connected).length } });
    stats.latenciesMs = [];
  } else if (message.cmd === 'stop') {
    for (const c of clients) c.end(true);
    process.exit(0);
  }
});
