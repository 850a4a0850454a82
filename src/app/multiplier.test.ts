/**
 * The event log (written by the protocol client) and the dashboard (a view of the client's state)
 * print a job's multiplier the same way: a real broker, a real client and engine, one job.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { formatMultiplier } from '../format.ts';
import { DpowClient } from '../dpow/client.ts';
import { Broker } from '../server/broker.ts';
import { defaultBrokerUsers } from '../server/broker-rules.ts';
import { createNodeEngine } from '../pow-node/engine.ts';
import type { PowEngine } from '../pow/engine.ts';
import { cleanupsAfterEach } from '../testkit/cleanups.ts';
import { waitFor } from '../testkit/wait.ts';
import { randomRoot } from '../testkit/work.ts';

const ADDRESS = 'nano_1ik4ab366ik4ab366ik4ab366ik4ab366ik4ab366ik4ab366ik4myzudyzq';
/** 4/3 of the Nano send threshold: minutes on one thread, so it is still in flight when read. */
const DIFFICULTY = 'fffffffa00000000';

let engine: PowEngine;
beforeAll(async () => {
  engine = await createNodeEngine({ backend: 'wasm', threads: 1 });
});
afterAll(() => engine?.dispose());
const cleanups = cleanupsAfterEach();

describe('multiplier display', () => {
  it('the event log says what the dashboard shows for the job in flight', async () => {
    const users = defaultBrokerUsers();
    const broker = await Broker.start({ users });
    cleanups.push(() => broker.close());
    const server = await mqtt.connectAsync(broker.wsUrl, { ...users.server, protocolVersion: 4, reconnectPeriod: 0 });
    cleanups.push(() => server.endAsync(true));
    const client = new DpowClient({ engine });
    cleanups.push(() => client.stop());
    await client.start({ brokerUrl: broker.wsUrl, ...users.client, address: ADDRESS, work: 'any', backend: 'wasm', threads: 1 });
    await waitFor('online', () => client.getState().connection === 'online');

    const hash = randomRoot();
    // Published until the worker's subscription has taken one (the SUBACK may still be on its way).
    const current = await waitFor('job in flight', () => {
      const job = client.getState().current;
      if (!job) void server.publishAsync('work/ondemand', `${hash},${DIFFICULTY}`, { qos: 1 });
      return job;
    }, 20_000);
    expect(current.multiplier).toBeCloseTo(4 / 3, 9);

    const onDashboard = formatMultiplier(current.multiplier);
    expect(onDashboard).toBe('1.333×');
    const queued = client.getState().events.find((e) => e.job?.hash === hash && e.job.event === 'queued');
    expect(queued?.message).toContain(` ${onDashboard}`);
  });
});
