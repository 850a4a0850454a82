/**
 * go-qlc's ledger and pov subscriptions, typed and validated.
 *
 * The feed computes nothing: a QLC block hash covers fields whose serialisation we do not
 * reproduce here, so a block without a `hash` field cannot tell us its confirmed hash. Current
 * nodes include `hash` in newBlock and newAccountBlock; a block without one is still emitted (its
 * `previous` is useful) but flagged `hash: undefined`, and the precache policy skips it.
 *
 * Every notification is checked before it is emitted; a bad one is counted by reason, logged and
 * dropped.
 */
import { EventEmitter } from 'node:events';
import { checkAddress } from '../../dpow/address.ts';
import { isRootHex } from '../../pow/work.ts';
import { LogLimiter } from '../log-limit.ts';
import { silentLogger, type Logger } from '../log.ts';
import { JsonRpcWsClient, type JsonRpcWsOptions, type Subscription } from './jsonrpc-ws.ts';
import { QLC_BLOCK_TYPES, type QlcAccountInfo, type QlcBlock, type QlcBlockType, type QlcPending, type QlcPovHeader } from './qlc-wire.ts';

export type QlcRejectCode =
  | 'not-an-object'
  | 'bad-type'
  | 'bad-token'
  | 'bad-address'
  | 'bad-previous'
  | 'bad-link'
  | 'bad-hash'
  | 'bad-field';

export type Checked<T> = { ok: true; value: T } | { ok: false; code: QlcRejectCode; reason: string };

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const fail = <T>(code: QlcRejectCode, reason: string): Checked<T> => ({ ok: false, code, reason });
const isHex64 = (v: unknown): v is string => isRootHex(v);

export function checkQlcAddress(v: unknown): { ok: true; publicKeyHex: string } | { ok: false; reason: string } {
  const check = checkAddress(v, ['qlc']);
  return check.ok ? { ok: true, publicKeyHex: check.publicKeyHex } : { ok: false, reason: check.reason };
}

/** Validates a ledger block (newBlock / newAccountBlock). Computes nothing. */
export function validateQlcBlock(raw: unknown): Checked<QlcBlock> {
  if (!isRecord(raw)) return fail('not-an-object', 'block is not a JSON object');
  if (typeof raw.type !== 'string' || !(QLC_BLOCK_TYPES as readonly string[]).includes(raw.type)) {
    return fail('bad-type', `unknown block type ${JSON.stringify(raw.type)?.slice(0, 30)}`);
  }
  if (!isHex64(raw.token)) return fail('bad-token', 'token is not 64 hex');
  const address = checkQlcAddress(raw.address);
  if (!address.ok) return fail('bad-address', `address: ${address.reason}`);
  if (!isHex64(raw.previous)) return fail('bad-previous', 'previous is not 64 hex');
  if (!isHex64(raw.link)) return fail('bad-link', 'link is not 64 hex');
  if (raw.hash !== undefined && !isHex64(raw.hash)) return fail('bad-hash', 'hash is not 64 hex');
  const block: QlcBlock = {
    type: raw.type as QlcBlockType,
    token: raw.token,
    address: raw.address as string,
    previous: raw.previous,
    link: raw.link,
  };
  if (raw.hash !== undefined) block.hash = raw.hash as string;
  for (const key of ['balance', 'amount', 'tokenName', 'representative', 'work'] as const) {
    const v = raw[key];
    if (v === undefined) continue;
    if (typeof v !== 'string') return fail('bad-field', `${key} must be a string`);
    block[key] = v;
  }
  for (const key of ['timestamp', 'povHeight'] as const) {
    const v = raw[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v)) return fail('bad-field', `${key} must be a number`);
    block[key] = v;
  }
  return { ok: true, value: block };
}

