/**
 * A minimal DPoW worker for server-side tests: mqtt.js plus the reference work rule, searching
 * in small slices so the event loop (and the dispatcher under test, in the same process) keeps
 * running. Only for trivial test difficulties such as ff00000000000000 (~256 hashes).
 *
 * It speaks the protocol exactly as a volunteer would: subscribes work/+, cancel/+ and
 * client/<address>, publishes result/<type> "hash,work,address", drops a job on cancel.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { cancelCodec, clientCodec, parseTopic, resultCodec, topics, workCodec, type ClientMessage, type WorkType } from '../dpow/codec.ts';
import { toU64Hex, workValue } from '../pow/work.ts';

export interface ReferenceWorkerOptions {
  brokerUrl: string;
  username: string;
  password: string;
  address: string;
  /** Hashes tried per event-loop turn. */
  slice?: number;
}

export class ReferenceWorker {
  readonly results: Array<{ hash: string; work: string; workType: WorkType }> = [];
  readonly cancels: string[] = [];
  readonly clientMessages: ClientMessage[] = [];
  readonly heartbeats = { count: 0 };
  readonly #active = new Set<string>();

  private constructor(
    readonly client: MqttClient,
    readonly options: ReferenceWorkerOptions,
  ) {}

  static async start(options: ReferenceWorkerOptions): Promise<ReferenceWorker> {
    const client = await mqtt.connectAsync(options.brokerUrl, {
      username: options.username,
      password: options.password,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    });
    const worker = new ReferenceWorker(client, options);
    client.on('message', (topic, payload) => worker.#onMessage(topic, payload));
    await client.subscribeAsync(['work/+', 'cancel/+', topics.client(options.address), 'heartbeat'], { qos: 1 });
    return worker;
  }

  #onMessage(topic: string, payload: Buffer): void {
    const parsed = parseTopic(topic);
    if (!parsed.ok) return;
    const t = parsed.value;
    if (t.kind === 'heartbeat') this.heartbeats.count++;
    else if (t.kind === 'client') {
      const m = clientCodec.decode(payload);
      if (m.ok) this.clientMessages.push(m.value);
    } else if (t.kind === 'cancel') {
      const hash = cancelCodec.decode(payload);
      if (hash.ok) {
        this.cancels.push(hash.value);
        this.#active.delete(hash.value.toLowerCase());
      }
    } else if (t.kind === 'work') {
      const job = workCodec.decode(payload);
      if (job.ok) void this.#solve(job.value.hash, job.value.difficulty, t.workType);
    }
  }

  async #solve(hash: string, difficulty: bigint, workType: WorkType): Promise<void> {
    const key = hash.toLowerCase();
    if (this.#active.has(key)) return;
    this.#active.add(key);
    const slice = this.options.slice ?? 64;
    let nonce = BigInt(Math.floor(Math.random() * 2 ** 48));
    while (this.#active.has(key)) {
      for (let i = 0; i < slice; i++, nonce++) {
        if (workValue(hash, nonce) >= difficulty) {
          const work = toU64Hex(nonce);
          this.#active.delete(key);
          this.results.push({ hash, work, workType });
          await this.client
            .publishAsync(topics.result(workType), resultCodec.encode({ hash, work, address: this.options.address }), { qos: 1 })
            .catch((err: unknown) => {
              if (!this.#stopped) throw err; // a publish cut off by stop() is no failure
            });
          return;
        }
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  #stopped = false;

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#active.clear();
    await this.client.endAsync(true);
  }
}
