/**
 * A JSON-RPC 2.0 client over one WebSocket, with go-ethereum-style pub/sub (the dialect go-qlc
 * speaks):
 *
 *   call:          {"jsonrpc":"2.0","id":N,"method":M,"params":[...]} -> {"id":N,"result"|"error"}
 *   subscribe:     <ns>_subscribe [name, ...args] -> result = subscription id (opaque string)
 *   notification:  {"method":"<ns>_subscription","params":{"subscription":ID,"result":{...}}}
 *   unsubscribe:   <ns>_unsubscribe [id] -> true
 *
 * Replies are matched by id, so they may come back in any order. Subscriptions belong to the
 * connection: when it drops, the client reconnects (exponential backoff with jitter) and subscribes
 * every live subscription again; the server hands out new ids, the Subscription object stays the
 * same. Frames that are not JSON, not objects, or not of a known shape are counted by reason and
 * logged; they never throw out of the socket handler.
 */
import { EventEmitter } from 'node:events';
import { clip, LogLimiter } from '../log-limit.ts';
import { silentLogger, type Logger } from '../log.ts';
import { ReconnectingWs, type ConnectionTuning } from './reconnecting-ws.ts';

// ------------------------------------------------------------------ errors

export const RPC_ERRORS = {
  parse: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  server: -32000,
} as const;

/** An error object the server sent back: `code` and `message` exactly as received. */
export class JsonRpcError extends Error {
  override readonly name = 'JsonRpcError';
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
  get kind(): 'parse' | 'invalid-request' | 'method-not-found' | 'invalid-params' | 'server' | 'other' {
    switch (this.code) {
      case RPC_ERRORS.parse:
        return 'parse';
      case RPC_ERRORS.invalidRequest:
        return 'invalid-request';
      case RPC_ERRORS.methodNotFound:
        return 'method-not-found';
      case RPC_ERRORS.invalidParams:
        return 'invalid-params';
      default:
        return this.code <= -32000 && this.code >= -32099 ? 'server' : 'other';
    }
  }
}

/** No reply in time. The request may still be processed by the server. */
export class JsonRpcTimeoutError extends Error {
  override readonly name = 'JsonRpcTimeoutError';
  constructor(readonly method: string, readonly timeoutMs: number) {
    super(`${method}: no reply within ${timeoutMs} ms`);
  }
}

/** Not connected, or the connection closed before the reply came. */
export class JsonRpcConnectionError extends Error {
  override readonly name = 'JsonRpcConnectionError';
}

// ------------------------------------------------------------------ subscriptions

export type MalformedReason =
  | 'not-json'
  | 'not-an-object'
  | 'batch'
  | 'bad-notification'
  | 'unknown-subscription'
  | 'unexpected-request'
  | 'bad-error-object'
  | 'bad-response'
  | 'unknown-id'
  | 'error-without-id';

type NotificationListener = (result: unknown) => void;

/** Notifications that arrive before anyone listens are kept (up to this many) and then delivered. */
const EARLY_BUFFER = 1000;

/**
 * One live subscription. Its `id` changes when the client re-subscribes after a reconnect;
 * listeners stay attached. Notifications that arrive before the first listener are buffered, so
 * the gap between the subscribe reply and `listen()` cannot lose events.
 */
export class Subscription extends EventEmitter<{ ended: [reason: string]; resubscribed: [oldId: string, newId: string] }> {
  /** The id the server gave ('' until the first reply; the old id until a re-subscribe answers). */
  id = '';
  active = true;
  notifications = 0;
  #listeners: NotificationListener[] = [];
  #early: unknown[] = [];

  readonly #client: JsonRpcWsClient;

  constructor(
    client: JsonRpcWsClient,
    readonly ns: string,
    readonly subscriptionName: string,
    readonly args: readonly unknown[],
  ) {
    super();
    this.#client = client;
  }

