/**
 * A go-qlc-compatible test node: the JSON-RPC 2.0 pub/sub surface of gqlc's WebSocket endpoint,
 * as it behaves on the wire (protocol-notes §5), with no ledger behind it. Tests drive it with
 * emitBlock/emitPending/...; `dpow-web start --feed qlc-sim` runs it in demo mode, where it
 * makes up a plausible stream of blocks for a few accounts.
 *
 * Wire behaviour reproduced:
 * - one JSON value per text frame; requests may omit "jsonrpc"; ids are echoed as given; requests
 *   are served concurrently, so replies can come back out of order;
 * - subscription ids are `0x` + lowercase hex with leading zeros stripped (length varies);
 * - the subscribe reply is sent before that subscription's first notification;
 * - the error codes and messages of the real node; a frame that is not JSON gets -32700 and the
 *   socket is closed, ending every subscription on it;
 * - subscriptions end with their connection.
 */
import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import { checkAddress, encodeAddress } from '../../dpow/address.ts';
import { parseBoundedJson } from '../bounded-json.ts';
import { keepFrame, MAX_FRAME_BYTES, SimSocketServer } from './sim-socket.ts';
import type { QlcBlock, QlcPending } from '../feeds/qlc-wire.ts';

type Namespace = 'ledger' | 'pov';
type SubName = 'newBlock' | 'newAccountBlock' | 'balanceChange' | 'newPending';

/** Subscriptions per namespace and how many address arguments they take. */
const SUBSCRIPTIONS: Record<Namespace, Partial<Record<SubName, number>>> = {
  ledger: { newBlock: 0, newAccountBlock: 1, balanceChange: 1, newPending: 1 },
  pov: { newBlock: 0 },
};

class RpcFailure extends Error {
  readonly code: number;

  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

interface SimSubscription {
  id: string;
  ns: Namespace;
  name: SubName;
  address?: string;
  socket: WebSocket;
  /** Events waiting to be written; the node's per-subscription buffer. */
  queue: unknown[];
}

type MethodHandler = (params: unknown) => unknown | Promise<unknown>;

export interface QlcSimOptions {
  host?: string;
  port?: number;
  /** Extra RPC methods (e.g. a slow one to show out-of-order replies). */
  methods?: Record<string, MethodHandler>;
  /** Subscription id source; defaults to 16 random bytes like the node. */
  newId?: () => string;
  /** Run the demo block generator. */
  demo?: QlcDemoOptions | boolean;
  /**
   * Events a subscription can have waiting before new ones are dropped (the node's event buffers
   * hold 100). Events are written on the next turn of the event loop, so a burst bigger than
   * this loses its tail, as a busy node does.
   */
  bufferLimit?: number;
}

export interface QlcDemoOptions {
  /** Number of accounts making blocks. */
  accounts?: number;
  /** Milliseconds between blocks. */
  intervalMs?: number;
}

/** gqlc's subscription id: hex of 16 random bytes with leading zeros removed. */
export function qlcSubscriptionId(bytes: Uint8Array = randomBytes(16)): string {
  const hex = Buffer.from(bytes).toString('hex').replace(/^0+/, '');
  return `0x${hex === '' ? '0' : hex}`;
}

const randomHash = () => randomBytes(32).toString('hex');
export const QLC_TOKEN = 'a7e8fa30c063e96a489a47bc43909505bd86735da4a109dca28be936118a8582';

interface DemoChain {
  address: string;
  publicKey: string;
  token: string;
  frontier: string;
  balance: bigint;
}

export class QlcSim {
  /** Frames received, parsed (or the raw text for unparseable ones), in order: the latest KEPT_FRAMES. */
  readonly requests: unknown[] = [];

  readonly #methods: Record<string, MethodHandler>;
  readonly #newId: () => string;
  readonly #bufferLimit: number;
  readonly #subs = new Map<string, SimSubscription>();
  /** The last blocks emitted, for replay(). */
  readonly #history: QlcBlock[] = [];
  readonly #sockets = new Set<WebSocket>();
  readonly #server: SimSocketServer;
  /** Demo accounts (demo mode). */
  readonly #chains: DemoChain[] = [];
  #demoTimer: NodeJS.Timeout | undefined;
  #dropped = 0;

