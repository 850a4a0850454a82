/**
 * The part of mqtt.js the protocol uses, as the pure and browser typechecks see it
 * (tsconfig.pure.json and tsconfig.browser.json map 'mqtt' here).
 *
 * mqtt.js runs in pages and in Node, but its published types are written against @types/node
 * (Buffer, EventEmitter, streams): importing them would hand `process` and `Buffer` to every
 * pure file. The Node config checks the same client code against mqtt.js's real types
 * (client.test.ts imports client.ts), so a call that mqtt.js lacks fails there, and one this
 * surface lacks fails here: extend it when the protocol needs more of mqtt.js.
 */
export type QoS = 0 | 1 | 2;

export interface IClientOptions {
  protocolVersion?: 3 | 4 | 5;
  username?: string;
  password?: string;
  clientId?: string;
  clean?: boolean;
  keepalive?: number;
  reconnectPeriod?: number;
  connectTimeout?: number;
  resubscribe?: boolean;
  queueQoSZero?: boolean;
}

export interface ISubscriptionGrant {
  topic: string;
  qos: number;
}

export interface MqttClient {
  readonly connected: boolean;
  on(event: 'connect' | 'close', listener: () => void): this;
  on(event: 'message', listener: (topic: string, payload: Uint8Array) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  removeAllListeners(event?: string): this;
  subscribe(
    topics: Record<string, { qos: QoS }>,
    callback?: (error: Error | null, granted?: ISubscriptionGrant[]) => void,
  ): this;
  unsubscribe(topics: string | string[], callback?: (error?: Error) => void): this;
  publish(topic: string, message: string | Uint8Array, options: { qos: QoS; retain?: boolean }, callback?: (error?: Error) => void): this;
  end(force?: boolean, options?: object, callback?: () => void): this;
}

declare const mqtt: {
  connect(brokerUrl: string, options?: IClientOptions): MqttClient;
};
export default mqtt;