  /** Adds a listener; returns a function that removes it. */
  listen(listener: NotificationListener): () => void {
    this.#listeners.push(listener);
    if (this.#early.length > 0) {
      const early = this.#early;
      this.#early = [];
      for (const result of early) listener(result);
    }
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  /** @internal */
  deliver(result: unknown): void {
    this.notifications++;
    if (this.#listeners.length === 0) {
      if (this.#early.length < EARLY_BUFFER) this.#early.push(result);
      return;
    }
    for (const listener of this.#listeners) listener(result);
  }

  /** Unsubscribes (server side too, when connected). */
  unsubscribe(): Promise<boolean> {
    return this.#client.unsubscribe(this);
  }
}

// ------------------------------------------------------------------ client

/** Reconnect and ping tuning as in reconnecting-ws.ts; pings are WebSocket ping frames. */
export interface JsonRpcWsOptions extends ConnectionTuning {
  /** Default per-call timeout. */
  timeoutMs?: number;
  /** Largest frame accepted. */
  maxPayloadBytes?: number;
}

interface PendingCall {
  method: string;
  /** Runs synchronously when the reply frame is read, before any later frame. */
  onResult?: (result: unknown) => void;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export interface JsonRpcWsEvents {
  connect: [];
  disconnect: [code: number, reason: string];
  resubscribed: [subscription: Subscription, oldId: string, newId: string];
  'resubscribe-failed': [subscription: Subscription, error: Error];
  malformed: [reason: MalformedReason, detail: string];
  /** An error the server sent that answers no request of ours (e.g. -32700 with id null). */
  'server-error': [error: JsonRpcError];
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export class JsonRpcWsClient extends EventEmitter<JsonRpcWsEvents> {
  readonly stats = {
    connects: 0,
    disconnects: 0,
    /** Frames refused, by reason. */
    malformed: {} as Partial<Record<MalformedReason, number>>,
    /** Notifications for a subscription id we do not hold (dropped). */
    unknownSubscription: 0,
  };

  readonly #socket: ReconnectingWs;
  readonly #log: Logger;
  /** Dropped frames: one line per reason per interval, with a count, however many come. */
  readonly #drops: LogLimiter;
  readonly #timeoutMs: number;
  #nextId = 1;
  #calls = new Map<number, PendingCall>();
  #subs = new Set<Subscription>();
  #byId = new Map<string, Subscription>();
  /** Settles the promise of a subscribe() whose first server reply has not come yet. */
  #firstResult = new WeakMap<Subscription, (err?: Error) => void>();

  constructor(
    readonly url: string,
    options: JsonRpcWsOptions = {},
  ) {
    super();
    const { timeoutMs, ...tuning } = options;
    this.#timeoutMs = timeoutMs ?? 10_000;
    this.#log = options.log ?? silentLogger;
    this.#drops = new LogLimiter(this.#log);
    this.#socket = new ReconnectingWs(url, {
      ...tuning,
      name: 'json-rpc',
      ping: 'frame',
      closeWith: 'graceful',
      closedError: (message) => new JsonRpcConnectionError(message),
      log: this.#log,
    });
    this.#socket.on('open', () => this.#onOpen());
    this.#socket.on('json', (msg, text) => this.#onFrame(msg, text));
    this.#socket.on('not-json', (text) => this.#malformed('not-json', clip(text)));
    this.#socket.on('close', (code, reason, wasOpen) => this.#onClose(code, reason, wasOpen));
  }

  get connected(): boolean {
    return this.#socket.connected;
  }

  /** Live subscriptions (including ones waiting for a connection). */
  get subscriptions(): Subscription[] {
    return [...this.#subs];
  }

  /** Starts connecting (retrying with backoff) and resolves once connected. */
  connect(): Promise<void> {
    return this.#socket.connect();
  }

  #onOpen(): void {
    this.stats.connects++;
    this.emit('connect');
    // Subscriptions made on an earlier connection (or while disconnected) are made again here.
    for (const sub of this.#subs) if (sub.active) void this.#subscribeOnServer(sub);
  }

  #onClose(code: number, reason: string, wasOpen: boolean): void {
    for (const [id, call] of this.#calls) {
      clearTimeout(call.timer);
      call.reject(new JsonRpcConnectionError(`${call.method}: connection closed before the reply`));
      this.#calls.delete(id);
    }
    // The server dropped every subscription with the connection; the ids mean nothing now.
    // (`sub.id` keeps the old id until the new one arrives, for the 'resubscribed' event.)
    this.#byId.clear();
    if (wasOpen) {
      this.stats.disconnects++;
      this.emit('disconnect', code, reason);
    }
  }

  #malformed(reason: MalformedReason, detail: string): void {
    this.stats.malformed[reason] = (this.stats.malformed[reason] ?? 0) + 1;
    this.#drops.warn(`json-rpc: dropped frame (${reason})`, `json-rpc ${this.url}: dropped frame (${reason}): ${detail}`);
    this.emit('malformed', reason, detail);
  }

  #onFrame(msg: unknown, text: string): void {
    if (Array.isArray(msg)) {
      // We never send batches, so a batch reply answers nothing of ours.
      this.#malformed('batch', `array of ${msg.length}`);
      return;
    }
    if (!isRecord(msg)) {
      this.#malformed('not-an-object', clip(text));
      return;
    }
    if (typeof msg.method === 'string') {
      this.#onServerMessage(msg);
      return;
    }
    this.#onReply(msg, text);
  }

  #onServerMessage(msg: Record<string, unknown>): void {
    const method = msg.method as string;
    if (!method.endsWith('_subscription') || msg.id !== undefined) {
      this.#malformed('unexpected-request', `method ${clip(method)}`);
      return;
    }
    const params = msg.params;
    if (!isRecord(params) || typeof params.subscription !== 'string' || !('result' in params)) {
      this.#malformed('bad-notification', `${clip(method)} without params.subscription and params.result`);
      return;
    }
    const sub = this.#byId.get(params.subscription);
    const ns = method.slice(0, -'_subscription'.length);
    if (!sub || sub.ns !== ns) {
      this.stats.unknownSubscription++;
      this.#malformed('unknown-subscription', `${clip(method)} for ${clip(params.subscription)}`);
      return;
    }
    sub.deliver(params.result);
  }

