/**
 * The Nano node's WebSocket confirmation topic (protocol-notes §4), filtered to tracked accounts.
 *
 *   -> {"action":"subscribe","topic":"confirmation","ack":true,"options":{"accounts":[...]}}
 *   <- {"ack":"subscribe","time":"<ms>"}
 *   <- {"topic":"confirmation","time":"...","message":{"account","amount","hash","confirmation_type","block":{...}}}
 *   -> {"action":"update","topic":"confirmation","ack":true,"options":{"accounts_add":[...],"accounts_del":[...]}}
 *   -> {"action":"ping"}  <- {"ack":"pong"}
 *
 * The feed subscribes only once it has at least one account: an empty filter would make some
 * nodes send every confirmation on the network. Pings check liveness (a node that stopped
 * reading, e.g. after bad JSON, stops answering); a missing ack or pong closes the socket and the
 * feed reconnects with backoff and subscribes again with the whole account set.
 */
import { EventEmitter } from 'node:events';
import { checkAddress, NANO_PREFIXES } from '../../dpow/address.ts';
import type { NanoConfirmation, NanoStateBlock } from './nano-wire.ts';
import { clip, LogLimiter } from '../log-limit.ts';
import { silentLogger, type Logger } from '../log.ts';
import { ReconnectingWs, type ConnectionTuning } from './reconnecting-ws.ts';

export type NanoRejectCode = 'not-json' | 'not-an-object' | 'bad-shape' | 'not-a-string' | 'bad-hash' | 'bad-account' | 'unexpected';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const HASH_UPPER = /^[0-9A-F]{64}$/;
const HEX64 = /^[0-9a-fA-F]{64}$/;

export type NanoChecked = { ok: true; value: NanoConfirmation } | { ok: false; code: NanoRejectCode; reason: string };

/** Validates one `confirmation` message: every value a string, hash upper-case hex, accounts checked. */
export function validateNanoConfirmation(frame: Record<string, unknown>): NanoChecked {
  const fail = (code: NanoRejectCode, reason: string): NanoChecked => ({ ok: false, code, reason });
  const msg = frame.message;
  if (!isRecord(msg)) return fail('bad-shape', 'confirmation without a message object');
  for (const key of ['account', 'amount', 'hash', 'confirmation_type'] as const) {
    if (typeof msg[key] !== 'string') return fail('not-a-string', `message.${key} must be a string`);
  }
  if (typeof frame.time !== 'string') return fail('not-a-string', 'time must be a string');
  if (!HASH_UPPER.test(msg.hash as string)) return fail('bad-hash', 'message.hash must be 64 upper-case hex');
  const account = checkAddress(msg.account, NANO_PREFIXES);
  if (!account.ok) return fail('bad-account', `message.account: ${account.reason}`);
  const block = msg.block;
  if (!isRecord(block)) return fail('bad-shape', 'message.block must be an object');
  for (const [key, value] of Object.entries(block)) {
    if (typeof value !== 'string') return fail('not-a-string', `block.${key} must be a string`);
  }
  for (const key of ['type', 'account', 'previous', 'representative', 'balance', 'link'] as const) {
    if (typeof block[key] !== 'string') return fail('bad-shape', `block.${key} is missing`);
  }
  if (block.account !== msg.account) return fail('bad-account', 'block.account differs from message.account');
  if (!HEX64.test(block.previous as string)) return fail('bad-hash', 'block.previous must be 64 hex');
  if (!HEX64.test(block.link as string)) return fail('bad-hash', 'block.link must be 64 hex');
  return {
    ok: true,
    value: {
      account: msg.account as string,
      amount: msg.amount as string,
      hash: msg.hash as string,
      confirmationType: msg.confirmation_type as string,
      block: block as unknown as NanoStateBlock,
      time: frame.time,
    },
  };
}

/** Reconnect and ping tuning as in reconnecting-ws.ts; pings are the node's {"action":"ping"}. */
export interface NanoFeedOptions extends ConnectionTuning {
  accounts?: string[];
  /** How long to wait for a pong or an ack before giving up on the connection. */
  replyTimeoutMs?: number;
}

export interface NanoFeedEvents {
  confirmation: [confirmation: NanoConfirmation];
  rejected: [code: NanoRejectCode, reason: string];
  connect: [];
  disconnect: [code: number];
  /** The node acknowledged a subscribe (after every (re)connect with accounts). */
  subscribed: [accounts: number];
  updated: [];
}

export class NanoFeed extends EventEmitter<NanoFeedEvents> {
  readonly stats = {
    connects: 0,
    confirmations: 0,
    subscribes: 0,
    pongs: 0,
    livenessFailures: 0,
    rejected: {} as Partial<Record<NanoRejectCode, number>>,
  };
  readonly #accounts = new Set<string>();
  readonly #log: Logger;
  /** Dropped messages: one line per code per interval, with a count, however many come. */
  readonly #drops: LogLimiter;
  readonly #socket: ReconnectingWs;
  #subscribed = false;

