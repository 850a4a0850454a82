/**
 * A test node for the Nano node's WebSocket confirmation topic (protocol-notes §4): subscribe with
 * an account filter and ack, update (accounts_add / accounts_del), unsubscribe, ping/pong. A
 * confirmation matches a session's filter when the block's account, or for a send the
 * destination, is in the set; a session subscribed without any accounts gets everything. A frame
 * that is not JSON makes the node stop reading that session: no reply, and nothing it sends
 * afterwards is answered (the session still receives confirmations it was subscribed to).
 *
 * `dpow-web start --feed nano-sim` runs it in demo mode: a few accounts send to each other.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { checkAddress, encodeAddress } from '../../dpow/address.ts';
import { parseBoundedJson } from '../bounded-json.ts';
import type { NanoStateBlock } from '../feeds/nano-wire.ts';

interface Session {
  socket: WebSocket;
  subscribed: boolean;
  /** undefined = no filter (every confirmation). */
  accounts: Set<string> | undefined;
  /** Set after bad JSON: the node no longer reads this session. */
  deaf: boolean;
}

export interface NanoSimConfirmation {
  account: string;
  amount: string;
  hash: string;
  confirmation_type?: string;
  block: NanoStateBlock;
}

export interface NanoSim {
  url: string;
  port: number;
  /** Parsed frames received (raw text for bad JSON), in order, per arrival. */
  readonly received: unknown[];
  sessions(): { subscribed: boolean; accounts: string[] | 'all'; deaf: boolean }[];
  /** Sends a confirmation to every subscribed session whose filter matches. Returns how many. */
  confirm(confirmation: NanoSimConfirmation): number;
  /** Sends any frame to every session (for malformed-input tests). */
  sendRaw(text: string): void;
  /** Stops answering pings (the node is wedged) while still accepting connections. */
  setSilent(silent: boolean): void;
  dropConnections(): void;
  demoAccounts(): { account: string; frontier: string }[];
  close(): Promise<void>;
}

export interface NanoSimOptions {
  host?: string;
  port?: number;
  demo?: { accounts?: number; intervalMs?: number } | boolean;
}

const normalize = (account: string) => account.replace(/^xrb_/, 'nano_');
/** Largest frame the simulated node reads (a subscription with every account fits many times). */
const MAX_FRAME_BYTES = 1024 * 1024;

/** Builds a plausible confirmation for a state block (hash upper-case, every value a string). */
export function nanoConfirmation(
  block: Omit<NanoStateBlock, 'type'> & { subtype: string },
  hash: string,
  amount = '1000000000000000000000000',
): NanoSimConfirmation {
  return { account: block.account, amount, hash: hash.toUpperCase(), confirmation_type: 'active_quorum', block: { type: 'state', ...block } };
}

