/** Test helper, never imported by the product: MQTT logins for the DPoW roles. */
import net from 'node:net';
import mqtt, { MqttClient, type IClientOptions } from 'mqtt';
import type { BrokerRole, BrokerUsers, Credentials } from '../server/broker-rules.ts';

/** One login per role for test brokers (`Broker.start({ users: TEST_USERS })`). */
export const TEST_USERS = {
  server: { username: 'server', password: 'server-secret' },
  client: { username: 'client', password: 'client' },
  dashboard: { username: 'dash', password: 'dash' },
} as const satisfies Required<BrokerUsers>;

/**
 * An mqtt.js client logged in as a role of TEST_USERS (or with explicit credentials), MQTT 3.1.1
 * and no reconnect, as the tests want it. Its close goes on `cleanups` (cleanupsAfterEach).
 */
export async function connectAs(
  brokerUrl: string,
  who: BrokerRole | Credentials,
  cleanups: (() => unknown)[],
  options: IClientOptions = {},
): Promise<MqttClient> {
  const login = typeof who === 'string' ? TEST_USERS[who] : who;
  const client = await mqtt.connectAsync(brokerUrl, {
    username: login.username,
    password: login.password,
    protocolVersion: 4,
    reconnectPeriod: 0,
    ...options,
  });
  cleanups.push(() => (client.disconnected ? undefined : client.endAsync(true)));
  return client;
}

/**
 * An mqtt.js login as a stranger at `source` makes it: over TCP from that loopback address (one
 * of strangerAddress()), over WebSocket through a proxy on loopback that names it in
 * X-Forwarded-For, as the shipped nginx does. Resolves the client, or rejects with mqtt.js'
 * error for the broker's refusal (`code`: the CONNACK return code).
 */
export async function connectFrom(brokerUrl: string, who: BrokerRole | Credentials, source: string, cleanups: (() => unknown)[]): Promise<MqttClient> {
  const login = typeof who === 'string' ? TEST_USERS[who] : who;
  const options: IClientOptions = { username: login.username, password: login.password, protocolVersion: 4, reconnectPeriod: 0 };
  const url = new URL(brokerUrl);
  const client =
    url.protocol === 'mqtt:'
      ? new MqttClient(() => net.connect({ host: url.hostname, port: Number(url.port), localAddress: source }), options)
      : mqtt.connect(brokerUrl, { ...options, wsOptions: { headers: { 'X-Forwarded-For': source } } });
  cleanups.push(() => (client.disconnected ? undefined : client.endAsync(true)));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', (err) => reject(err));
    client.once('close', () => reject(new Error('closed before a CONNACK')));
  }).catch((err: unknown) => {
    client.end(true);
    throw err;
  });
  return client;
}

/** The CONNACK return code a login from `source` gets: 0 when admitted (the client is closed again). */
export async function loginCodeFrom(brokerUrl: string, who: BrokerRole | Credentials, source: string, cleanups: (() => unknown)[]): Promise<number> {
  try {
    await (await connectFrom(brokerUrl, who, source, cleanups)).endAsync(true);
    return 0;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number') return code;
    throw err;
  }
}
