/**
 * Precache from real chains: confirmed blocks of tracked accounts become precache jobs.
 *
 *   node feed --confirmed block H on chain K--> PrecachePolicy --precache(H)--> Dispatcher
 *                                                              --withdraw(old frontier)-->
 *
 * After block H is confirmed, H is the root of chain K's next block, so its work can be computed
 * before the owner asks. Chain keys: Nano = the account; QLC = `${address}:${token}` (a QLC
 * account has one chain per token). When a chain's frontier moves, the job for the old frontier
 * is withdrawn (cancel/precache), so workers stop on work nobody will use.
 *
 * Duplicates are normal: nodes replay blocks when they re-sync and a reconnect can deliver a
 * block twice. A block is dropped when its hash is the chain's current frontier, was seen
 * recently, or is the `previous` of a block already seen (an older block arriving late).
 * Frontiers and each chain's known blocks (`rememberBlock`) are kept in the store, so a restart
 * neither re-precaches the same frontier, nor forgets which job to withdraw, nor lets a replayed
 * old block move the frontier back.
 *
 * Tracked accounts come from configuration, from the dispatcher as it tracks them for service
 * requests (`onTracked`, at once), from `track()`, and from the store (`listTracked`, re-read every
 * `refreshMs` for accounts another process tracked).
 */
import { EventEmitter } from 'node:events';
import { checkAddress, NANO_PREFIXES } from '../../dpow/address.ts';
import { THRESHOLDS } from '../../pow/work.ts';
import { silentLogger, type Logger } from '../log.ts';
import type { NanoFeed } from './nano-feed.ts';
import type { NanoConfirmation } from './nano-wire.ts';
import { qlcChainKey, type QlcFeed } from './qlc-feed.ts';
import { ZERO_HASH, type QlcBlock, type QlcPending } from './qlc-wire.ts';
import type { DispatcherStore } from '../store/store.ts';
import type { DispatcherApi } from '../types.ts';

export interface PrecachePolicyOptions {
  dispatcher: Pick<DispatcherApi, 'precache' | 'withdraw' | 'onTracked'>;
  store: DispatcherStore;
  /** Accounts to track from configuration (nano_/xrb_/qlc_). */
  accounts?: string[];
  /**
   * Difficulty for a Nano chain's next block. The next block may be a send, so the default is the
   * send threshold (`fffffff800000000`); a deployment precaching only receives can lower it.
   */
  nanoDifficulty?: bigint;
  /** QLC mainnet threshold `fffffe0000000000` by default. */
  qlcDifficulty?: bigint;
  /**
   * QLC: when a tracked account that has no chain for a token is sent that token, precache its
   * open block (root = the account's public key).
   */
  qlcOpenBlocks?: boolean;
  /** QLC: one `newAccountBlock` subscription per tracked account (default) or one `newBlock` for all. */
  qlcSubscription?: 'accounts' | 'all';
  /** How many recent block hashes to remember for de-duplication. */
  rememberHashes?: number;
  /** How often to re-read tracked accounts from the store (0 = never). */
  refreshMs?: number;
  /**
   * Write tracked accounts and frontiers to the store (default true). The demo feeds turn it
   * off: their made-up chains vanish with the process and must not pile up in the file.
   */
  persist?: boolean;
  log?: Logger;
}

export type SkipReason = 'untracked' | 'duplicate' | 'stale' | 'no-hash' | 'bad-account';

export interface PrecacheStats {
  precached: number;
  withdrawn: number;
  opens: number;
  skipped: Record<SkipReason, number>;
  errors: number;
}

export interface PrecacheEvents {
  precached: [chain: string, root: string];
  withdrawn: [chain: string, root: string];
  skipped: [reason: SkipReason, hash: string];
  tracked: [account: string];
}

type Coin = 'nano' | 'qlc';

const normalizeNano = (account: string) => account.replace(/^xrb_/, 'nano_');

