/**
 * Test helper, never imported by the product: a Nano node's RPC over real HTTP, for the actions
 * a payout uses, answering as the node's RPC is documented and as its json_handler answers:
 *
 *   account_balance          {balance, pending, receivable}; 0 for an unopened account
 *   account_info             {frontier, open_block, balance, block_count, …}; "Account not found"
 *   validate_account_number  {valid: "1" | "0"}
 *   block_info               {block_account, amount, balance, height, confirmed: "true"|"false", subtype, …}
 *   send                     {block}: with an `id`, a repeated id answers the first block and
 *                            moves no funds; checks in the node's order: wallet ("Bad wallet
 *                            number", "Wallet not found"), amount ("Invalid amount number"),
 *                            source ("Bad source"), destination ("Bad destination account"),
 *                            "Wallet is locked", "Account not found in wallet", "Account not
 *                            found" (unopened source), then the id, then "Insufficient balance"
 *
 * Errors are HTTP 200 with {"error": text}, as the node sends them; an unknown action is
 * "Unknown command" and a body that is not JSON "Unable to parse JSON".
 *
 * It keeps its own book: each account's balance and receivable, every block. A send takes the
 * amount from the source's balance and adds it to the destination's receivable, so a test can
 * assert that the source lost exactly what was paid and each volunteer got exactly their share.
 *
 * Faults, for the exactly-once tests: down()/up() (connection refused for a while), holdSends(n)
 * (the next n sends are booked and their answers withheld: a timeout after the node sent),
 * failNext (one error answer), onBooked (a hook at the moment a send is booked, e.g. to kill the
 * payer there), delayMs before every answer.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkAddress, encodeAddress, NANO_PREFIXES } from '../dpow/address.ts';
import { MAX_RAW } from '../dpow/nano-amount.ts';

export interface BookedBlock {
  hash: string;
  source: string;
  destination: string;
  amount: bigint;
  /** The source's balance after it. */
  balance: bigint;
  height: number;
  id?: string;
  confirmed: boolean;
  at: number;
}

interface Account {
  balance: bigint;
  receivable: bigint;
  /** Opened: it has blocks of its own (its open block and after). */
  opened: boolean;
  frontier: string;
  openBlock: string;
  blockCount: number;
}

type Reply = Record<string, unknown>;

const hex64 = () => randomBytes(32).toString('hex').toUpperCase();
/** The node writes account keys with the nano_ prefix; xrb_ names the same account. */
const key = (account: string) => account.replace(/^xrb_/, 'nano_');

export class NanoNodeDouble {
  readonly #accounts = new Map<string, Account>();
  readonly #wallets = new Map<string, { locked: boolean; accounts: Set<string> }>();
  readonly #ids = new Map<string, string>();
  readonly blocks = new Map<string, BookedBlock>();
  /** Every request, in order, by action (sends repeated with the same id included). */
  readonly requests: { action: string; body: Reply }[] = [];
  /** Blocks are confirmed as they are made (a quiet test network) unless set to false. */
  autoConfirm = true;
  /** Waited before every answer. */
  delayMs = 0;
  /** Called when a send has been booked, before its answer goes out. */
  onBooked?: (block: BookedBlock) => void;
  #held = 0;
  readonly #heldResponses: (() => void)[] = [];
  readonly #failures: { action: string; error: string }[] = [];
  #server: http.Server;
  #port = 0;
  readonly #sockets = new Set<import('node:net').Socket>();

  private constructor() {
    this.#server = this.#makeServer();
  }

