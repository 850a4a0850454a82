/**
 * One WebSocket to a node that stays up: the connection both node feeds ride on (the go-qlc
 * JSON-RPC client and the Nano confirmation feed). It knows nothing of either protocol.
 *
 * - connect() resolves once open; a refused or dropped connection is retried with the shared
 *   backoff (src/dpow/backoff.ts) until close().
 * - Liveness: every `pingIntervalMs` a ping goes out, either a WebSocket ping frame or the
 *   protocol's own ping. A peer that does not answer in time is taken for dead: the socket is
 *   terminated and the connection starts over.
 * - expectReply(): waits for a named reply (an ack, a pong) the protocol will hand back through
 *   reply(); none within `replyTimeoutMs` counts as a dead peer, as above.
 *
 * Both protocols speak JSON text frames: each frame arrives parsed as 'json', or as 'not-json'
 * with its text (also one nested too deep: parseBoundedJson bounds it before anything walks it). 'open' and 'close' say when a session begins and ends, so the protocol can
 * subscribe again or fail what was in flight.
 */
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { backoffDelay } from '../../dpow/backoff.ts';
import { parseBoundedJson } from '../bounded-json.ts';
import { silentLogger, type Logger } from '../log.ts';

export interface ReconnectingWsOptions {
  /** Names the connection in log lines and errors ("json-rpc client", "nano feed"). */
  name: string;
  /** First reconnect delay; doubles per failed attempt up to `maxReconnectDelayMs`. */
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  /** Jitter source, [0, 1). */
  random?: () => number;
  /** Largest frame accepted. */
  maxPayloadBytes?: number;
  /** How often to ping (0 = never). */
  pingIntervalMs?: number;
  /**
   * 'frame': a WebSocket ping frame, whose pong must come before the next ping. A function:
   * the protocol's own ping, which waits for its answer through expectReply().
   */
  ping?: 'frame' | (() => void);
  /** How long expectReply() waits by default. */
  replyTimeoutMs?: number;
  /** close(): 'graceful' sends a close frame and waits for the peer (at most 2 s); 'terminate' drops it. */
  closeWith?: 'graceful' | 'terminate';
  /** Builds the error a connect() gets once the connection is closed (the protocol's own type). */
  closedError?: (message: string) => Error;
  /** Default silent, as everywhere on the server. */
  log?: Logger;
}

export interface ReconnectingWsEvents {
  /** A session began. */
  open: [];
  /** One frame, parsed (binary frames are decoded as UTF-8 too). */
  json: [value: unknown, text: string];
  /** A frame that is not JSON. */
  'not-json': [text: string];
  /** A session ended, or an attempt failed (`wasOpen` false). Replies awaited were settled false. */
  close: [code: number, reason: string, wasOpen: boolean];
  /** No answer in time (`what`: the reply awaited); the socket is being terminated. */
  unresponsive: [what: string];
}

/** What a feed's caller tunes about its connection; the feed passes it through. */
export type ConnectionTuning = Pick<ReconnectingWsOptions, 'reconnectDelayMs' | 'maxReconnectDelayMs' | 'random' | 'pingIntervalMs' | 'log'>;

interface AwaitedReply {
  what: string;
  timer: NodeJS.Timeout;
  done: (ok: boolean) => void;
}

export class ReconnectingWs extends EventEmitter<ReconnectingWsEvents> {
  readonly #opts: Required<Omit<ReconnectingWsOptions, 'ping' | 'closedError'>> & Pick<ReconnectingWsOptions, 'ping'>;
  readonly #closedError: (message: string) => Error;
  #ws: WebSocket | undefined;
  #open = false;
  #closed = false;
  #attempt = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  /** Replies awaited, oldest first. */
  #awaiting: AwaitedReply[] = [];
  #waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];

