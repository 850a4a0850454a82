/** Test helper, never imported by the product: MQTT logins for the DPoW roles. */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
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