  /** Starts the node; resolves once it listens (and, in demo mode, makes blocks from then on). */
  static async start(options: QlcSimOptions = {}): Promise<QlcSim> {
    const sim = new QlcSim(options);
    await sim.#server.listen(options);
    if (options.demo) sim.#startDemo(options.demo === true ? {} : options.demo);
    return sim;
  }

  private constructor(options: QlcSimOptions) {
    this.#methods = options.methods ?? {};
    this.#newId = options.newId ?? (() => qlcSubscriptionId());
    this.#bufferLimit = options.bufferLimit ?? 100;
    this.#server = new SimSocketServer((socket) => this.#onConnection(socket));
  }

  get url(): string {
    return this.#server.url;
  }

  get port(): number {
    return this.#server.port;
  }

  /** Live subscriptions across connections. */
  subscriptions(): { id: string; ns: string; name: string; address?: string }[] {
    return [...this.#subs.values()].map((s) => ({ id: s.id, ns: s.ns, name: s.name, ...(s.address ? { address: s.address } : {}) }));
  }

  connections(): number {
    return this.#sockets.size;
  }

  /** Publishes a ledger block to newBlock and matching newAccountBlock/balanceChange subscribers. */
  emitBlock(block: QlcBlock): number {
    return this.#emitBlock(block, true);
  }

  emitPending(address: string, pending: QlcPending): number {
    return this.#notify((s) => s.ns === 'ledger' && s.name === 'newPending' && s.address === address, pending);
  }

  emitPovBlock(header: { hash: string; previous: string; height: number }): number {
    return this.#notify((s) => s.ns === 'pov' && s.name === 'newBlock', {
      basHdr: { version: 536871936, previous: header.previous, merkleRoot: randomHash(), timestamp: Math.floor(Date.now() / 1000), bits: 504365052, nonce: 0, hash: header.hash, height: header.height },
    });
  }

  /** Sends a raw notification (any shape) on every subscription of a name: for malformed-input tests. */
  emitRaw(ns: Namespace, name: SubName, result: unknown): number {
    return this.#notify((s) => s.ns === ns && s.name === name, result);
  }

  /** Events dropped because a subscription's buffer was full. */
  dropped(): number {
    return this.#dropped;
  }

