import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { encodeAddress } from '../dpow/address.ts';
import { toMultiplier } from '../pow/work.ts';
import { clientCodec, resultCodec, topics, workCodec, type ClientMessage } from '../dpow/codec.ts';
import { cleanupsAfterEach } from '../testkit/cleanups.ts';
import { ReferenceWorker } from '../testkit/reference-worker.ts';
import { waitFor } from '../testkit/wait.ts';
import { findBadWork, randomRoot } from '../testkit/work.ts';
import { AbuseGuard } from './dispatcher/abuse.ts';
import { Broker } from './broker.ts';
import type { BrokerUsers } from './broker-rules.ts';
import { Dispatcher } from './dispatcher/dispatcher.ts';
import { MemoryStore } from './store/memory-store.ts';

const cleanups = cleanupsAfterEach();
const EASY = 0xff00000000000000n; // ~256 hashes
const USERS: BrokerUsers = {
  server: { username: 'server', password: 'server-secret' },
  client: { username: 'client', password: 'client' },
};
const randomAddress = () => encodeAddress(randomBytes(32));

describe('AbuseGuard', () => {
  it('contains a connection past the threshold within the window, for the cooldown', () => {
    let t = 0;
    const guard = new AbuseGuard({ threshold: 3, windowMs: 1000, cooldownMs: 5000, now: () => t });
    expect(guard.noteInvalid('nano_a', 'c1')).toBeUndefined();
    expect(guard.noteInvalid('nano_a', 'c1')).toBeUndefined();
    expect(guard.noteInvalid('nano_a', 'c1')).toEqual({ kind: 'connection', key: 'c1', until: 5000, notify: 'nano_a' });
    expect(guard.check('nano_a', 'c1')).toMatchObject({ kind: 'connection', key: 'c1' });
    guard.noteIgnored('connection');
    // Known connection: the address is counted but not contained (anyone can write it).
    expect(guard.check('nano_a', 'c2')).toBeUndefined();
    expect(guard.counters.invalid).toEqual({ address: 3, connection: 3 });
    t = 5000;
    expect(guard.check('nano_a', 'c1')).toBeUndefined();
    expect(guard.counters).toMatchObject({ contained: { address: 0, connection: 1 }, ignored: { connection: 1 } });
  });

  it('names the address a connection last used when the result that crosses the threshold names none', () => {
    const guard = new AbuseGuard({ threshold: 3, windowMs: 1000, cooldownMs: 5000, now: () => 0 });
    guard.noteInvalid('nano_a', 'c1');
    guard.noteInvalid('nano_b', 'c1');
    // An unreadable payload has no address: the volunteer is told on the last one named.
    expect(guard.noteInvalid(undefined, 'c1')).toEqual({ kind: 'connection', key: 'c1', until: 5000, notify: 'nano_b' });
    // A connection that never named an address cannot be told.
    const quiet = new AbuseGuard({ threshold: 1, now: () => 0 });
    expect(quiet.noteInvalid(undefined, 'c9')).toEqual({ kind: 'connection', key: 'c9', until: 600_000 });
  });

  it('contains the address when the connection is unknown, and forgets a window that passed', () => {
    let t = 0;
    const guard = new AbuseGuard({ threshold: 2, windowMs: 1000, cooldownMs: 5000, now: () => t });
    guard.noteInvalid('nano_a', undefined);
    t = 1500; // the first one is out of the window
    expect(guard.noteInvalid('nano_a', undefined)).toBeUndefined();
    expect(guard.noteInvalid('nano_a', undefined)).toMatchObject({ kind: 'address', key: 'nano_a' });
    expect(guard.check('nano_a', undefined)).toMatchObject({ kind: 'address' });
    expect(guard.check('nano_b', undefined)).toBeUndefined();
    expect(guard.containedNow('address')).toBe(1);
  });

  it('names an address for a notice once per cooldown, whichever sources contain it', () => {
    let t = 0;
    const guard = new AbuseGuard({ threshold: 1, cooldownMs: 5000, now: () => t });
    expect(guard.noteInvalid('nano_v', 'c1')).toMatchObject({ key: 'c1', notify: 'nano_v' });
    expect(guard.noteInvalid('nano_v', 'c2')).toEqual({ kind: 'connection', key: 'c2', until: 5000 });
    t = 5000;
    expect(guard.noteInvalid('nano_v', 'c3')).toMatchObject({ key: 'c3', notify: 'nano_v' });
  });
});

