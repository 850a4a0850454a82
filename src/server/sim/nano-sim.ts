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
import type { WebSocket } from 'ws';
import { checkAddress, encodeAddress } from '../../dpow/address.ts';
import { parseBoundedJson } from '../bounded-json.ts';
import { keepFrame, MAX_FRAME_BYTES, SimSocketServer } from './sim-socket.ts';
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

export interface NanoSimOptions {
  host?: string;
  port?: number;
  demo?: { accounts?: number; intervalMs?: number } | boolean;
}

const normalize = (account: string) => account.replace(/^xrb_/, 'nano_');

/** Builds a plausible confirmation for a state block (hash upper-case, every value a string). */
export function nanoConfirmation(
  block: Omit<NanoStateBlock, 'type'> & { subtype: string },
  hash: string,
  amount = '1000000000000000000000000',
): NanoSimConfirmation {
  return { account: block.account, amount, hash: hash.toUpperCase(), confirmation_type: 'active_quorum', block: { type: 'state', ...block } };
}

interface DemoAccount {
  account: string;
  key: string;
  frontier: string;
  balance: bigint;
}

export class NanoSim {
  /** Parsed frames received (raw text for bad JSON), in order, per arrival: the latest KEPT_FRAMES. */
  readonly received: unknown[] = [];

  readonly #sessions = new Set<Session>();
  readonly #server: SimSocketServer;
  /** Demo accounts (demo mode). */
  readonly #demo: DemoAccount[] = [];
  #demoTimer: NodeJS.Timeout | undefined;
  /** Pings and acks go unanswered (a wedged node). */
  #silent = false;

  /** Starts the node; resolves once it listens (and, in demo mode, confirms blocks from then on). */
  static async start(options: NanoSimOptions = {}): Promise<NanoSim> {
    const sim = new NanoSim();
    await sim.#server.listen(options);
    if (options.demo) sim.#startDemo(options.demo === true ? {} : options.demo);
    return sim;
  }

  private constructor() {
    this.#server = new SimSocketServer((socket) => this.#onConnection(socket));
  }

  get url(): string {
    return this.#server.url;
  }

  get port(): number {
    return this.#server.port;
  }