  /** Sends the last `count` blocks again, as a node does when it re-syncs. */
  replay(count = this.#history.length): number {
    let sent = 0;
    for (const block of this.#history.slice(-count)) sent += this.#emitBlock(block, false);
    return sent;
  }

  /** Closes every client connection (their subscriptions end). */
  dropConnections(): void {
    for (const socket of this.#sockets) socket.terminate();
  }

  /** Demo accounts and their chains' last hashes (demo mode). */
  demoChains(): { address: string; token: string; frontier: string }[] {
    return this.#chains.map((c) => ({ address: c.address, token: c.token, frontier: c.frontier }));
  }

  /** Its socket server ends every connection; closing twice is harmless there. */
  close(): Promise<void> {
    clearInterval(this.#demoTimer);
    return this.#server.close();
  }

  #onConnection(socket: WebSocket): void {
    this.#sockets.add(socket);
    socket.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString();
      // Bounded as the real surfaces bound it: a deep frame is refused before anything walks it.
      const parsed = isBinary ? undefined : parseBoundedJson(text, { maxBytes: MAX_FRAME_BYTES });
      if (!parsed?.ok) {
        keepFrame(this.requests, text);
        const ch = text.trim()[0] ?? '';
        const message = ch ? `invalid character '${ch}' looking for beginning of value` : 'unexpected end of JSON input';
        // The node answers the parse error and then gives up on the connection.
        send(socket, errorReply(null, -32700, message));
        socket.close(1000);
        return;
      }
      const msg = parsed.value;
      keepFrame(this.requests, msg);
      if (Array.isArray(msg)) {
        if (msg.length === 0) {
          send(socket, errorReply(null, -32600, 'empty batch'));
          return;
        }
        void Promise.all(msg.map((m) => this.#dispatch(socket, m))).then((results) => {
          const replies = results.filter((r) => r.reply !== undefined).map((r) => r.reply);
          if (replies.length > 0) send(socket, replies);
          for (const r of results) r.after?.();
        });
        return;
      }
      void this.#dispatch(socket, msg).then(({ reply, after }) => {
        if (reply !== undefined) send(socket, reply);
        after?.();
      });
    });
    socket.on('close', () => {
      this.#sockets.delete(socket);
      for (const [id, sub] of this.#subs) if (sub.socket === socket) this.#subs.delete(id);
    });
    socket.on('error', () => {});
  }

  async #dispatch(socket: WebSocket, msg: unknown): Promise<{ reply?: unknown; after?: () => void }> {
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      return { reply: errorReply(null, -32600, 'invalid request') };
    }
    const req = msg as Record<string, unknown>;
    const id = req.id;
    const isCall = id !== undefined;
    if (typeof req.method !== 'string') return { reply: errorReply(isCall ? id : null, -32600, 'invalid request') };
    const method = req.method;
    try {
      const [ns, fn] = method.split('_', 2) as [string, string | undefined];
      if ((ns === 'ledger' || ns === 'pov') && fn === 'subscribe') {
        if (!isCall) return {};
        const sub = this.#subscribe(socket, ns, req.params);
        // The reply goes out first; only then is the subscription live.
        return { reply: { jsonrpc: '2.0', id, result: sub.id }, after: () => this.#subs.set(sub.id, sub) };
      }
      if ((ns === 'ledger' || ns === 'pov') && fn === 'unsubscribe') {
        const args = positional(req.params);
        if (args.length === 0 || typeof args[0] !== 'string') {
          throw new RpcFailure(-32602, 'expected subscription id as first argument');
        }
        const sub = this.#subs.get(args[0]);
        if (!sub || sub.socket !== socket || sub.ns !== ns) throw new RpcFailure(-32000, 'subscription not found');
        this.#subs.delete(sub.id);
        return isCall ? { reply: { jsonrpc: '2.0', id, result: true } } : {};
      }
      const handler = this.#methods[method];
      if (!handler) throw new RpcFailure(-32601, `the method ${method} does not exist/is not available`);
      const result = await handler(req.params);
      return isCall ? { reply: { jsonrpc: '2.0', id, result: result ?? null } } : {};
    } catch (err) {
      if (!isCall) return {};
      if (err instanceof RpcFailure) return { reply: errorReply(id, err.code, err.message) };
      return { reply: errorReply(id, -32000, (err as Error).message) };
    }
  }

  #subscribe(socket: WebSocket, ns: Namespace, params: unknown): SimSubscription {
    const args = positional(params);
    if (args.length === 0 || typeof args[0] !== 'string') {
      throw new RpcFailure(-32602, 'expected subscription name as first argument');
    }
    const name = args[0];
    const want = SUBSCRIPTIONS[ns][name as SubName];
    if (want === undefined) throw new RpcFailure(-32601, `no "${name}" subscription in ${ns} namespace`);
    const rest = args.slice(1);
    if (rest.length > want) throw new RpcFailure(-32602, `too many arguments, want at most ${want}`);
    if (rest.length < want) throw new RpcFailure(-32602, `missing value for required argument ${rest.length + 1}`);
    const sub: SimSubscription = { id: this.#newId(), ns, name: name as SubName, socket, queue: [] };
    if (want === 1) sub.address = checkAddressArg(rest[0], 1);
    return sub;
  }

  #flush(sub: SimSubscription): void {
    const queued = sub.queue;
    sub.queue = [];
    if (this.#subs.get(sub.id) !== sub) return; // unsubscribed or its connection ended meanwhile
    for (const result of queued) {
      send(sub.socket, { jsonrpc: '2.0', method: `${sub.ns}_subscription`, params: { subscription: sub.id, result } });
    }
  }

  /** Queues an event for every matching subscription; returns how many took it. */
  #notify(match: (s: SimSubscription) => boolean, result: unknown): number {
    let queued = 0;
    for (const sub of this.#subs.values()) {
      if (!match(sub)) continue;
      if (sub.queue.length >= this.#bufferLimit) {
        this.#dropped++;
        continue;
      }
      if (sub.queue.length === 0) setImmediate(() => this.#flush(sub));
      sub.queue.push(result);
      queued++;
    }
    return queued;
  }

  #emitBlock(block: QlcBlock, remember: boolean): number {
    if (remember) {
      this.#history.push(block);
      if (this.#history.length > 1000) this.#history.shift();
    }
    let sent = this.#notify((s) => s.ns === 'ledger' && s.name === 'newBlock', block);
    sent += this.#notify((s) => s.ns === 'ledger' && s.name === 'newAccountBlock' && s.address === block.address, block);
    if (block.balance !== undefined) {
      const info = {
        account: block.address,
        coinBalance: block.balance,
        vote: '0',
        network: '0',
        storage: '0',
        oracle: '0',
        tokens: [{ type: block.token, header: block.hash ?? block.previous, representative: block.representative ?? block.address, open: block.hash ?? block.previous, balance: block.balance, account: block.address, modified: Math.floor(Date.now() / 1000), blockCount: 1 }],
      };
      sent += this.#notify((s) => s.ns === 'ledger' && s.name === 'balanceChange' && s.address === block.address, info);
    }
    return sent;
  }

  // ---------------------------------------------------------------- demo mode

  #startDemo(demo: QlcDemoOptions): void {
    const chains = this.#chains;
    const count = Math.max(2, demo.accounts ?? 4);
    for (let i = 0; i < count; i++) {
      const publicKey = randomHash();
      chains.push({ address: encodeAddress(publicKey, 'qlc'), publicKey, token: QLC_TOKEN, frontier: randomHash(), balance: 10n ** 12n });
    }
    this.#demoTimer = setInterval(() => {
      const from = chains[Math.floor(Math.random() * chains.length)];
      const to = chains.filter((c) => c !== from)[Math.floor(Math.random() * (chains.length - 1))];
      const amount = BigInt(1 + Math.floor(Math.random() * 1000)) * 10n ** 6n;
      const sent = demoBlock(from, from.balance - amount, to.publicKey, amount);
      this.emitBlock(sent);
      const receive = demoBlock(to, to.balance + amount, sent.hash as string, amount);
      setTimeout(() => this.emitBlock(receive), Math.min(200, (demo.intervalMs ?? 2000) / 2)).unref();
    }, demo.intervalMs ?? 2000);
    this.#demoTimer.unref();
  }
}