export async function startNanoSim(options: NanoSimOptions = {}): Promise<NanoSim> {
  const sessions = new Set<Session>();
  const received: unknown[] = [];
  let silent = false;
  const http = createServer((_req, res) => res.writeHead(400).end('websocket only'));
  const wss = new WebSocketServer({ server: http, maxPayload: MAX_FRAME_BYTES });

  const send = (s: Session, msg: unknown) => {
    if (s.socket.readyState === s.socket.OPEN) s.socket.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  };
  const ack = (s: Session, action: string, frame: Record<string, unknown>) => {
    if (frame.ack === true) send(s, { ack: action, time: String(Date.now()) });
  };
  const accountList = (v: unknown): string[] =>
    Array.isArray(v) ? v.filter((a): a is string => typeof a === 'string' && checkAddress(a, ['nano', 'xrb']).ok).map(normalize) : [];

  wss.on('connection', (socket) => {
    const session: Session = { socket, subscribed: false, accounts: undefined, deaf: false };
    sessions.add(session);
    socket.on('message', (data) => {
      const text = data.toString();
      if (session.deaf) {
        received.push(text);
        return;
      }
      // Bounded as the real surfaces bound it: a deep frame is refused before anything walks it.
      const parsed = parseBoundedJson(text, { maxBytes: MAX_FRAME_BYTES });
      if (!parsed.ok) {
        received.push(text);
        session.deaf = true;
        return;
      }
      const frame = parsed.value;
      received.push(frame);
      if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) return;
      const f = frame as Record<string, unknown>;
      const opts = (typeof f.options === 'object' && f.options !== null ? f.options : {}) as Record<string, unknown>;
      switch (f.action) {
        case 'ping':
          if (!silent) send(session, { ack: 'pong', time: String(Date.now()) });
          return;
        case 'subscribe':
          if (f.topic !== 'confirmation') return;
          session.subscribed = true;
          session.accounts = Array.isArray(opts.accounts) && opts.accounts.length > 0 ? new Set(accountList(opts.accounts)) : undefined;
          if (!silent) ack(session, 'subscribe', f);
          return;
        case 'update':
          if (f.topic !== 'confirmation' || !session.subscribed) return;
          session.accounts ??= new Set();
          for (const a of accountList(opts.accounts_add)) session.accounts.add(a);
          for (const a of accountList(opts.accounts_del)) session.accounts.delete(a);
          if (!silent) ack(session, 'update', f);
          return;
        case 'unsubscribe':
          if (f.topic !== 'confirmation') return;
          session.subscribed = false;
          session.accounts = undefined;
          if (!silent) ack(session, 'unsubscribe', f);
          return;
        default:
          return;
      }
    });
    socket.on('close', () => sessions.delete(session));
    socket.on('error', () => {});
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (http.address() as AddressInfo).port;

  function confirm(c: NanoSimConfirmation): number {
    const frame = {
      topic: 'confirmation',
      time: String(Date.now()),
      message: { account: c.account, amount: c.amount, hash: c.hash, confirmation_type: c.confirmation_type ?? 'active_quorum', block: c.block },
    };
    const involved = [normalize(c.account)];
    if (c.block.subtype === 'send' && c.block.link_as_account) involved.push(normalize(c.block.link_as_account));
    let sent = 0;
    for (const s of sessions) {
      if (!s.subscribed) continue;
      if (s.accounts && !involved.some((a) => s.accounts!.has(a))) continue;
      send(s, frame);
      sent++;
    }
    return sent;
  }

  // ---------------------------------------------------------------- demo mode
  const demo: { account: string; key: string; frontier: string; balance: bigint }[] = [];
  let demoTimer: NodeJS.Timeout | undefined;
  if (options.demo) {
    const d = options.demo === true ? {} : options.demo;
    for (let i = 0; i < Math.max(2, d.accounts ?? 4); i++) {
      const key = randomBytes(32).toString('hex').toUpperCase();
      demo.push({ account: encodeAddress(key, 'nano'), key, frontier: randomBytes(32).toString('hex').toUpperCase(), balance: 10n ** 33n });
    }
    const intervalMs = d.intervalMs ?? 2000;
    demoTimer = setInterval(() => {
      const from = demo[Math.floor(Math.random() * demo.length)];
      const others = demo.filter((x) => x !== from);
      const to = others[Math.floor(Math.random() * others.length)];
      const amount = BigInt(1 + Math.floor(Math.random() * 1000)) * 10n ** 27n;
      const sendHash = randomBytes(32).toString('hex').toUpperCase();
      from.balance -= amount;
      confirm(
        nanoConfirmation(
          { account: from.account, previous: from.frontier, representative: from.account, balance: from.balance.toString(), link: to.key, link_as_account: to.account, work: randomBytes(8).toString('hex'), signature: randomBytes(64).toString('hex').toUpperCase(), subtype: 'send' },
          sendHash,
          amount.toString(),
        ),
      );
      from.frontier = sendHash;
      setTimeout(() => {
        const receiveHash = randomBytes(32).toString('hex').toUpperCase();
        to.balance += amount;
        confirm(
          nanoConfirmation(
            { account: to.account, previous: to.frontier, representative: to.account, balance: to.balance.toString(), link: sendHash, link_as_account: encodeAddress(sendHash, 'nano'), work: randomBytes(8).toString('hex'), signature: randomBytes(64).toString('hex').toUpperCase(), subtype: 'receive' },
            receiveHash,
            amount.toString(),
          ),
        );
        to.frontier = receiveHash;
      }, Math.min(200, intervalMs / 2)).unref();
    }, intervalMs);
    demoTimer.unref();
  }

  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    received,
    sessions: () =>
      [...sessions].map((s) => ({ subscribed: s.subscribed, accounts: s.accounts ? [...s.accounts] : ('all' as const), deaf: s.deaf })),
    confirm,
    sendRaw: (text) => {
      for (const s of sessions) send(s, text);
    },
    setSilent: (v) => {
      silent = v;
    },
    dropConnections: () => {
      for (const s of sessions) s.socket.terminate();
    },
    demoAccounts: () => demo.map((d) => ({ account: d.account, frontier: d.frontier })),
    close: async () => {
      clearInterval(demoTimer);
      for (const s of sessions) s.socket.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
