/**
 * The network statistics message: the public services and the work done, built from the store's
 * own counters and published retained, so a volunteer's Network table fills at once. The leader
 * publishes it at start and every `statisticsMs`, and within `statisticsChangeMs` of credited
 * work (Leadership's clocks), but then only when the payload changed.
 */
import { statisticsCodec, type Statistics } from '../../dpow/codec.ts';
import type { DispatcherStore } from '../store/store.ts';
import type { BrokerSession } from './broker-session.ts';
import type { StoreCall } from './counters.ts';

export interface NetworkStatisticsOptions {
  store: DispatcherStore;
  session: Pick<BrokerSession, 'publishStatistics'>;
  storeCall: StoreCall;
  /** False once the dispatcher stops: nothing goes out then. */
  running(): boolean;
}

export class NetworkStatistics {
  readonly #opts: NetworkStatisticsOptions;
  /** Work was credited since the last statistics went out. */
  #dirty = false;
  /** The last payload published, so an unchanged one is not sent again early. */
  #last?: string;

  constructor(options: NetworkStatisticsOptions) {
    this.#opts = options;
  }

  /** Work was credited: the next change clock publishes. */
  markChanged(): void {
    this.#dirty = true;
  }

  /** The statistics message, from the store's real counters. */
  async build(): Promise<Statistics> {
    const { store } = this.#opts;
    const [services, totals] = await Promise.all([store.listServices(), store.getTotals()]);
    const stats: Statistics = {
      services: { public: [], private: { count: 0, precache: 0, ondemand: 0 } },
      work: { precache: totals.precache, ondemand: totals.ondemand },
    };
    for (const s of services) {
      if (s.public) {
        stats.services.public.push({ display: s.display, website: s.website, precache: s.precache, ondemand: s.ondemand });
      } else {
        stats.services.private.count++;
        stats.services.private.precache += s.precache;
        stats.services.private.ondemand += s.ondemand;
      }
    }
    return stats;
  }

  /** Publishes the statistics; `onlyIfChanged` skips a payload equal to the last one. */
  async publish(options: { onlyIfChanged?: boolean } = {}): Promise<void> {
    this.#dirty = false;
    const stats = await this.#opts.storeCall(() => this.build());
    if (!stats || !this.#opts.running()) return;
    const payload = statisticsCodec.encode(stats);
    if (options.onlyIfChanged && payload === this.#last) return;
    this.#last = payload;
    this.#opts.session.publishStatistics(payload);
  }

  /** The change clock's tick: publishes only after credited work, and only a changed payload. */
  publishIfChanged(): void {
    if (this.#dirty) void this.publish({ onlyIfChanged: true });
  }
}