  static async start(): Promise<NanoNodeDouble> {
    const node = new NanoNodeDouble();
    await node.up();
    return node;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}/`;
  }

  // ------------------------------------------------------------ the book

  /** A new opened account holding `balance` raw (a fresh key unless one is given). */
  openAccount(balance: bigint, account = encodeAddress(randomBytes(32))): string {
    const open = hex64();
    this.#accounts.set(key(account), { balance, receivable: 0n, opened: true, frontier: open, openBlock: open, blockCount: 1 });
    return account;
  }

  /** A wallet holding `accounts`; returns its id (64 hex). */
  createWallet(accounts: string[]): string {
    const id = hex64();
    this.#wallets.set(id, { locked: false, accounts: new Set(accounts.map(key)) });
    return id;
  }

  lockWallet(id: string, locked: boolean): void {
    this.#wallets.get(id)!.locked = locked;
  }

  balance(account: string): bigint {
    return this.#accounts.get(key(account))?.balance ?? 0n;
  }

  /** Raw sent to the account and not yet received. */
  receivable(account: string): bigint {
    return this.#accounts.get(key(account))?.receivable ?? 0n;
  }

  /** Sets an account's balance (another wallet spent from it, or the operator topped it up). */
  setBalance(account: string, balance: bigint): void {
    this.#accounts.get(key(account))!.balance = balance;
  }

  blockForId(id: string): BookedBlock | undefined {
    const hash = this.#ids.get(id);
    return hash ? this.blocks.get(hash) : undefined;
  }

  confirm(hash: string): void {
    this.blocks.get(hash)!.confirmed = true;
  }

  // ------------------------------------------------------------ faults

  /** The next `n` sends are booked, then their answers withheld until releaseHeld(). */
  holdSends(n: number): void {
    this.#held = n;
  }

  /** Answers withheld so far go out (to a caller that may have given up). */
  releaseHeld(): void {
    for (const answer of this.#heldResponses.splice(0)) answer();
  }

  /** The next call of `action` answers {"error": error} and changes nothing. */
  failNext(action: string, error: string): void {
    this.#failures.push({ action, error });
  }

  /** Stops listening: callers get connection refused until up(). */
  async down(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    await closed;
    this.#server = this.#makeServer();
  }

  /** Listens (again, on the same port once it has one). */
  async up(): Promise<void> {
    if (this.#server.listening) return;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.releaseHeld();
    await this.down();
  }

  // ------------------------------------------------------------ RPC

  #makeServer(): http.Server {
    const server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        const { reply, hold } = this.#handle(body);
        const answer = () => {
          if (res.destroyed) return;
          const text = JSON.stringify(reply, null, 4);
          res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }).end(text);
        };
        if (hold) this.#heldResponses.push(answer);
        else if (this.delayMs > 0) setTimeout(answer, this.delayMs);
        else answer();
      });
    });
    server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    return server;
  }

  #handle(text: string): { reply: Reply; hold?: boolean } {
    let body: Reply;
    try {
      body = JSON.parse(text) as Reply;
      if (typeof body !== 'object' || body === null) throw new Error('not an object');
    } catch {
      return { reply: { error: 'Unable to parse JSON' } };
    }
    const action = String(body.action);
    this.requests.push({ action, body });
    const failure = this.#failures.findIndex((f) => f.action === action);
    if (failure >= 0) return { reply: { error: this.#failures.splice(failure, 1)[0].error } };
    switch (action) {
      case 'account_balance':
        return { reply: this.#accountBalance(body) };
      case 'account_info':
        return { reply: this.#accountInfo(body) };
      case 'validate_account_number':
        return { reply: { valid: this.#account(body.account) ? '1' : '0' } };
      case 'block_info':
        return { reply: this.#blockInfo(body) };
      case 'send':
        return this.#send(body);
      default:
        return { reply: { error: 'Unknown command' } };
    }
  }

  #account(text: unknown): string | undefined {
    return typeof text === 'string' && checkAddress(text, NANO_PREFIXES).ok ? key(text) : undefined;
  }

  #accountBalance(body: Reply): Reply {
    const account = this.#account(body.account);
    if (!account) return { error: 'Bad account number' };
    const a = this.#accounts.get(account);
    const receivable = (a?.receivable ?? 0n).toString();
    return { balance: (a?.balance ?? 0n).toString(), pending: receivable, receivable };
  }

  #accountInfo(body: Reply): Reply {
    const account = this.#account(body.account);
    if (!account) return { error: 'Bad account number' };
    const a = this.#accounts.get(account);
    if (!a?.opened) return { error: 'Account not found' };
    return {
      frontier: a.frontier,
      open_block: a.openBlock,
      representative_block: a.openBlock,
      balance: a.balance.toString(),
      modified_timestamp: String(Math.floor(Date.now() / 1000)),
      block_count: String(a.blockCount),
      account_version: '2',
      confirmation_height: String(a.blockCount),
      confirmation_height_frontier: a.frontier,
    };
  }

  #blockInfo(body: Reply): Reply {
    if (typeof body.hash !== 'string' || !/^[0-9A-Fa-f]{64}$/.test(body.hash)) return { error: 'Invalid block hash' };
    const b = this.blocks.get(body.hash.toUpperCase());
    if (!b) return { error: 'Block not found' };
    return {
      block_account: b.source,
      amount: b.amount.toString(),
      balance: b.balance.toString(),
      height: String(b.height),
      local_timestamp: String(Math.floor(b.at / 1000)),
      successor: '0'.repeat(64),
      confirmed: b.confirmed ? 'true' : 'false',
      contents: JSON.stringify({ type: 'state', account: b.source, balance: b.balance.toString(), link_as_account: b.destination }),
      subtype: 'send',
    };
  }

  #send(body: Reply): { reply: Reply; hold?: boolean } {
    const walletId = typeof body.wallet === 'string' && /^[0-9A-Fa-f]{64}$/.test(body.wallet) ? body.wallet.toUpperCase() : undefined;
    if (!walletId) return { reply: { error: 'Bad wallet number' } };
    const wallet = this.#wallets.get(walletId);
    if (!wallet) return { reply: { error: 'Wallet not found' } };
    const amountText = body.amount;
    const amount = typeof amountText === 'string' && /^\d{1,39}$/.test(amountText) ? BigInt(amountText) : undefined;
    if (amount === undefined || amount === 0n || amount > MAX_RAW) return { reply: { error: 'Invalid amount number' } };
    const source = this.#account(body.source);
    if (!source) return { reply: { error: 'Bad source' } };
    const destination = this.#account(body.destination);
    if (!destination) return { reply: { error: 'Bad destination account' } };
    if (wallet.locked) return { reply: { error: 'Wallet is locked' } };
    if (!wallet.accounts.has(source)) return { reply: { error: 'Account not found in wallet' } };
    const from = this.#accounts.get(source);
    if (!from?.opened) return { reply: { error: 'Account not found' } };
    const id = typeof body.id === 'string' ? body.id : undefined;
    const known = id !== undefined ? this.#ids.get(id) : undefined;
    if (known) return { reply: { block: known } };
    if (from.balance < amount) return { reply: { error: 'Insufficient balance' } };

    from.balance -= amount;
    from.blockCount += 1;
    const hash = hex64();
    from.frontier = hash;
    const to = this.#accounts.get(destination) ?? { balance: 0n, receivable: 0n, opened: false, frontier: '', openBlock: '', blockCount: 0 };
    to.receivable += amount;
    this.#accounts.set(destination, to);
    const block: BookedBlock = { hash, source, destination, amount, balance: from.balance, height: from.blockCount, confirmed: this.autoConfirm, at: Date.now(), ...(id !== undefined ? { id } : {}) };
    this.blocks.set(hash, block);
    if (id !== undefined) this.#ids.set(id, hash);
    this.onBooked?.(block);
    const hold = this.#held > 0;
    if (hold) this.#held -= 1;
    return { reply: { block: hash }, hold };
  }

  /** Every block that moved funds to `destination`. */
  paidTo(destination: string): BookedBlock[] {
    return [...this.blocks.values()].filter((b) => b.destination === key(destination));
  }
}