  #onReply(msg: Record<string, unknown>, text: string): void {
    const hasError = 'error' in msg;
    let error: JsonRpcError | undefined;
    if (hasError) {
      const e = msg.error;
      if (!isRecord(e) || typeof e.code !== 'number' || typeof e.message !== 'string') {
        this.#malformed('bad-error-object', clip(text));
        if (typeof msg.id === 'number') this.#settle(msg.id, undefined, new JsonRpcError(RPC_ERRORS.server, 'malformed error object'));
        return;
      }
      error = new JsonRpcError(e.code, e.message, e.data);
    } else if (!('result' in msg)) {
      this.#malformed('bad-response', clip(text));
      return;
    }
    const id = msg.id;
    if (id === null || id === undefined) {
      if (error) {
        this.#malformed('error-without-id', `${error.code} ${clip(error.message)}`);
        this.emit('server-error', error);
      } else {
        this.#malformed('bad-response', 'result without id');
      }
      return;
    }
    if (typeof id !== 'number' || !this.#calls.has(id)) {
      this.#malformed('unknown-id', `id ${clip(JSON.stringify(id))}`);
      return;
    }
    this.#settle(id, msg.result, error);
  }

  #settle(id: number, result: unknown, error: Error | undefined): void {
    const call = this.#calls.get(id);
    if (!call) return;
    this.#calls.delete(id);
    clearTimeout(call.timer);
    if (error) call.reject(error);
    else {
      call.onResult?.(result);
      call.resolve(result);
    }
  }

  /** One request. Rejects with JsonRpcError, JsonRpcTimeoutError or JsonRpcConnectionError. */
  call<T = unknown>(
    method: string,
    params: unknown[] = [],
    options: { timeoutMs?: number; onResult?: (result: unknown) => void } = {},
  ): Promise<T> {
    if (!this.#socket.connected) return Promise.reject(new JsonRpcConnectionError(`${method}: not connected`));
    const id = this.#nextId++;
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#calls.delete(id);
        reject(new JsonRpcTimeoutError(method, timeoutMs));
      }, timeoutMs);
      this.#calls.set(id, { method, resolve: resolve as (v: unknown) => void, reject, timer, onResult: options.onResult });
      this.#socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }), (err) =>
        this.#settle(id, undefined, new JsonRpcConnectionError(`${method}: ${err.message}`)),
      );
    });
  }

  /**
   * Subscribes `<ns>_subscribe [name, ...args]`. Resolves once the server gave an id. If the server
   * refuses (JsonRpcError) the promise rejects and nothing is kept. If the connection is down or
   * drops first, the subscription waits and is made on the next connection.
   */
  subscribe(ns: string, name: string, ...args: unknown[]): Promise<Subscription> {
    if (this.#socket.closed) return Promise.reject(new JsonRpcConnectionError('client is closed'));
    const sub = new Subscription(this, ns, name, args);
    this.#subs.add(sub);
    return new Promise<Subscription>((resolve, reject) => {
      const onFirst = (err?: Error) => {
        if (err) reject(err);
        else resolve(sub);
      };
      this.#firstResult.set(sub, onFirst);
      if (this.#socket.connected) void this.#subscribeOnServer(sub);
      else this.#socket.start();
    });
  }

  async #subscribeOnServer(sub: Subscription): Promise<void> {
    const oldId = sub.id;
    let id: unknown;
    try {
      // The id is registered the moment the reply frame is read: the first notification can be
      // in the same TCP read, handled before any promise continuation runs.
      id = await this.call(`${sub.ns}_subscribe`, [sub.subscriptionName, ...sub.args], {
        onResult: (result) => {
          if (sub.active && typeof result === 'string' && result !== '') {
            sub.id = result;
            this.#byId.set(result, sub);
          }
        },
      });
    } catch (err) {
      const first = this.#firstResult.get(sub);
      if (err instanceof JsonRpcTimeoutError && !first) {
        // A re-subscribe the node never answered: it is wedged. A fresh connection subscribes
        // everything again (and ends whatever this one half-made).
        this.emit('resubscribe-failed', sub, err);
        this.#socket.terminate();
        return;
      }
      if (err instanceof JsonRpcError || err instanceof JsonRpcTimeoutError) {
        // Refused by the server, or a first subscribe never answered: the caller hears why.
        this.#drop(sub, `subscribe refused: ${err.message}`);
        this.#firstResult.delete(sub);
        if (first) first(err);
        else this.emit('resubscribe-failed', sub, err);
      }
      // A connection error: the next connection subscribes again.
      return;
    }
    if (!sub.active) {
      // Unsubscribed while the request was in flight.
      if (typeof id === 'string') {
        if (this.#byId.get(id) === sub) this.#byId.delete(id);
        void this.call(`${sub.ns}_unsubscribe`, [id]).catch(() => {});
      }
      return;
    }
    if (typeof id !== 'string' || id === '') {
      this.#malformed('bad-response', `${sub.ns}_subscribe returned ${clip(JSON.stringify(id))}`);
      this.#drop(sub, 'subscribe returned no id');
      const first = this.#firstResult.get(sub);
      this.#firstResult.delete(sub);
      first?.(new JsonRpcError(RPC_ERRORS.server, 'subscribe returned no subscription id'));
      return;
    }
    sub.id = id;
    this.#byId.set(id, sub);
    const first = this.#firstResult.get(sub);
    if (first) {
      this.#firstResult.delete(sub);
      first();
    } else {
      sub.emit('resubscribed', oldId, id);
      this.emit('resubscribed', sub, oldId, id);
    }
  }

  #drop(sub: Subscription, reason: string): void {
    if (!sub.active) return;
    sub.active = false;
    this.#subs.delete(sub);
    if (sub.id) this.#byId.delete(sub.id);
    sub.emit('ended', reason);
  }

  /**
   * Ends a subscription. Returns the server's answer (true), or false when it was not subscribed
   * on the current connection. A server error (e.g. -32000 "subscription not found") rejects.
   */
  async unsubscribe(sub: Subscription): Promise<boolean> {
    const id = sub.id;
    const live = id !== '' && this.#byId.get(id) === sub;
    this.#drop(sub, 'unsubscribed');
    const first = this.#firstResult.get(sub);
    if (first) {
      this.#firstResult.delete(sub);
      first(new JsonRpcConnectionError('unsubscribed before the subscription was made'));
    }
    if (!live || !this.#socket.connected) return false;
    return (await this.call<boolean>(`${sub.ns}_unsubscribe`, [id])) === true;
  }

  /** Sends one frame exactly as given (diagnostics; tests of a node's reaction to bad input). */
  sendRaw(text: string): void {
    if (!this.#socket.send(text)) throw new JsonRpcConnectionError('not connected');
  }

  /** Closes the socket without stopping the client: it reconnects as after any drop. */
  dropConnection(): void {
    this.#socket.terminate();
  }

  /** Stops for good: no reconnect, pending calls and waiting subscriptions reject. */
  async close(): Promise<void> {
    if (this.#socket.closed) return;
    const closing = this.#socket.close();
    this.#drops.close();
    for (const sub of [...this.#subs]) {
      this.#drop(sub, 'client closed');
      const first = this.#firstResult.get(sub);
      this.#firstResult.delete(sub);
      first?.(new JsonRpcConnectionError('client closed'));
    }
    await closing;
  }
}
