/**
 * `npm run bench:flood [-- --jobs N]`: how an honest worker fares while another connection floods
 * result/* with junk:
 * embedded broker + dispatcher + one ReferenceWorker, N ondemand jobs one after another, first
 * quiet, then under a flood (the flooder publishes QoS 0 as fast as mqtt.js lets it, with the
 * broker's rate cap lifted so the dispatcher's containment is what stops it), then under a flood
 * with the broker's default rate cap. Prints, per phase, jobs per second and the median and p90
 * time from request to answer, what the flood sent and what the dispatcher and the broker did
 * with it.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { encodeAddress } from '../src/dpow/address.ts';
import { topics } from '../src/dpow/codec.ts';
import { Broker } from '../src/server/broker.ts';
import { Dispatcher } from '../src/server/dispatcher/dispatcher.ts';
import { MemoryStore } from '../src/server/store/memory-store.ts';
import { ReferenceWorker } from '../src/testkit/reference-worker.ts';
import { randomRoot } from '../src/testkit/work.ts';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '40' } } });
const JOBS = Number(values.jobs);
if (!Number.isInteger(JOBS) || JOBS < 1) throw new Error(`--jobs must be a positive integer, got ${values.jobs}`);
const EASY = 0xff00000000000000n;
const USERS = { server: { username: 'server', password: 'bench-server' }, client: { username: 'client', password: 'client' } };

async function run(label: string, flood: boolean, publishRate?: { perSecond: number; burst: number }): Promise<void> {
  const broker = await Broker.start({ users: USERS, tcpPort: 0, limits: { publishRate } });
  const dispatcher = new Dispatcher({ brokerUrl: broker.tcpUrl!, ...USERS.server, store: new MemoryStore(), resultPublisher: broker.publisherOf });
  await dispatcher.start();
  const worker = await ReferenceWorker.start({ brokerUrl: broker.tcpUrl!, ...USERS.client, address: encodeAddress(randomBytes(32)) });
  let sent = 0;
  let flooding = flood;
  const flooder = flood ? await mqtt.connectAsync(broker.tcpUrl!, { ...USERS.client, protocolVersion: 4, reconnectPeriod: 200 }) : undefined;
  const junkAddress = encodeAddress(randomBytes(32));
  const pump = (async () => {
    while (flooding && flooder) {
      if (flooder.connected) {
        for (let i = 0; i < 50; i++) flooder.publish(topics.result('ondemand'), `${randomRoot()},0000000000000000,${junkAddress}`, { qos: 0 });
        sent += 50;
      }
      await new Promise((r) => setImmediate(r));
    }
  })();
  const started = performance.now();
  const times: number[] = [];
  for (let i = 0; i < JOBS; i++) {
    const t = performance.now();
    await dispatcher.requestWork({ hash: randomRoot(), difficulty: EASY, workType: 'ondemand', timeoutMs: 30_000 });
    times.push(performance.now() - t);
  }
  const seconds = (performance.now() - started) / 1000;
  flooding = false;
  await pump;
  times.sort((a, b) => a - b);
  const r = dispatcher.counters.results;
  console.log(
    `${label}: ${JOBS} jobs in ${seconds.toFixed(2)} s (${(JOBS / seconds).toFixed(1)} jobs/s), ` +
      `median ${times[Math.floor(JOBS / 2)].toFixed(1)} ms, p90 ${times[Math.floor(JOBS * 0.9)].toFixed(1)} ms; ` +
      `flood sent ${sent}, dispatcher saw unknown-hash ${r['unknown-hash']} ignored ${r.ignored} accepted ${r.accepted}; ` +
      `broker closed ${broker.counters.refusedRate} connections for rate; contained ${JSON.stringify(dispatcher.abuse.counters.contained)}`,
  );
  await flooder?.endAsync(true);
  await worker.stop();
  await dispatcher.stop();
  await broker.close();
}

await run('quiet', false);
await run('flood, no broker cap', true, { perSecond: 1e9, burst: 1e9 });
await run('flood, default broker cap', true);
