/**
 * The outbox against a real broker: results go out at QoS 1 and leave on PUBACK, a cancel can
 * withdraw what is not sent yet, a lost connection's unacknowledged results go out again, and
 * the bound gives up the oldest.
 */
import { describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { Outbox, type OutboxEntry, type Sendable } from './outbox.ts';
import { cleanupsAfterEach } from '../testkit/cleanups.ts';
import { waitFor } from '../testkit/wait.ts';
import { startPublisher, startWsBroker } from '../testkit/ws-broker.ts';

const cleanups = cleanupsAfterEach();
const job = (n: number): Sendable => ({ hash: n.toString(16).padStart(4, '0') + 'a'.repeat(60), workType: 'ondemand', multiplier: 1 });

function makeOutbox(limit?: number) {
  const published: OutboxEntry[] = [];
  const givenUp: OutboxEntry[] = [];
  const outbox = new Outbox({ limit, onPublished: (e) => published.push(e), onGivenUp: (e) => givenUp.push(e) });
  return { outbox, published, givenUp };
}

async function brokerAndWorkerLink() {
  const broker = await startWsBroker();
  cleanups.push(() => broker.close());
  const pub = await startPublisher(broker.url);
  cleanups.push(() => pub.close());
  const link = await mqtt.connectAsync(broker.url, { protocolVersion: 4, reconnectPeriod: 0 });
  cleanups.push(() => link.endAsync(true));
  return { broker, pub, link };
}

describe('Outbox', () => {
  it('publishes each result once at QoS 1 and lets it go on PUBACK', async () => {
    const { pub, link } = await brokerAndWorkerLink();
    const { outbox, published } = makeOutbox();
    outbox.add(job(1), 'result/ondemand', `${job(1).hash},0000000000000001,addr`, 1);
    outbox.add(job(2), 'result/precache', `${job(2).hash},0000000000000002,addr`, 2);
    outbox.flush(link);
    outbox.flush(link); // already handed over: not sent twice
    await waitFor('both acknowledged', () => published.length === 2);
    expect(outbox.size).toBe(0);
    await waitFor('both delivered', () => pub.results.length === 2);
    expect(pub.results.map((r) => r.topic)).toEqual(['result/ondemand', 'result/precache']);
    expect(published.map((e) => e.job.hash)).toEqual([job(1).hash, job(2).hash]);
  });

  it('withdraws only results not handed to a connection yet, in any case', async () => {
    const { link } = await brokerAndWorkerLink();
    const { outbox, published } = makeOutbox();
    outbox.add(job(1), 'result/ondemand', 'one', 1);
    outbox.flush(link);
    outbox.add(job(2), 'result/ondemand', 'two', 2);
    expect(outbox.withdraw(job(1).hash.toUpperCase())).toEqual([]);
    expect(outbox.withdraw(job(2).hash.toUpperCase()).map((e) => e.payload)).toEqual(['two']);
    await waitFor('the sent one acknowledged', () => published.length === 1);
    expect(outbox.size).toBe(0);
  });

  it('sends again what a lost connection had not acknowledged, and counts it once', async () => {
    const { broker, pub, link } = await brokerAndWorkerLink();
    const { outbox, published } = makeOutbox();
    const first = await mqtt.connectAsync(broker.url, { protocolVersion: 4, reconnectPeriod: 0 });
    cleanups.push(() => first.endAsync(true));
    outbox.add(job(3), 'result/ondemand', `${job(3).hash},0000000000000003,addr`, 3);
    outbox.flush(first);
    // The session reports the connection lost before its PUBACK is read: a late PUBACK from it
    // must not count, and the result goes out again on the next connection.
    outbox.linkLost(first);
    expect(outbox.size).toBe(1);
    outbox.flush(link);
    await waitFor('acknowledged on the new link', () => published.length === 1);
    await waitFor('delivered', () => pub.results.length >= 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(published).toHaveLength(1);
    expect(outbox.size).toBe(0);
  });

  it('gives up the oldest results beyond its bound', () => {
    const { outbox, givenUp } = makeOutbox(2);
    for (const n of [1, 2, 3]) outbox.add(job(n), 'result/ondemand', String(n), n);
    expect(givenUp.map((e) => e.payload)).toEqual(['1']);
    expect(outbox.size).toBe(2);
    expect(outbox.clear()).toBe(2);
    expect(outbox.size).toBe(0);
  });
});