  constructor(
    readonly url: string,
    options: ReconnectingWsOptions,
  ) {
    super();
    this.#opts = {
      name: options.name,
      reconnectDelayMs: options.reconnectDelayMs ?? 500,
      maxReconnectDelayMs: options.maxReconnectDelayMs ?? 60_000,
      random: options.random ?? Math.random,
      maxPayloadBytes: options.maxPayloadBytes ?? 16 * 1024 * 1024,
      pingIntervalMs: options.pingIntervalMs ?? 30_000,
      ping: options.ping,
      replyTimeoutMs: options.replyTimeoutMs ?? 10_000,
      closeWith: options.closeWith ?? 'graceful',
      log: options.log ?? silentLogger,
    };
    this.#closedError = options.closedError ?? ((message) => new Error(message));
  }

  get connected(): boolean {
    return this.#open;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Starts connecting (retrying with backoff) and resolves once connected. */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError(`${this.#opts.name} is closed`));
    if (this.#open) return Promise.resolve();
    const ready = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    this.start();
    return ready;
  }

  /** Starts connecting unless already connected, connecting or waiting to retry. */
  start(): void {
    if (!this.#closed && !this.#ws && !this.#reconnectTimer) this.#dial();
  }

  #dial(): void {
    this.#reconnectTimer = undefined;
    if (this.#closed) return;
    const ws = new WebSocket(this.url, { maxPayload: this.#opts.maxPayloadBytes, handshakeTimeout: 10_000 });
    this.#ws = ws;
    ws.on('open', () => {
      if (ws !== this.#ws) return;
      this.#open = true;
      this.#attempt = 0;
      this.#startPing(ws);
      this.emit('open');
      for (const w of this.#waiters.splice(0)) w.resolve();
    });
    ws.on('message', (data) => {
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
      const parsed = parseBoundedJson(text, { maxBytes: this.#opts.maxPayloadBytes });
      if (!parsed.ok) return void this.emit('not-json', text);
      this.emit('json', parsed.value, text);
    });
    if (this.#opts.ping === 'frame') ws.on('pong', () => this.reply('pong'));
    ws.on('error', (err) => this.#opts.log.warn(`${this.#label}: ${err.message}`));
    ws.on('close', (code, reason) => this.#onClose(ws, code, reason.toString()));
  }

  get #label(): string {
    return `${this.#opts.name} ${this.url}`;
  }

  #startPing(ws: WebSocket): void {
    const every = this.#opts.pingIntervalMs;
    if (every <= 0) return;
    const ping = this.#opts.ping ?? 'frame';
    this.#pingTimer = setInterval(() => {
      if (ping !== 'frame') return ping();
      if (this.awaiting('pong')) return; // its own timeout decides
      void this.expectReply('pong', every);
      ws.ping();
    }, every);
    this.#pingTimer.unref();
  }

  #onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.#ws) return;
    this.#ws = undefined;
    clearInterval(this.#pingTimer);
    const wasOpen = this.#open;
    this.#open = false;
    for (const a of this.#awaiting.splice(0)) {
      clearTimeout(a.timer);
      a.done(false);
    }
    this.emit('close', code, reason, wasOpen);
    if (this.#closed) return;
    const delay = backoffDelay(this.#attempt++, this.#opts.reconnectDelayMs, this.#opts.maxReconnectDelayMs, this.#opts.random);
    this.#opts.log.info(`${this.#label}: disconnected (${code}), reconnecting in ${delay} ms`);
    this.#reconnectTimer = setTimeout(() => this.#dial(), delay);
  }

  /**
   * Sends one text frame (as given: a protocol may need to send something that is not JSON);
   * false when not connected. `onError` hears a send that failed after it was queued.
   */
  send(text: string, onError?: (err: Error) => void): boolean {
    const ws = this.#ws;
    if (!ws || !this.#open) return false;
    ws.send(text, (err) => {
      if (err) onError?.(err);
    });
    return true;
  }

  /**
   * Waits for the reply named `what`: true when reply(what) comes, false when the session ends
   * first or none comes within `timeoutMs`, which also terminates the socket (a peer that stopped
   * reading is as good as gone) and so starts a new session.
   */
  expectReply(what: string, timeoutMs = this.#opts.replyTimeoutMs): Promise<boolean> {
    const ws = this.#ws;
    if (!ws || !this.#open) return Promise.resolve(false);
    return new Promise((resolve) => {
      const entry: AwaitedReply = {
        what,
        done: resolve,
        timer: setTimeout(() => {
          this.#awaiting = this.#awaiting.filter((a) => a !== entry);
          this.#opts.log.warn(`${this.#label}: no "${what}" reply within ${timeoutMs} ms, reconnecting`);
          this.emit('unresponsive', what);
          resolve(false);
          ws.terminate();
        }, timeoutMs),
      };
      this.#awaiting.push(entry);
    });
  }

  /** Hands over the reply named `what` to the oldest wait for it; false when nobody waited. */
  reply(what: string): boolean {
    const i = this.#awaiting.findIndex((a) => a.what === what);
    if (i < 0) return false;
    const [entry] = this.#awaiting.splice(i, 1);
    clearTimeout(entry.timer);
    entry.done(true);
    return true;
  }

  /** Whether a reply named `what` is awaited. */
  awaiting(what: string): boolean {
    return this.#awaiting.some((a) => a.what === what);
  }

  /** Closes the socket as if the network dropped it; the connection starts over. */
  terminate(): void {
    this.#ws?.terminate();
  }

  /** Stops for good: no reconnect, and a connect() still waiting rejects. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    clearInterval(this.#pingTimer);
    for (const w of this.#waiters.splice(0)) w.reject(this.#closedError(`${this.#opts.name} closed`));
    const ws = this.#ws;
    if (!ws) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      if (this.#opts.closeWith === 'terminate' || ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1000, 'client closing');
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 2000).unref();
    });
  }
}
