/**
 * Test helper, never imported by the product: one scenario of the DPoW roles, run against the
 * embedded broker and against Debian's mosquitto with the shipped ACL, so both tests assert the
 * same observations (MOSQUITTO_ACL_BEHAVIOUR, measured on mosquitto 2.0.11).
 *
 * - Workers subscribe wildcards (`#`, `+/+`, `+/precache`, `client/#`) that cover topics they
 *   may not read: granted, and each message filtered by its topic.
 * - The server subscribes `#`: it gets results only.
 * - A worker publishes to a forbidden topic at QoS 1: acknowledged, dropped, still connected.
 */
import type { MqttClient } from 'mqtt';
import { waitFor } from './wait.ts';

export type AclRole = 'server' | 'client' | 'dashboard';

export interface AclObservation {
  /** Granted QoS per worker subscription (128 = refused). */
  granted: Record<string, number>;
  /** "topic payload" in arrival order, per worker subscription, plus `server #` and `dashboard #`. */
  delivered: Record<string, string[]>;
  forbiddenPublish: { acked: boolean; connectedAfter: boolean };
}

export const WORKER_FILTERS = ['#', '+/+', '+/precache', 'client/#'] as const;

/** How many messages with payload "end" each subscriber sees: the barrier it waits for. */
const ENDS: Record<string, number> = { '#': 2, '+/+': 2, '+/precache': 1, 'client/#': 1, 'server #': 1, 'dashboard #': 3 };

export const MOSQUITTO_ACL_BEHAVIOUR: AclObservation = {
  granted: { '#': 1, '+/+': 1, '+/precache': 1, 'client/#': 1 },
  delivered: {
    '#': ['heartbeat ', 'statistics {}', 'work/precache w', 'cancel/ondemand c', 'client/nano_x {}', 'client/end end', 'work/precache end'],
    '+/+': ['work/precache w', 'cancel/ondemand c', 'client/nano_x {}', 'client/end end', 'work/precache end'],
    '+/precache': ['work/precache w', 'work/precache end'],
    'client/#': ['client/nano_x {}', 'client/end end'],
    'server #': ['result/precache end'],
    'dashboard #': [
      'result/precache end',
      'heartbeat ',
      'statistics {}',
      'work/precache w',
      'cancel/ondemand c',
      'client/nano_x {}',
      'client/end end',
      'work/precache end',
    ],
  },
  forbiddenPublish: { acked: true, connectedAfter: true },
};

async function subscribeCode(c: MqttClient, filter: string): Promise<number> {
  try {
    const granted = await c.subscribeAsync(filter, { qos: 1 });
    return granted[0]?.qos ?? -1;
  } catch (err) {
    return (err as Error & { packet?: { granted?: number[] } }).packet?.granted?.[0] ?? 128;
  }
}

export async function observeAcl(login: (role: AclRole) => Promise<MqttClient>): Promise<AclObservation> {
  const delivered: Record<string, string[]> = {};
  const listen = (c: MqttClient, name: string) => {
    delivered[name] = [];
    c.on('message', (topic, payload) => delivered[name].push(`${topic} ${String(payload)}`));
  };
  const granted: Record<string, number> = {};
  for (const filter of WORKER_FILTERS) {
    const worker = await login('client');
    listen(worker, filter);
    granted[filter] = await subscribeCode(worker, filter);
  }
  const dashboard = await login('dashboard');
  listen(dashboard, 'dashboard #');
  await dashboard.subscribeAsync('#', { qos: 1 });
  const server = await login('server');
  listen(server, 'server #');
  await server.subscribeAsync('#', { qos: 1 });

  // A forged job, then an honest result on the same connection: the result is the barrier
  // after which the forgery would have been delivered.
  const rogue = await login('client');
  const acked = await new Promise<boolean>((resolve) => {
    rogue.once('close', () => resolve(false));
    rogue.publish('work/ondemand', 'forged', { qos: 1 }, (err) => resolve(!err));
  });
  const connectedAfter = rogue.connected;
  // A broker that dropped the rogue connection still gets the barrier, from a fresh one.
  const honest = connectedAfter ? rogue : await login('client');
  await honest.publishAsync('result/precache', 'end', { qos: 1 });
  await waitFor('the dashboard to see the result barrier', () => delivered['dashboard #'].length > 0);

  for (const [topic, payload] of [
    ['heartbeat', ''],
    ['statistics', '{}'],
    ['work/precache', 'w'],
    ['cancel/ondemand', 'c'],
    ['client/nano_x', '{}'],
    ['client/end', 'end'],
    ['work/precache', 'end'],
  ]) {
    await server.publishAsync(topic, payload, { qos: 1 });
  }
  for (const [name, ends] of Object.entries(ENDS)) {
    await waitFor(`${name} to see its barriers`, () => delivered[name].filter((m) => m.endsWith(' end')).length >= ends);
  }
  return { granted, delivered, forbiddenPublish: { acked, connectedAfter } };
}