export function validateQlcPending(raw: unknown): Checked<QlcPending> {
  if (!isRecord(raw)) return fail('not-an-object', 'pending is not a JSON object');
  const source = checkQlcAddress(raw.source);
  if (!source.ok) return fail('bad-address', `source: ${source.reason}`);
  if (!isHex64(raw.type)) return fail('bad-token', 'type (token) is not 64 hex');
  if (!isHex64(raw.hash)) return fail('bad-hash', 'hash is not 64 hex');
  if (typeof raw.amount !== 'string') return fail('bad-field', 'amount must be a string');
  const pending: QlcPending = { source: raw.source as string, amount: raw.amount, type: raw.type, hash: raw.hash };
  if (typeof raw.tokenName === 'string') pending.tokenName = raw.tokenName;
  if (typeof raw.timestamp === 'number') pending.timestamp = raw.timestamp;
  return { ok: true, value: pending };
}

export function validateQlcAccountInfo(raw: unknown): Checked<QlcAccountInfo> {
  if (!isRecord(raw)) return fail('not-an-object', 'account info is not a JSON object');
  const account = checkQlcAddress(raw.account);
  if (!account.ok) return fail('bad-address', `account: ${account.reason}`);
  const balance = raw.coinBalance ?? raw.balance;
  if (balance !== undefined && typeof balance !== 'string') return fail('bad-field', 'balance must be a string');
  const tokens: QlcAccountInfo['tokens'] = [];
  if (raw.tokens !== undefined && raw.tokens !== null) {
    if (!Array.isArray(raw.tokens)) return fail('bad-field', 'tokens must be a list');
    for (const t of raw.tokens) {
      if (!isRecord(t) || !isHex64(t.type) || !isHex64(t.header)) return fail('bad-field', 'token entry needs type and header hashes');
      const entry: QlcAccountInfo['tokens'][number] = { type: t.type, header: t.header };
      if (isHex64(t.open)) entry.open = t.open;
      if (typeof t.balance === 'string') entry.balance = t.balance;
      if (typeof t.blockCount === 'number') entry.blockCount = t.blockCount;
      tokens.push(entry);
    }
  }
  const info: QlcAccountInfo = { account: raw.account as string, tokens };
  if (typeof balance === 'string') info.balance = balance;
  return { ok: true, value: info };
}

export function validateQlcPovHeader(raw: unknown): Checked<QlcPovHeader> {
  if (!isRecord(raw)) return fail('not-an-object', 'pov block is not a JSON object');
  const hdr = isRecord(raw.basHdr) ? raw.basHdr : raw;
  if (!isHex64(hdr.hash)) return fail('bad-hash', 'pov hash is not 64 hex');
  if (!isHex64(hdr.previous)) return fail('bad-previous', 'pov previous is not 64 hex');
  if (typeof hdr.height !== 'number' || !Number.isInteger(hdr.height) || hdr.height < 0) {
    return fail('bad-field', 'pov height must be a non-negative integer');
  }
  return { ok: true, value: { hash: hdr.hash, previous: hdr.previous, height: hdr.height } };
}

/** The chain a QLC block belongs to: one per (address, token). */
export const qlcChainKey = (address: string, token: string) => `${address}:${token.toLowerCase()}`;

export interface QlcFeedEvents {
  /** A ledger block; `source` says which subscription brought it. */
  block: [block: QlcBlock, source: 'newBlock' | 'newAccountBlock'];
  pending: [address: string, pending: QlcPending];
  balance: [info: QlcAccountInfo];
  'pov-block': [header: QlcPovHeader];
  rejected: [code: QlcRejectCode, reason: string];
  connect: [];
  disconnect: [];
  resubscribed: [what: string];
}

/** The JSON-RPC client's: reconnect and ping tuning, the log, the call timeout. */
export type QlcFeedOptions = JsonRpcWsOptions;

/**
 * Typed subscriptions on one go-qlc node. Subscriptions are re-made by the JSON-RPC client after a
 * reconnect; per-address subscriptions can be added and removed while running.
 */
export class QlcFeed extends EventEmitter<QlcFeedEvents> {
  readonly client: JsonRpcWsClient;
  readonly stats = { blocks: 0, pending: 0, balances: 0, povBlocks: 0, rejected: {} as Partial<Record<QlcRejectCode, number>>, blocksWithoutHash: 0 };
  readonly #log: Logger;
  /** Dropped notifications: one line per code per interval, with a count, however many come. */
  readonly #drops: LogLimiter;
  #accountSubs = new Map<string, Subscription>();

