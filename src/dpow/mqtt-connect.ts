/**
 * How an MQTT connection is opened, for both halves of the protocol: the worker's session and
 * the dispatcher's broker session take one of these (mqtt.connect by default), so a test can
 * watch or alter the connection without either side knowing.
 */
import type { IClientOptions, MqttClient } from 'mqtt';

/** mqtt.connect, or anything shaped like it. */
export type ConnectFn = (brokerUrl: string, options: IClientOptions) => MqttClient;
