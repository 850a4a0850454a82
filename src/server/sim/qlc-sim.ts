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
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { checkAddress, encodeAddress } from '../../dpow/address.ts';
import { parseBoundedJson } from '../bounded-json.ts';
import type { QlcBlock, QlcPending } from '../feeds/qlc-wire.ts';

type Namespace = 'ledger' | 'pov';
type SubName = 'newBlock' | 'newAccountBlock' | 'balanceChange' | 'newPending';

/** Subscriptions per namespace and how many address arguments they take. */
const SUBSCRIPTIONS: Record<Namespace, Partial<Record<SubName, number>>> = {
  ledger: { newBlock: 0, newAccountBlock: 1, balanceChange: 1, newPending: 1 },
  pov: { newBlock: 0 },
};

class RpcFailure extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
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

export interface QlcSim {
  url: string;
  port: number;
  /** Frames received, parsed (or the raw text for unparseable ones), in order. */
  readonly requests: unknown[];
  /** Live subscriptions across connections. */
  subscriptions(): { id: string; ns: string; name: string; address?: string }[];
  connections(): number;
  /** Publishes a ledger block to newBlock and matching newAccountBlock/balanceChange subscribers. */
  emitBlock(block: QlcBlock): number;
  emitPending(address: string, pending: QlcPending): number;
  emitPovBlock(header: { hash: string; previous: string; height: number }): number;
  /** Sends a raw notification (any shape) on every subscription of a name: for malformed-input tests. */
  emitRaw(ns: Namespace, name: SubName, result: unknown): number;
  /** Events dropped because a subscription's buffer was full. */
  dropped(): number;
  /** Sends the last `count` blocks again, as a node does when it re-syncs. */
  replay(count?: number): number;
  /** Closes every client connection (their subscriptions end). */
  dropConnections(): void;
  /** Demo accounts and their chains' last hashes (demo mode). */
  demoChains(): { address: string; token: string; frontier: string }[];
  close(): Promise<void>;
}

/** gqlc's subscription id: hex of 16 random bytes with leading zeros removed. */
export function qlcSubscriptionId(bytes: Uint8Array = randomBytes(16)): string {
  const hex = Buffer.from(bytes).toString('hex').replace(/^0+/, '');
  return `0x${hex === '' ? '0' : hex}`;
}

const randomHash = () => randomBytes(32).toString('hex');
/** Largest request frame the simulated node reads (the real one takes far less). */
const MAX_FRAME_BYTES = 1024 * 1024;
export const QLC_TOKEN = 'a7e8fa30c063e96a489a47bc43909505bd86735da4a109dca28be936118a8582';

