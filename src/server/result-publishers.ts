/**
 * Who published each recent result on the embedded broker, for the dispatcher's containment by
 * connection (Broker.publisherOf): the dispatcher asks within milliseconds of the publish. Keyed
 * by a SHA-256 of topic and payload, so a key stays 32 bytes whatever the payload's size (the key
 * once held the payload itself: up to 640 MB at 64 KiB each). The oldest go first past `kept`;
 * a key may hold several publishers in order, and each publish answers once.
 */
import { createHash } from 'node:crypto';

const publishKey = (topic: string, payload: Buffer | string) =>
  createHash('sha256').update(topic).update('\n').update(payload).digest('base64');

export class ResultPublishers {
  readonly #byKey = new Map<string, string[]>();
  #held = 0;

  constructor(readonly kept = 10_000) {}

  remember(topic: string, payload: Buffer | string, clientId: string): void {
    const key = publishKey(topic, payload);
    const ids = this.#byKey.get(key);
    if (ids) ids.push(clientId);
    else this.#byKey.set(key, [clientId]);
    if (++this.#held > this.kept) {
      const [oldest, list] = this.#byKey.entries().next().value!;
      this.#held -= list.length;
      this.#byKey.delete(oldest);
    }
  }

  /** The client id that published this result (topic and payload as delivered), once; undefined when unknown. */
  take(topic: string, payload: Buffer | string): string | undefined {
    const key = publishKey(topic, payload);
    const ids = this.#byKey.get(key);
    if (!ids) return undefined;
    const id = ids.shift();
    this.#held--;
    if (ids.length === 0) this.#byKey.delete(key);
    return id;
  }
}
