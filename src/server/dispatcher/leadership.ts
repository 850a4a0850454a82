/**
 * Which dispatcher runs the singletons, and their clocks: the heartbeat, the statistics, the
 * expiry sweep of stored jobs and the work prune. A dispatcher with a store of its own always
 * runs them. On a shared store (ClusterLink, Redis) it runs them while it holds a lease, renewed
 * every quarter of its length; a new holder gets a larger fencing token. The lease counts as held
 * until `leaseMs` after the request went out, minus a margin, so this dispatcher stops before
 * another can take over.
 *
 * The heartbeat comes first: on taking the singletons it goes out before the stored jobs are
 * restored and the statistics built (both read the store, which after a Redis failover is a
 * primary promoted moments ago), and a lease confirmed again after a lapse sends one at once
 * instead of at the next tick. Volunteers count 5 s without a heartbeat as "server offline".
 *
 * What each clock does is the dispatcher's (LeaderDuties); this part decides when.
 */
import type { Logger } from '../log.ts';
import type { ClusterLink } from '../store/store.ts';
import type { DispatcherCounters } from './counters.ts';

export interface LeaderDuties {
  /** On taking the singletons, after the first heartbeat: republish or cancel the stored jobs. */
  restore(): Promise<void>;
  /** The statistics, now. */
  statistics(): Promise<void>;
  /** The statistics, if work was credited since the last ones and they changed. */
  statisticsIfChanged(): void;
  heartbeat(): void;
  /** Cancels stored jobs past their expiry, whoever published them (shared store only). */
  expireStored(): Promise<void>;
  /** Has the store forget work past its retention. */
  pruneWork(): Promise<void>;
}

export interface LeadershipOptions {
  /** The shared store's lease; absent on a store of one's own. */
  cluster?: ClusterLink;
  /** Who holds the lease (the MQTT client id). */
  holder: string;
  leaseMs: number;
  heartbeatMs: number;
  statisticsMs: number;
  statisticsChangeMs: number;
  pruneWorkMs: number;
  duties: LeaderDuties;
  counters: Pick<DispatcherCounters, 'leases' | 'storeErrors'>;
  log: Logger;
  /** Took (true) or lost (false) the singletons; not called on stop(). */
  onChange(leader: boolean): void;
}

const SINGLETON_LEASE = 'singletons';

export class Leadership {
  readonly #opts: LeadershipOptions;
  #running = false;
  /** The fencing token while the lease is held. */
  #token?: number;
  #until = 0;
  #leaseTimer?: NodeJS.Timeout;
  /** The singletons' clocks: the one list for losing the lease and for stop(). */
  #clocks: NodeJS.Timeout[] = [];
  /** One more on every take and drop: a take that lost the singletons while it awaited the store stops there. */
  #generation = 0;

  constructor(options: LeadershipOptions) {
    this.#opts = options;
  }

  /** Whether this dispatcher runs the singletons now, with the lease's fencing token on a shared store. */
  get state(): { leader: boolean; token?: number } {
    if (!this.#opts.cluster) return { leader: this.#running };
    const leader = this.#token !== undefined && Date.now() < this.#until;
    return leader ? { leader, token: this.#token } : { leader };
  }

  get leader(): boolean {
    return this.state.leader;
  }

  /** Takes the singletons (own store), or starts holding the lease for them (shared store). */
  async start(): Promise<void> {
    this.#running = true;
    if (this.#opts.cluster) await this.#holdLease();
    else await this.#take();
  }

  /** Stops the clocks and gives the lease back, so another dispatcher takes over at once. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#stopClocks();
    clearTimeout(this.#leaseTimer);
    if (this.#opts.cluster && this.#token !== undefined) {
      await this.#opts.cluster.releaseLease(SINGLETON_LEASE, this.#opts.holder).catch(() => {});
    }
  }

  async #take(): Promise<void> {
    const { duties } = this.#opts;
    const generation = ++this.#generation;
    const current = () => this.#running && generation === this.#generation;
    this.#opts.counters.leases++;
    const every = (ms: number, tick: () => void) => this.#clocks.push(setInterval(tick, ms));
    const asLeader = (duty: () => unknown) => () => {
      if (this.leader) void duty();
    };
    every(this.#opts.heartbeatMs, asLeader(duties.heartbeat));
    asLeader(duties.heartbeat)();
    await duties.restore();
    if (!current()) return;
    await duties.statistics();
    if (!current()) return;
    every(this.#opts.statisticsMs, () => void duties.statistics());
    every(this.#opts.statisticsChangeMs, duties.statisticsIfChanged);
    if (this.#opts.cluster) every(Math.min(this.#opts.leaseMs, 2000), asLeader(duties.expireStored));
    every(this.#opts.pruneWorkMs, asLeader(duties.pruneWork));
    asLeader(duties.pruneWork)();
    this.#opts.onChange(true);
  }

  #drop(): void {
    this.#generation++;
    this.#stopClocks();
    this.#opts.onChange(false);
  }

  #stopClocks(): void {
    for (const clock of this.#clocks.splice(0)) clearInterval(clock);
  }

  /** Takes or renews the lease, every quarter of its length. */
  async #holdLease(): Promise<void> {
    clearTimeout(this.#leaseTimer);
    if (!this.#running) return;
    const { cluster, holder, leaseMs, log } = this.#opts;
    const asked = Date.now();
    let token: number | undefined;
    try {
      token = await cluster!.holdLease(SINGLETON_LEASE, holder, leaseMs);
    } catch (err) {
      this.#opts.counters.storeErrors++;
      log.warn(`dispatcher: lease: ${(err as Error).message}`);
    }
    if (!this.#running) return;
    const held = this.#token !== undefined;
    const lapsed = held && !this.leader;
    let take = false;
    if (token !== undefined) {
      this.#until = asked + leaseMs - Math.min(250, leaseMs / 4);
      if (!held || token !== this.#token) {
        if (held) this.#drop();
        this.#token = token;
        log.info(`dispatcher: ${holder} runs the singletons (lease token ${token})`);
        take = true;
      } else if (lapsed && this.leader) {
        // Confirmed again (a Redis failover paused the confirmations) before another took it.
        log.info(`dispatcher: ${holder} holds the singleton lease again (token ${token})`);
        this.#opts.duties.heartbeat();
      }
    } else if (held && Date.now() >= this.#until) {
      log.warn(`dispatcher: ${holder} lost the singleton lease (token ${this.#token})`);
      this.#token = undefined;
      this.#drop();
    }
    // The next renewal is due whatever the take costs: restoring many stored jobs must not let the lease lapse.
    if (this.#running) this.#leaseTimer = setTimeout(() => void this.#holdLease(), leaseMs / 4);
    if (take) await this.#take();
  }
}