/** A small insertion-ordered set that forgets its oldest entries. */
class RecentSet {
  readonly #items = new Set<string>();
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  has(key: string): boolean {
    return this.#items.has(key);
  }
  add(key: string): void {
    this.#items.delete(key);
    this.#items.add(key);
    if (this.#items.size > this.#limit) this.#items.delete(this.#items.values().next().value as string);
  }
}

export class PrecachePolicy extends EventEmitter<PrecacheEvents> {
  readonly stats: PrecacheStats = {
    precached: 0,
    withdrawn: 0,
    opens: 0,
    skipped: { untracked: 0, duplicate: 0, stale: 0, 'no-hash': 0, 'bad-account': 0 },
    errors: 0,
  };
  readonly #opts: Required<Omit<PrecachePolicyOptions, 'dispatcher' | 'store' | 'accounts' | 'log'>>;
  readonly #dispatcher: Pick<DispatcherApi, 'precache' | 'withdraw' | 'onTracked'>;
  #stopTracking: (() => void) | undefined;
  readonly #store: DispatcherStore;
  readonly #log: Logger;
  readonly #configAccounts: string[];
  /** Tracked accounts (Nano normalised to nano_) -> public key hex (lowercase). */
  readonly #tracked = new Map<string, string>();
  /** Public key hex -> tracked QLC address (for open blocks). */
  readonly #qlcByKey = new Map<string, string>();
  /** Chain key -> frontier (lowercase hex), the root of the chain's next block. */
  readonly #frontiers = new Map<string, string>();
  readonly #seen: RecentSet;
  /** Hashes known to have a successor: a late copy of one is old news. */
  readonly #superseded: RecentSet;
  #nano: NanoFeed | undefined;
  #qlc: QlcFeed | undefined;
  #queue: Promise<void> = Promise.resolve();
  #refreshTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: PrecachePolicyOptions) {
    super();
    this.#dispatcher = options.dispatcher;
    this.#store = options.store;
    this.#log = options.log ?? silentLogger;
    this.#configAccounts = options.accounts ?? [];
    this.#opts = {
      nanoDifficulty: options.nanoDifficulty ?? THRESHOLDS.nanoSend,
      qlcDifficulty: options.qlcDifficulty ?? THRESHOLDS.qlc,
      qlcOpenBlocks: options.qlcOpenBlocks ?? false,
      qlcSubscription: options.qlcSubscription ?? 'accounts',
      rememberHashes: options.rememberHashes ?? 10_000,
      refreshMs: options.refreshMs ?? 30_000,
      persist: options.persist ?? true,
    };
    this.#seen = new RecentSet(this.#opts.rememberHashes);
    this.#superseded = new RecentSet(this.#opts.rememberHashes);
  }

  /** Tracked accounts, as the policy matches them. */
  get accounts(): string[] {
    return [...this.#tracked.keys()];
  }

  /** The frontier the policy holds for a chain (lowercase hex), if any. */
  frontier(chain: string): string | undefined {
    return this.#frontiers.get(chain);
  }

  /** Loads tracked accounts and frontiers from the store and tracks the configured accounts. */
  async start(): Promise<void> {
    await this.refresh();
    for (const account of this.#configAccounts) await this.track(account);
    // Accounts that service requests make tracked join the feed's filter at once; the periodic
    // refresh below still catches ones tracked by another process sharing the store.
    this.#stopTracking = this.#dispatcher.onTracked?.((account) => {
      this.track(account).catch((err) => this.#log.warn(`precache: tracking ${account} failed: ${(err as Error).message}`));
    });
    if (this.#opts.refreshMs > 0) {
      this.#refreshTimer = setInterval(() => {
        this.refresh().catch((err) => this.#log.warn(`precache: reading tracked accounts failed: ${(err as Error).message}`));
      }, this.#opts.refreshMs);
      this.#refreshTimer.unref();
    }
  }

  /** Re-reads tracked accounts and frontiers from the store (new ones are watched). */
  async refresh(): Promise<void> {
    const rows = await this.#store.listTracked();
    for (const row of rows) {
      const account = this.#remember(row.account);
      if (!account) continue;
      if (row.frontier && !this.#frontiers.has(row.chain)) this.#frontiers.set(row.chain, row.frontier.toLowerCase());
    }
  }

  /**
   * Tracks an account (from a service request or configuration): stored, then watched on the
   * matching feed. Addresses that fail the checksum are refused (false).
   */
  async track(account: string): Promise<boolean> {
    const normal = this.#remember(account);
    if (!normal) {
      this.stats.skipped['bad-account']++;
      return false;
    }
    if (!this.#opts.persist) return true;
    const existing = await this.#store.getTracked(normal);
    if (!existing) await this.#store.trackAccount({ account: normal, chain: normal, updatedAt: Date.now() });
    return true;
  }

  #coinOf(account: string): Coin | undefined {
    if (account.startsWith('qlc_')) return 'qlc';
    if (account.startsWith('nano_') || account.startsWith('xrb_')) return 'nano';
    return undefined;
  }

  /** Adds an account to the in-memory set and to the feed's filter; returns its normal form. */
  #remember(account: string): string | undefined {
    const coin = this.#coinOf(account);
    if (!coin) return undefined;
    const check = checkAddress(account, coin === 'qlc' ? ['qlc'] : NANO_PREFIXES);
    if (!check.ok) return undefined;
    const normal = coin === 'nano' ? normalizeNano(account) : account;
    if (this.#tracked.has(normal)) return normal;
    this.#tracked.set(normal, check.publicKeyHex);
    if (coin === 'qlc') this.#qlcByKey.set(check.publicKeyHex, normal);
    this.emit('tracked', normal);
    if (coin === 'nano' && this.#nano) void this.#nano.addAccounts([normal]);
    if (coin === 'qlc') this.#watchQlc(normal);
    return normal;
  }

  // ------------------------------------------------------------------ feeds

  attachNano(feed: NanoFeed): void {
    this.#nano = feed;
    feed.on('confirmation', (c) => this.#enqueue(() => this.onNanoConfirmation(c)));
    const nanoAccounts = this.accounts.filter((a) => this.#coinOf(a) === 'nano');
    if (nanoAccounts.length > 0) void feed.addAccounts(nanoAccounts);
  }

  attachQlc(feed: QlcFeed): void {
    this.#qlc = feed;
    feed.on('block', (block) => this.#enqueue(() => this.onQlcBlock(block)));
    feed.on('pending', (address, pending) => this.#enqueue(() => this.onQlcPending(address, pending)));
    if (this.#opts.qlcSubscription === 'all') {
      feed.subscribeNewBlocks().catch((err) => this.#log.warn(`precache: qlc newBlock subscription refused: ${(err as Error).message}`));
    } else {
      for (const account of this.accounts) if (this.#coinOf(account) === 'qlc') this.#watchQlc(account);
    }
  }

  #watchQlc(address: string): void {
    if (!this.#qlc || this.#opts.qlcSubscription !== 'accounts') return;
    this.#qlc
      .watchAccount(address, { pending: this.#opts.qlcOpenBlocks })
      .catch((err) => this.#log.warn(`precache: cannot watch ${address}: ${(err as Error).message}`));
  }

  /** Handles run one at a time, in arrival order, so frontier moves never interleave. */
  #enqueue(task: () => Promise<void>): void {
    this.#queue = this.#queue.then(task).catch((err) => {
      this.stats.errors++;
      this.#log.warn(`precache: ${(err as Error).message}`);
    });
  }

  /** Resolves when every block received so far has been handled. */
  idle(): Promise<void> {
    return this.#queue;
  }

  // ------------------------------------------------------------------ blocks

  async onNanoConfirmation(c: NanoConfirmation): Promise<void> {
    const account = normalizeNano(c.account);
    if (!this.#tracked.has(account)) return this.#skip('untracked', c.hash);
    await this.#advance(account, account, c.hash, c.block.previous, this.#opts.nanoDifficulty);
  }

  async onQlcBlock(block: QlcBlock): Promise<void> {
    if (this.#opts.qlcOpenBlocks) await this.#maybeOpen(block);
    if (!this.#tracked.has(block.address)) return this.#skip('untracked', block.hash ?? block.previous);
    const chain = qlcChainKey(block.address, block.token);
    if (block.hash === undefined) {
      // The chain moved past `previous`, but we cannot tell to where: withdraw and forget.
      this.#skip('no-hash', block.previous);
      const frontier = this.#frontiers.get(chain);
      if (frontier === block.previous.toLowerCase()) {
        this.#frontiers.delete(chain);
        await this.#withdraw(chain, frontier);
      }
      return;
    }
    await this.#advance(block.address, chain, block.hash, block.previous, this.#opts.qlcDifficulty);
  }

  /** A send to a tracked account: the link is the recipient's public key. */
  async #maybeOpen(block: QlcBlock): Promise<void> {
    const recipient = this.#qlcByKey.get(block.link.toLowerCase());
    if (!recipient) return;
    await this.#open(recipient, block.token);
  }

  async onQlcPending(address: string, pending: QlcPending): Promise<void> {
    if (!this.#opts.qlcOpenBlocks || !this.#tracked.has(address)) return;
    await this.#open(address, pending.type);
  }

  async #open(address: string, token: string): Promise<void> {
    const chain = qlcChainKey(address, token);
    if (this.#frontiers.has(chain)) return; // the chain exists (or its open is already precached)
    const stored = this.#opts.persist ? await this.#store.getTracked(chain) : undefined;
    if (stored?.frontier) {
      this.#frontiers.set(chain, stored.frontier.toLowerCase());
      return;
    }
    const root = this.#tracked.get(address) as string;
    this.#frontiers.set(chain, root);
    if (this.#opts.persist) await this.#store.trackAccount({ account: address, chain, frontier: root, updatedAt: Date.now() });
    this.stats.opens++;
    await this.#precache(chain, root, this.#opts.qlcDifficulty, address);
  }

  async #advance(account: string, chain: string, hashIn: string, previousIn: string, difficulty: bigint): Promise<void> {
    const hash = hashIn.toLowerCase();
    const previous = previousIn.toLowerCase();
    const frontier = this.#frontiers.get(chain);
    if (frontier === hash || this.#seen.has(`${chain}/${hash}`)) return this.#skip('duplicate', hashIn);
    if (this.#superseded.has(`${chain}/${hash}`)) return this.#skip('stale', hashIn);
    // The sets above forget on restart; the store remembers each chain's blocks, so a node
    // replaying old confirmations never moves a restarted dispatcher's frontier back.
    if (this.#opts.persist && !(await this.#store.rememberBlock(chain, hash))) return this.#skip('stale', hashIn);
    this.#seen.add(`${chain}/${hash}`);
    if (previous !== ZERO_HASH) {
      this.#superseded.add(`${chain}/${previous}`);
      if (this.#opts.persist) await this.#store.rememberBlock(chain, previous);
    }

    this.#frontiers.set(chain, hash);
    if (this.#opts.persist) await this.#store.trackAccount({ account, chain, frontier: hash, updatedAt: Date.now() });
    if (frontier !== undefined) await this.#withdraw(chain, frontier);
    // The job carries the hash as the node printed it (Nano: upper case); lookups ignore case.
    await this.#precache(chain, hashIn, difficulty, account);
  }

  async #precache(chain: string, root: string, difficulty: bigint, account: string): Promise<void> {
    if (this.#stopped) return;
    await this.#dispatcher.precache(root, difficulty, account);
    this.stats.precached++;
    this.#log.debug?.(`precache: ${chain} -> work/precache ${root}`);
    this.emit('precached', chain, root);
  }

  async #withdraw(chain: string, root: string): Promise<void> {
    if (this.#stopped) return;
    if (await this.#dispatcher.withdraw(root)) {
      this.stats.withdrawn++;
      this.#log.debug?.(`precache: ${chain} moved on, withdrew ${root}`);
      this.emit('withdrawn', chain, root);
    }
  }

  #skip(reason: SkipReason, hash: string): void {
    this.stats.skipped[reason]++;
    this.emit('skipped', reason, hash);
  }

  /** Stops reacting (feeds stay open: their owner closes them). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopTracking?.();
    clearInterval(this.#refreshTimer);
    await this.#queue;
  }
}