  sessions(): { subscribed: boolean; accounts: string[] | 'all'; deaf: boolean }[] {
    return [...this.#sessions].map((s) => ({ subscribed: s.subscribed, accounts: s.accounts ? [...s.accounts] : ('all' as const), deaf: s.deaf }));
  }

  /** Sends a confirmation to every subscribed session whose filter matches. Returns how many. */
  confirm(c: NanoSimConfirmation): number {
    const frame = {
      topic: 'confirmation',
      time: String(Date.now()),
      message: { account: c.account, amount: c.amount, hash: c.hash, confirmation_type: c.confirmation_type ?? 'active_quorum', block: c.block },
    };
    const involved = [normalize(c.account)];
    if (c.block.subtype === 'send' && c.block.link_as_account) involved.push(normalize(c.block.link_as_account));
    let sent = 0;
    for (const s of this.#sessions) {
      if (!s.subscribed) continue;
      if (s.accounts && !involved.some((a) => s.accounts!.has(a))) continue;
      send(s, frame);
      sent++;
    }
    return sent;
  }

  /** Sends any frame to every session (for malformed-input tests). */
  sendRaw(text: string): void {
    for (const s of this.#sessions) send(s, text);
  }

  /** Stops answering pings (the node is wedged) while still accepting connections. */
  setSilent(silent: boolean): void {
    this.#silent = silent;
  }

  dropConnections(): void {
    for (const s of this.#sessions) s.socket.terminate();
  }

  demoAccounts(): { account: string; frontier: string }[] {
    return this.#demo.map((d) => ({ account: d.account, frontier: d.frontier }));
  }

  /** Its socket server ends every connection; closing twice is harmless there. */
  close(): Promise<void> {
    clearInterval(this.#demoTimer);
    return this.#server.close();
  }

  #onConnection(socket: WebSocket): void {
    const session: Session = { socket, subscribed: false, accounts: undefined, deaf: false };
    this.#sessions.add(session);
    socket.on('message', (data) => this.#onFrame(session, data.toString()));
    socket.on('close', () => this.#sessions.delete(session));
    socket.on('error', () => {});
  }

  #onFrame(session: Session, text: string): void {
    if (session.deaf) {
      keepFrame(this.received, text);
      return;
    }
    // Bounded as the real surfaces bound it: a deep frame is refused before anything walks it.
    const parsed = parseBoundedJson(text, { maxBytes: MAX_FRAME_BYTES });
    if (!parsed.ok) {
      keepFrame(this.received, text);
      session.deaf = true;
      return;
    }
    const frame = parsed.value;
    keepFrame(this.received, frame);
    if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) return;
    const f = frame as Record<string, unknown>;
    const opts = (typeof f.options === 'object' && f.options !== null ? f.options : {}) as Record<string, unknown>;
    switch (f.action) {
      case 'ping':
        if (!this.#silent) send(session, { ack: 'pong', time: String(Date.now()) });
        return;
      case 'subscribe':
        if (f.topic !== 'confirmation') return;
        session.subscribed = true;
        session.accounts = Array.isArray(opts.accounts) && opts.accounts.length > 0 ? new Set(accountList(opts.accounts)) : undefined;
        this.#ack(session, 'subscribe', f);
        return;
      case 'update':
        if (f.topic !== 'confirmation' || !session.subscribed) return;
        session.accounts ??= new Set();
        for (const a of accountList(opts.accounts_add)) session.accounts.add(a);
        for (const a of accountList(opts.accounts_del)) session.accounts.delete(a);
        this.#ack(session, 'update', f);
        return;
      case 'unsubscribe':
        if (f.topic !== 'confirmation') return;
        session.subscribed = false;
        session.accounts = undefined;
        this.#ack(session, 'unsubscribe', f);
        return;
      default:
        return;
    }
  }

  #ack(s: Session, action: string, frame: Record<string, unknown>): void {
    if (!this.#silent && frame.ack === true) send(s, { ack: action, time: String(Date.now()) });
  }

  // ---------------------------------------------------------------- demo mode

  #startDemo(d: { accounts?: number; intervalMs?: number }): void {
    const demo = this.#demo;
    for (let i = 0; i < Math.max(2, d.accounts ?? 4); i++) {
      const key = randomBytes(32).toString('hex').toUpperCase();
      demo.push({ account: encodeAddress(key, 'nano'), key, frontier: randomBytes(32).toString('hex').toUpperCase(), balance: 10n ** 33n });
    }
    const intervalMs = d.intervalMs ?? 2000;
    this.#demoTimer = setInterval(() => {
      const from = demo[Math.floor(Math.random() * demo.length)];
      const others = demo.filter((x) => x !== from);
      const to = others[Math.floor(Math.random() * others.length)];
      const amount = BigInt(1 + Math.floor(Math.random() * 1000)) * 10n ** 27n;
      const sendHash = randomBytes(32).toString('hex').toUpperCase();
      from.balance -= amount;
      this.confirm(
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
        this.confirm(
          nanoConfirmation(
            { account: to.account, previous: to.frontier, representative: to.account, balance: to.balance.toString(), link: sendHash, link_as_account: encodeAddress(sendHash, 'nano'), work: randomBytes(8).toString('hex'), signature: randomBytes(64).toString('hex').toUpperCase(), subtype: 'receive' },
            receiveHash,
            amount.toString(),
          ),
        );
        to.frontier = receiveHash;
      }, Math.min(200, intervalMs / 2)).unref();
    }, intervalMs);
    this.#demoTimer.unref();
  }
}

function send(s: Session, msg: unknown): void {
  if (s.socket.readyState === s.socket.OPEN) s.socket.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
}

function accountList(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((a): a is string => typeof a === 'string' && checkAddress(a, ['nano', 'xrb']).ok).map(normalize) : [];
}
