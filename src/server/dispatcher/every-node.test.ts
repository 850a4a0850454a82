import { describe, expect, it } from 'vitest';
import { Broker } from '../broker.ts';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { quietLogger } from '../../testkit/log.ts';
import { connectAs, TEST_USERS } from '../../testkit/mqtt.ts';
import { waitFor, waitForAsync } from '../../testkit/wait.ts';
import { newCounters } from './counters.ts';
import { StatisticsOnEveryNode } from './every-node.ts';

const cleanups = cleanupsAfterEach();

/**
 * Whether a volunteer who subscribes to `statistics` on this node gets `payload` retained at once:
 * the first message it gets, with a live publish after the SUBACK as the barrier (a retained copy
 * would come before it).
 */
async function retainedOn(url: string, payload: string): Promise<boolean> {
  const [server, volunteer] = [await connectAs(url, 'server', cleanups), await connectAs(url, 'client', cleanups)];
  const first = new Promise<{ payload: string; retain: boolean }>((resolve) =>
    volunteer.once('message', (_topic, p, packet) => resolve({ payload: String(p), retain: packet.retain })),
  );
  await volunteer.subscribeAsync('statistics', { qos: 1 });
  await server.publishAsync('statistics', 'barrier', { qos: 1 });
  const got = await first;
  await Promise.all([server.endAsync(), volunteer.endAsync()]);
  return got.retain && got.payload === payload;
}

describe('StatisticsOnEveryNode', () => {
  // Separate aedes brokers stand in for the nodes of a cluster: each keeps its own retained
  // messages, as a RabbitMQ node does.
  async function nodes(n: number): Promise<Broker[]> {
    return Promise.all(Array.from({ length: n }, async () => closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: 0 }))));
  }

  function everyNode(urls: string[]) {
    const counters = newCounters();
    const copies = new StatisticsOnEveryNode({ urls, ...TEST_USERS.server, counters, log: quietLogger });
    cleanups.push(() => copies.close());
    return { copies, counters };
  }

  it('leaves the retained statistics on every node, so a volunteer on any node gets them at once', async () => {
    const cluster = await nodes(3);
    const { copies, counters } = everyNode(cluster.map((n) => n.tcpUrl!));
    copies.publishStatistics('{"work":{"ondemand":1}}');
    expect(counters.published.statistics).toBe(1);
    for (const node of cluster) await waitForAsync('the copy on the node', () => retainedOn(node.tcpUrl!, '{"work":{"ondemand":1}}'));

    copies.publishStatistics('{"work":{"ondemand":2}}');
    for (const node of cluster) await waitForAsync('the new copy on the node', () => retainedOn(node.tcpUrl!, '{"work":{"ondemand":2}}'));
    expect(counters.published.statistics).toBe(2);
  });

  it('puts the latest on a node again when it comes back, over what the node kept', async () => {
    const [first, second] = await nodes(2);
    const port = Number(new URL(second.tcpUrl!).port);
    const { copies } = everyNode([first.tcpUrl!, second.tcpUrl!]);
    copies.publishStatistics('{"old":true}');
    await waitFor('both copies', () => second.aedes.connectedClients === 1);
    await second.close();
    copies.publishStatistics('{"new":true}');

    // The node returns holding the old figures (RabbitMQ keeps retained messages on its disk),
    // given to it in the same turn as it starts listening, before any login can be through.
    const back = closeAfter(cleanups, await Broker.start({ users: TEST_USERS, tcpPort: port }));
    back.aedes.publish({ cmd: 'publish', topic: 'statistics', payload: Buffer.from('{"old":true}'), qos: 0, retain: true, dup: false }, () => {});
    await waitForAsync('the latest on the node that came back', () => retainedOn(back.tcpUrl!, '{"new":true}'), 15_000);
  });

  it('forgets when the dispatcher stops leading: its connections close, so no node hears its figures again', async () => {
    const [only] = await nodes(1);
    const { copies, counters } = everyNode([only.tcpUrl!]);
    copies.publishStatistics('{"figures":"of the old leader"}');
    await waitForAsync('the copy', () => retainedOn(only.tcpUrl!, '{"figures":"of the old leader"}'));
    await copies.forget();
    await waitFor('its connection closed', () => only.aedes.connectedClients === 0);
    // Leading again later opens new connections with the new figures only.
    copies.publishStatistics('{"figures":"of the new term"}');
    await waitForAsync('the new copy', () => retainedOn(only.tcpUrl!, '{"figures":"of the new term"}'));
    expect(counters.published.statistics).toBe(2);
  });
});