/** The next block of a demo chain, which it becomes the frontier of. */
function demoBlock(chain: DemoChain, balance: bigint, link: string, amount: bigint): QlcBlock {
  const block: QlcBlock = {
    type: 'State',
    token: chain.token,
    address: chain.address,
    balance: balance.toString(),
    previous: chain.frontier,
    link,
    representative: chain.address,
    work: randomBytes(8).toString('hex'),
    timestamp: Math.floor(Date.now() / 1000),
    povHeight: 0,
    tokenName: 'QLC',
    amount: amount.toString(),
    hash: randomHash(),
  };
  chain.frontier = block.hash as string;
  chain.balance = balance;
  return block;
}

function send(socket: WebSocket, msg: unknown): void {
  if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(msg));
}

function errorReply(id: unknown, code: number, message: string) {
  return { jsonrpc: '2.0', id, error: { code, message } };
}

function positional(params: unknown): unknown[] {
  if (params === undefined || params === null) return [];
  if (!Array.isArray(params)) throw new RpcFailure(-32602, 'non-array args');
  return params;
}

function checkAddressArg(value: unknown, index: number): string {
  const check = checkAddress(value, ['qlc']);
  if (check.ok) return value as string;
  if (typeof value !== 'string') {
    throw new RpcFailure(-32602, `invalid argument ${index}: json: cannot unmarshal ${value === null ? 'null' : typeof value} into Go value of type types.Address`);
  }
  throw new RpcFailure(-32602, `invalid argument ${index}: ${check.code === 'bad-checksum' ? 'bad address checksum' : 'invalid address'}`);
}