  constructor(url: string, options: QlcFeedOptions = {}) {
    super();
    this.#log = options.log ?? silentLogger;
    this.#drops = new LogLimiter(this.#log);
    this.client = new JsonRpcWsClient(url, options);
    this.client.on('connect', () => this.emit('connect'));
    this.client.on('disconnect', () => this.emit('disconnect'));
    this.client.on('resubscribed', (sub) => this.emit('resubscribed', `${sub.ns}:${sub.subscriptionName}`));
  }

  connect(): Promise<void> {
    return this.client.connect();
  }

  #reject(code: QlcRejectCode, reason: string): void {
    this.stats.rejected[code] = (this.stats.rejected[code] ?? 0) + 1;
    this.#drops.warn(`qlc feed: dropped notification (${code})`, `qlc feed: dropped notification (${code}): ${reason}`);
    this.emit('rejected', code, reason);
  }

  #onBlock(source: 'newBlock' | 'newAccountBlock') {
    return (raw: unknown) => {
      const checked = validateQlcBlock(raw);
      if (!checked.ok) return this.#reject(checked.code, checked.reason);
      this.stats.blocks++;
      if (checked.value.hash === undefined) this.stats.blocksWithoutHash++;
      this.emit('block', checked.value, source);
    };
  }

  /** Every new ledger block (`ledger_subscribe ["newBlock"]`). */
  async subscribeNewBlocks(): Promise<Subscription> {
    const sub = await this.client.subscribe('ledger', 'newBlock');
    sub.listen(this.#onBlock('newBlock'));
    return sub;
  }

  /** New blocks of one account (`ledger_subscribe ["newAccountBlock", address]`). */
  async subscribeAccountBlocks(address: string): Promise<Subscription> {
    const sub = await this.client.subscribe('ledger', 'newAccountBlock', address);
    sub.listen(this.#onBlock('newAccountBlock'));
    return sub;
  }

  async subscribeBalanceChange(address: string): Promise<Subscription> {
    const sub = await this.client.subscribe('ledger', 'balanceChange', address);
    sub.listen((raw) => {
      const checked = validateQlcAccountInfo(raw);
      if (!checked.ok) return this.#reject(checked.code, checked.reason);
      this.stats.balances++;
      this.emit('balance', checked.value);
    });
    return sub;
  }

  async subscribeNewPending(address: string): Promise<Subscription> {
    const sub = await this.client.subscribe('ledger', 'newPending', address);
    sub.listen((raw) => {
      const checked = validateQlcPending(raw);
      if (!checked.ok) return this.#reject(checked.code, checked.reason);
      this.stats.pending++;
      this.emit('pending', address, checked.value);
    });
    return sub;
  }

  async subscribePovBlocks(): Promise<Subscription> {
    const sub = await this.client.subscribe('pov', 'newBlock');
    sub.listen((raw) => {
      const checked = validateQlcPovHeader(raw);
      if (!checked.ok) return this.#reject(checked.code, checked.reason);
      this.stats.povBlocks++;
      this.emit('pov-block', checked.value);
    });
    return sub;
  }

  /**
   * Watches one account's blocks (and, with `pending`, sends to it). Idempotent. The promise
   * rejects if the node refuses (e.g. a bad checksum), so callers can log and carry on.
   */
  async watchAccount(address: string, options: { pending?: boolean } = {}): Promise<void> {
    if (this.#accountSubs.has(address)) return;
    const sub = await this.subscribeAccountBlocks(address);
    this.#accountSubs.set(address, sub);
    if (options.pending) {
      const pending = await this.subscribeNewPending(address);
      this.#accountSubs.set(`${address}#pending`, pending);
    }
  }

  async unwatchAccount(address: string): Promise<void> {
    for (const key of [address, `${address}#pending`]) {
      const sub = this.#accountSubs.get(key);
      this.#accountSubs.delete(key);
      await sub?.unsubscribe().catch(() => false);
    }
  }

  get watched(): string[] {
    return [...this.#accountSubs.keys()].filter((k) => !k.endsWith('#pending'));
  }

  close(): Promise<void> {
    this.#drops.close();
    return this.client.close();
  }
}
