/**
 * Results waiting for the broker. A result found while offline (or while the server is quiet)
 * waits here and is handed to mqtt.js only when the session says the connection can take it, so
 * a cancel that arrives first can still withdraw it. Each result goes out at QoS 1 and leaves the
 * outbox on its PUBACK; one whose connection dropped first is sent again on the next one.
 * Bounded: beyond `limit` waiting results the oldest is given up.
 */
import type { MqttClient } from 'mqtt';
import type { WorkType } from './codec.ts';

/** Results kept while offline; beyond this the oldest is given up. */
export const MAX_OUTBOX = 256;

/** The part of a connection the outbox uses (an mqtt.js client). */
export type Link = Pick<MqttClient, 'publish'>;

/** The result's job, as the outbox and its logs need it. */
export interface Sendable {
  hash: string;
  workType: WorkType;
  multiplier: number;
}

export interface OutboxEntry<J extends Sendable = Sendable> {
  job: J;
  topic: string;
  payload: string;
  foundAt: number;
  /** The connection it was handed to, awaiting PUBACK; null = not sent yet. */
  via: Link | null;
}

export interface OutboxOptions<J extends Sendable> {
  limit?: number;
  /** The broker acknowledged this result. */
  onPublished: (entry: OutboxEntry<J>) => void;
  /** The outbox was full: this (oldest) result is given up. */
  onGivenUp: (entry: OutboxEntry<J>) => void;
}

export class Outbox<J extends Sendable = Sendable> {
  readonly limit: number;
  readonly #options: OutboxOptions<J>;
  #entries: OutboxEntry<J>[] = [];

  constructor(options: OutboxOptions<J>) {
    this.#options = options;
    this.limit = Math.max(1, Math.floor(options.limit ?? MAX_OUTBOX));
  }

  /** Results waiting (unsent, or sent and awaiting PUBACK). */
  get size(): number {
    return this.#entries.length;
  }

  /** Puts a result in line; give it to the link with flush(). */
  add(job: J, topic: string, payload: string, foundAt: number): void {
    this.#entries.push({ job, topic, payload, foundAt, via: null });
    while (this.#entries.length > this.limit) this.#options.onGivenUp(this.#entries.shift()!);
  }

  /** Takes back the unsent results for this hash (any case): a cancel beat them to the broker. */
  withdraw(hash: string): OutboxEntry<J>[] {
    const key = hash.toLowerCase();
    const withdrawn = this.#entries.filter((e) => e.via === null && e.job.hash.toLowerCase() === key);
    if (withdrawn.length) this.#entries = this.#entries.filter((e) => !withdrawn.includes(e));
    return withdrawn;
  }

  /** Hands every unsent result to `link` at QoS 1; its PUBACK removes it. */
  flush(link: Link): void {
    for (const entry of this.#entries) {
      if (entry.via) continue;
      entry.via = link;
      link.publish(entry.topic, entry.payload, { qos: 1 }, (err) => {
        if (entry.via !== link || !this.#entries.includes(entry)) return;
        if (err) {
          entry.via = null; // retried on the next flush
          return;
        }
        this.#entries = this.#entries.filter((e) => e !== entry);
        this.#options.onPublished(entry);
      });
    }
  }

  /** The link is gone: what it had not acknowledged is unsent again. */
  linkLost(link: Link): void {
    for (const entry of this.#entries) if (entry.via === link) entry.via = null;
  }

  /** Drops everything; returns how many results were discarded. */
  clear(): number {
    const n = this.#entries.length;
    this.#entries = [];
    return n;
  }
}