export async function startQlcSim(options: QlcSimOptions = {}): Promise<QlcSim> {
  const methods = options.methods ?? {};
  const newId = options.newId ?? (() => qlcSubscriptionId());
  const subs = new Map<string, SimSubscription>();
  const requests: unknown[] = [];
  const history: QlcBlock[] = [];
  const sockets = new Set<WebSocket>();

  const http: Server = createServer((_req, res) => {
    res.writeHead(400).end('websocket only');
  });
  const wss = new WebSocketServer({ server: http, maxPayload: MAX_FRAME_BYTES });

  const send = (socket: WebSocket, msg: unknown) => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(msg));
  };
  const errorReply = (id: unknown, code: number, message: string) => ({ jsonrpc: '2.0', id, error: { code, message } });

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

  function subscribe(socket: WebSocket, ns: Namespace, params: unknown): SimSubscription {
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
    const sub: SimSubscription = { id: newId(), ns, name: name as SubName, socket, queue: [] };
    if (want === 1) sub.address = checkAddressArg(rest[0], 1);
    return sub;
  }

  async function dispatch(socket: WebSocket, msg: unknown): Promise<{ reply?: unknown; after?: () => void }> {
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
        const sub = subscribe(socket, ns, req.params);
        // The reply goes out first; only then is the subscription live.
        return { reply: { jsonrpc: '2.0', id, result: sub.id }, after: () => subs.set(sub.id, sub) };
      }
      if ((ns === 'ledger' || ns === 'pov') && fn === 'unsubscribe') {
        const args = positional(req.params);
        if (args.length === 0 || typeof args[0] !== 'string') {
          throw new RpcFailure(-32602, 'expected subscription id as first argument');
        }
        const sub = subs.get(args[0]);
        if (!sub || sub.socket !== socket || sub.ns !== ns) throw new RpcFailure(-32000, 'subscription not found');
        subs.delete(sub.id);
        return isCall ? { reply: { jsonrpc: '2.0', id, result: true } } : {};
      }
      const handler = methods[method];
      if (!handler) throw new RpcFailure(-32601, `the method ${method} does not exist/is not available`);
      const result = await handler(req.params);
      return isCall ? { reply: { jsonrpc: '2.0', id, result: result ?? null } } : {};
    } catch (err) {
      if (!isCall) return {};
      if (err instanceof RpcFailure) return { reply: errorReply(id, err.code, err.message) };
      return { reply: errorReply(id, -32000, (err as Error).message) };
    }
  }

  wss.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString();
      // Bounded as the real surfaces bound it: a deep frame is refused before anything walks it.
      const parsed = isBinary ? undefined : parseBoundedJson(text, { maxBytes: MAX_FRAME_BYTES });
      if (!parsed?.ok) {
        requests.push(text);
        const ch = text.trim()[0] ?? '';
        const message = ch ? `invalid character '${ch}' looking for beginning of value` : 'unexpected end of JSON input';
        // The node answers the parse error and then gives up on the connection.
        send(socket, errorReply(null, -32700, message));
        socket.close(1000);
        return;
      }
      const msg = parsed.value;
      requests.push(msg);
      if (Array.isArray(msg)) {
        if (msg.length === 0) {
          send(socket, errorReply(null, -32600, 'empty batch'));
          return;
        }
        void Promise.all(msg.map((m) => dispatch(socket, m))).then((results) => {
          const replies = results.filter((r) => r.reply !== undefined).map((r) => r.reply);
          if (replies.length > 0) send(socket, replies);
          for (const r of results) r.after?.();
        });
        return;
      }
      void dispatch(socket, msg).then(({ reply, after }) => {
        if (reply !== undefined) send(socket, reply);
        after?.();
      });
    });
    socket.on('close', () => {
      sockets.delete(socket);
      for (const [id, sub] of subs) if (sub.socket === socket) subs.delete(id);
    });
    socket.on('error', () => {});
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (http.address() as AddressInfo).port;

  const bufferLimit = options.bufferLimit ?? 100;
  let dropped = 0;
  const flush = (sub: SimSubscription) => {
    const queued = sub.queue;
    sub.queue = [];
    if (subs.get(sub.id) !== sub) return; // unsubscribed or its connection ended meanwhile
    for (const result of queued) {
      send(sub.socket, { jsonrpc: '2.0', method: `${sub.ns}_subscription`, params: { subscription: sub.id, result } });
    }
  };
  /** Queues an event for every matching subscription; returns how many took it. */
  const notify = (match: (s: SimSubscription) => boolean, result: unknown): number => {
    let queued = 0;
    for (const sub of subs.values()) {
      if (!match(sub)) continue;
      if (sub.queue.length >= bufferLimit) {
        dropped++;
        continue;
      }
      if (sub.queue.length === 0) setImmediate(() => flush(sub));
      sub.queue.push(result);
      queued++;
    }
    return queued;
  };

  function emitBlock(block: QlcBlock, remember = true): number {
    if (remember) {
      history.push(block);
      if (history.length > 1000) history.shift();
    }
    let sent = notify((s) => s.ns === 'ledger' && s.name === 'newBlock', block);
    sent += notify((s) => s.ns === 'ledger' && s.name === 'newAccountBlock' && s.address === block.address, block);
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
      sent += notify((s) => s.ns === 'ledger' && s.name === 'balanceChange' && s.address === block.address, info);
    }
    return sent;
  }

  // ---------------------------------------------------------------- demo mode
  interface DemoChain {
    address: string;
    publicKey: string;
    token: string;
    frontier: string;
    balance: bigint;
  }
  const chains: DemoChain[] = [];
  let demoTimer: NodeJS.Timeout | undefined;
  function startDemo(demo: QlcDemoOptions): void {
    const count = Math.max(2, demo.accounts ?? 4);
    for (let i = 0; i < count; i++) {
      const publicKey = randomHash();
      chains.push({ address: encodeAddress(publicKey, 'qlc'), publicKey, token: QLC_TOKEN, frontier: randomHash(), balance: 10n ** 12n });
    }
    demoTimer = setInterval(() => {
      const from = chains[Math.floor(Math.random() * chains.length)];
      const to = chains.filter((c) => c !== from)[Math.floor(Math.random() * (chains.length - 1))];
      const amount = BigInt(1 + Math.floor(Math.random() * 1000)) * 10n ** 6n;
      const send = makeBlock(from, from.balance - amount, to.publicKey, amount);
      emitBlock(send);
      const receive = makeBlock(to, to.balance + amount, send.hash as string, amount);
      setTimeout(() => emitBlock(receive), Math.min(200, (demo.intervalMs ?? 2000) / 2)).unref();
    }, demo.intervalMs ?? 2000);
    demoTimer.unref();
  }
  function makeBlock(chain: DemoChain, balance: bigint, link: string, amount: bigint): QlcBlock {
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
  if (options.demo) startDemo(options.demo === true ? {} : options.demo);

  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    requests,
    subscriptions: () =>
      [...subs.values()].map((s) => ({ id: s.id, ns: s.ns, name: s.name, ...(s.address ? { address: s.address } : {}) })),
    connections: () => sockets.size,
    emitBlock: (block) => emitBlock(block),
    emitPending: (address, pending) =>
      notify((s) => s.ns === 'ledger' && s.name === 'newPending' && s.address === address, pending),
    emitPovBlock: (header) =>
      notify((s) => s.ns === 'pov' && s.name === 'newBlock', {
        basHdr: { version: 536871936, previous: header.previous, merkleRoot: randomHash(), timestamp: Math.floor(Date.now() / 1000), bits: 504365052, nonce: 0, hash: header.hash, height: header.height },
      }),
    emitRaw: (ns, name, result) => notify((s) => s.ns === ns && s.name === name, result),
    replay: (count = history.length) => {
      let sent = 0;
      for (const block of history.slice(-count)) sent += emitBlock(block, false);
      return sent;
    },
    dropConnections: () => {
      for (const socket of sockets) socket.terminate();
    },
    dropped: () => dropped,
    demoChains: () => chains.map((c) => ({ address: c.address, token: c.token, frontier: c.frontier })),
    close: async () => {
      clearInterval(demoTimer);
      for (const socket of sockets) socket.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