  constructor(
    readonly url: string,
    options: NanoFeedOptions = {},
  ) {
    super();
    const { accounts, ...tuning } = options;
    for (const a of accounts ?? []) this.#accounts.add(a);
    this.#log = options.log ?? silentLogger;
    this.#drops = new LogLimiter(this.#log);
    this.#socket = new ReconnectingWs(url, {
      ...tuning,
      name: 'nano feed',
      maxPayloadBytes: 4 * 1024 * 1024,
      // The node's own ping ({"action":"ping"} -> {"ack":"pong"}): it proves the session is read.
      ping: () => void this.ping(),
      closeWith: 'terminate',
      log: this.#log,
    });
    this.#socket.on('open', () => {
      this.stats.connects++;
      this.emit('connect');
      if (this.#accounts.size > 0) this.#subscribe();
    });
    this.#socket.on('json', (frame, text) => this.#onFrame(frame, text));
    this.#socket.on('not-json', (text) => this.#reject('not-json', clip(text)));
    this.#socket.on('unresponsive', () => this.stats.livenessFailures++);
    this.#socket.on('close', (code, _reason, wasOpen) => {
      this.#subscribed = false;
      if (wasOpen) this.emit('disconnect', code);
    });
  }

  get connected(): boolean {
    return this.#socket.connected;
  }
  get subscribed(): boolean {
    return this.#subscribed;
  }
  get accounts(): string[] {
    return [...this.#accounts];
  }

  /** Starts connecting (retrying) and resolves once connected. */
  connect(): Promise<void> {
    return this.#socket.connect();
  }

  /** Sends one request; with `ack`, resolves true once the node acknowledges it (false if not). */
  #send(msg: unknown, ack?: string): Promise<boolean> {
    if (!this.#socket.send(JSON.stringify(msg))) return Promise.resolve(false);
    return ack ? this.#socket.expectReply(ack) : Promise.resolve(true);
  }

  #subscribe(): void {
    const accounts = [...this.#accounts];
    void this.#send(
      { action: 'subscribe', topic: 'confirmation', ack: true, options: { accounts } },
      'subscribe',
    ).then((ok) => {
      if (!ok) return;
      this.#subscribed = true;
      this.stats.subscribes++;
      this.emit('subscribed', accounts.length);
    });
  }

  /** Sends a ping; resolves true on pong, false on timeout (which also reconnects). */
  ping(): Promise<boolean> {
    return this.#send({ action: 'ping' }, 'pong');
  }

  #reject(code: NanoRejectCode, reason: string): void {
    this.stats.rejected[code] = (this.stats.rejected[code] ?? 0) + 1;
    this.#drops.warn(`nano feed: dropped message (${code})`, `nano feed: dropped message (${code}): ${reason}`);
    this.emit('rejected', code, reason);
  }

  #onFrame(frame: unknown, text: string): void {
    if (!isRecord(frame)) return this.#reject('not-an-object', clip(text));
    if (typeof frame.ack === 'string') {
      if (!this.#socket.reply(frame.ack)) return this.#reject('unexpected', `ack ${clip(frame.ack)} nobody waited for`);
      if (frame.ack === 'pong') this.stats.pongs++;
      return;
    }
    if (frame.topic === 'confirmation') {
      const checked = validateNanoConfirmation(frame);
      if (!checked.ok) return this.#reject(checked.code, checked.reason);
      this.stats.confirmations++;
      this.emit('confirmation', checked.value);
      return;
    }
    if (typeof frame.topic === 'string') return; // other topics (e.g. a shared session): not ours
    this.#reject('unexpected', clip(text));
  }

  /**
   * Adds accounts to the filter: the first ones subscribe, later ones update the subscription.
   * Accounts that fail the checksum are refused (returned) and never sent to the node.
   */
  async addAccounts(accounts: string[]): Promise<string[]> {
    const refused: string[] = [];
    const added: string[] = [];
    for (const a of accounts) {
      if (!checkAddress(a, NANO_PREFIXES).ok) refused.push(a);
      else if (!this.#accounts.has(a)) {
        this.#accounts.add(a);
        added.push(a);
      }
    }
    if (added.length > 0 && this.#socket.connected) {
      if (!this.#subscribed && !this.#socket.awaiting('subscribe')) this.#subscribe();
      else if (this.#subscribed) {
        const ok = await this.#send(
          { action: 'update', topic: 'confirmation', ack: true, options: { accounts_add: added } },
          'update',
        );
        if (ok) this.emit('updated');
      }
      // (A subscribe in flight carries only the accounts known when it was sent: send the rest
      // as an update once it is acknowledged.)
      else void this.#afterSubscribe(added);
    }
    return refused;
  }

  async #afterSubscribe(added: string[]): Promise<void> {
    await new Promise<void>((resolve) => this.once('subscribed', () => resolve()));
    const ok = await this.#send({ action: 'update', topic: 'confirmation', ack: true, options: { accounts_add: added } }, 'update');
    if (ok) this.emit('updated');
  }

  async removeAccounts(accounts: string[]): Promise<void> {
    const removed = accounts.filter((a) => this.#accounts.delete(a));
    if (removed.length > 0 && this.#subscribed) {
      const ok = await this.#send({ action: 'update', topic: 'confirmation', ack: true, options: { accounts_del: removed } }, 'update');
      if (ok) this.emit('updated');
    }
  }

  /** Closes the session as if the network dropped it; the feed reconnects. */
  dropConnection(): void {
    this.#socket.terminate();
  }

  close(): Promise<void> {
    this.#drops.close();
    return this.#socket.close();
  }
}