describe('a flooding client', () => {
  it('is contained while an honest worker keeps being credited for every job', async () => {
    const broker = await Broker.start({ users: USERS, tcpPort: 0, limits: { publishRate: { perSecond: 10_000, burst: 10_000 } } });
    cleanups.push(() => broker.close());
    const store = new MemoryStore();
    const dispatcher = new Dispatcher({
      brokerUrl: broker.tcpUrl!,
      ...USERS.server,
      store,
      resultPublisher: broker.publisherOf,
      abuse: { threshold: 10, windowMs: 60_000, cooldownMs: 60_000 },
    });
    await dispatcher.start();
    cleanups.push(() => dispatcher.stop());
    let settled = 0; // 'accepted' fires once the credit is written
    dispatcher.on('accepted', () => settled++);

    const honestAddress = randomAddress();
    const honest = await ReferenceWorker.start({ brokerUrl: broker.tcpUrl!, ...USERS.client, address: honestAddress });
    cleanups.push(() => honest.client.endAsync(true));

    // The flooder answers every job at once with bad work, and fills the gaps with junk.
    const flooderAddress = randomAddress();
    const notices: ClientMessage[] = [];
    const flooder: MqttClient = await mqtt.connectAsync(broker.tcpUrl!, { ...USERS.client, protocolVersion: 4, reconnectPeriod: 0 });
    cleanups.push(() => flooder.endAsync(true));
    flooder.on('message', (topic, payload) => {
      if (topic === topics.client(flooderAddress)) {
        const m = clientCodec.decode(payload);
        if (m.ok) notices.push(m.value);
        return;
      }
      const job = workCodec.decode(payload);
      if (!job.ok) return;
      for (let i = 0; i < 5; i++) {
        const bad = resultCodec.encode({ hash: job.value.hash, work: findBadWork(job.value.hash, job.value.difficulty), address: flooderAddress });
        flooder.publish(topics.result('ondemand'), bad, { qos: 0 });
      }
    });
    await flooder.subscribeAsync(['work/+', topics.client(flooderAddress)], { qos: 1 });
    let flooding = true;
    const junk = (async () => {
      while (flooding) {
        flooder.publish(topics.result('ondemand'), `${randomRoot()},0000000000000000,${flooderAddress}`, { qos: 0 });
        flooder.publish(topics.result('ondemand'), 'not a result at all', { qos: 0 });
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    cleanups.push(async () => {
      flooding = false;
      await junk;
    });

    const jobs = 12;
    for (let i = 0; i < jobs; i++) {
      const answer = await dispatcher.requestWork({ hash: randomRoot(), difficulty: EASY, workType: 'ondemand', timeoutMs: 10_000 });
      expect(answer.cached).toBe(false);
    }
    // The flood goes on until it is contained: on a loaded machine its timer fires less often, so
    // it may take longer than the jobs to reach the limit.
    await waitFor('the containment notice', () => notices.length > 0);
    flooding = false;
    await junk;
    await waitFor('the last credit', () => settled === jobs);

    expect((await store.getClient(honestAddress))?.ondemand).toBe(jobs);
    // Each credit carries the job's difficulty multiplier, for payouts by difficulty.
    expect((await store.getClient(honestAddress))?.weighted_ondemand).toBeCloseTo(jobs * toMultiplier(EASY), 12);
    expect(await store.getClient(flooderAddress)).toBeUndefined();
    expect(dispatcher.abuse.counters.contained).toEqual({ address: 0, connection: 1 });
    // Contained once, then quietly ignored: the invalid count stopped at the threshold.
    expect(dispatcher.abuse.counters.invalid.connection).toBe(10);
    expect(dispatcher.counters.results.ignored).toBeGreaterThan(jobs);
    expect(dispatcher.counters.results.accepted).toBe(jobs);
    expect(notices).toEqual([{ kind: 'error', error: expect.stringMatching(/^Too many invalid results: results from this connection are ignored for \d+ s$/) }]);
  });

  it('is contained by payout address when the broker cannot say who published', async () => {
    const broker = await Broker.start({ users: USERS, tcpPort: 0 });
    cleanups.push(() => broker.close());
    const dispatcher = new Dispatcher({ brokerUrl: broker.tcpUrl!, ...USERS.server, store: new MemoryStore(), abuse: { threshold: 3 } });
    await dispatcher.start();
    cleanups.push(() => dispatcher.stop());
    const address = randomAddress();
    const c = await mqtt.connectAsync(broker.tcpUrl!, { ...USERS.client, protocolVersion: 4, reconnectPeriod: 0 });
    cleanups.push(() => c.endAsync(true));
    for (let i = 0; i < 6; i++) {
      await c.publishAsync(topics.result('precache'), `${randomRoot()},0000000000000000,${address}`, { qos: 1 });
    }
    await waitFor('six results handled', () => dispatcher.counters.results['unknown-hash'] + dispatcher.counters.results.ignored === 6);
    expect(dispatcher.counters.results).toMatchObject({ 'unknown-hash': 3, ignored: 3 });
    expect(dispatcher.abuse.counters.contained).toEqual({ address: 1, connection: 0 });
  });
});

describe('the embedded broker caps each connection', () => {
  it('closes a connection that publishes faster than its rate, and refuses oversized payloads', async () => {
    let t = 0;
    const broker = await Broker.start({ users: USERS, tcpPort: 0, limits: { publishRate: { perSecond: 1, burst: 5 }, maxPayloadBytes: 300 }, now: () => t });
    cleanups.push(() => broker.close());
    const connect = async () => {
      const c = await mqtt.connectAsync(broker.tcpUrl!, { ...USERS.client, protocolVersion: 4, reconnectPeriod: 0 });
      cleanups.push(() => c.endAsync(true));
      return c;
    };
    const result = () => `${randomRoot()},0000000000000000,${randomAddress()}`;

    const steady = await connect();
    for (let i = 0; i < 5; i++) await steady.publishAsync(topics.result('precache'), result(), { qos: 1 });
    t += 2000; // two more tokens
    for (let i = 0; i < 2; i++) await steady.publishAsync(topics.result('precache'), result(), { qos: 1 });
    expect(steady.connected).toBe(true);
    expect(broker.counters.refusedRate).toBe(0);

    const fast = await connect();
    const closed = new Promise<void>((resolve) => fast.once('close', () => resolve()));
    for (let i = 0; i < 6; i++) fast.publish(topics.result('precache'), result(), { qos: 0 });
    await closed;
    expect(broker.counters.refusedRate).toBe(1);

    const big = await connect();
    const bigClosed = new Promise<void>((resolve) => big.once('close', () => resolve()));
    big.publish(topics.result('precache'), 'x'.repeat(301), { qos: 0 });
    await bigClosed;
    expect(broker.counters.refusedSize).toBe(1);
  });

  it('tells the dispatcher which client id published a result, once per publish', async () => {
    const broker = await Broker.start({ users: USERS, tcpPort: 0 });
    cleanups.push(() => broker.close());
    const c = await mqtt.connectAsync(broker.tcpUrl!, { ...USERS.client, clientId: 'worker-7', protocolVersion: 4, reconnectPeriod: 0 });
    cleanups.push(() => c.endAsync(true));
    const payload = `${randomRoot()},0000000000000000,${randomAddress()}`;
    await c.publishAsync(topics.result('ondemand'), payload, { qos: 1 });
    expect(broker.publisherOf(topics.result('ondemand'), Buffer.from(payload))).toBe('worker-7');
    expect(broker.publisherOf(topics.result('ondemand'), Buffer.from(payload))).toBeUndefined();
  });
});
