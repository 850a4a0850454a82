/**
 * The work-server RPC that Nano nodes (`work_peers`) and wallets speak, answered by the DPoW
 * workers: `work_generate`, `work_cancel`, `work_validate`, `status` and `benchmark` as in
 * nano-work-server. Differences from it are listed in docs/service-api.md.
 *
 * This module is the protocol only: a parsed JSON body in, `{ status, body }` out. HTTP, body
 * limits and who may call it are decided in service-api.ts.
 */
import { DEFAULT_POLICY, difficultyError, type DifficultyPolicy } from '../../pow/difficulty.ts';
import {
  isRootHex,
  isU64Hex,
  parseMultiplier,
  PowInputError,
  toMultiplier,
  toU64Hex,
  fromMultiplier,
  workValue,
} from '../../pow/work.ts';
import { randomBytes } from 'node:crypto';
import { DispatchError, RPC_REQUESTER, type DispatcherApi, type Requester } from '../types.ts';

export interface RpcReply {
  status: number;
  body: Record<string, unknown>;
}

export interface WorkRpcOptions {
  dispatcher: DispatcherApi;
  /** Base, floor and ceiling; share the service API's. Default DEFAULT_POLICY. */
  policy?: DifficultyPolicy;
  /** How long work_generate waits for a worker (ms). Default 30 s. */
  timeoutMs?: number;
}

export interface WorkRpcCounters {
  requests: number;
  /** Successful replies per action. */
  actions: Record<string, number>;
  /** Rejections by reason. */
  errors: Record<string, number>;
}

/** A multiplier written as text: digits, an optional fraction and an optional exponent. */
const DECIMAL = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/** Most work_generate runs one benchmark may ask of the volunteers. */
export const MAX_BENCHMARK_COUNT = 100;

/**
 * The RPC reply's `multiplier` field as nano-work-server writes it: 15 decimals. A wire format for
 * RPC clients; what people read on screen is src/dpow/format.ts.
 */
export function formatRpcMultiplier(value: bigint, base: bigint): string {
  return toMultiplier(value, base).toFixed(15);
}

export class WorkRpc {
  readonly counters: WorkRpcCounters = { requests: 0, actions: {}, errors: {} };
  readonly #dispatcher: DispatcherApi;
  readonly #policy: DifficultyPolicy;
  readonly #timeoutMs: number;
  /** work_generate requests (benchmark runs included) waiting for the network now. */
  #generating = 0;

  constructor(options: WorkRpcOptions) {
    this.#dispatcher = options.dispatcher;
    this.#policy = options.policy ?? DEFAULT_POLICY;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  #fail(reason: string, status: number, error: string): RpcReply {
    this.counters.errors[reason] = (this.counters.errors[reason] ?? 0) + 1;
    return { status, body: { error } };
  }

  #done(action: string, body: Record<string, unknown>): RpcReply {
    this.counters.actions[action] = (this.counters.actions[action] ?? 0) + 1;
    return { status: 200, body };
  }

  /**
   * Answers one request (already parsed; `undefined` means the body was not JSON). `requester` is
   * who asks: its work_cancel reaches its own work_generate and benchmark requests only.
   * Default: the RPC's one open-door requester (loopback and `any` modes).
   */
  async handle(request: unknown, requester: Requester = RPC_REQUESTER): Promise<RpcReply> {
    this.counters.requests++;
    if (typeof request !== 'object' || request === null || Array.isArray(request)) {
      return this.#fail('bad-json', 400, 'Unable to parse JSON');
    }
    const r = request as Record<string, unknown>;
    switch (r.action) {
      case 'work_generate':
        return this.#generate(r, requester);
      case 'work_cancel':
        return this.#cancel(r, requester);
      case 'work_validate':
        return this.#validate(r);
      case 'status':
        return this.#status();
      case 'benchmark':
        return this.#benchmark(r, requester);
      default:
        return this.#fail('unknown-action', 400, 'Unknown command');
    }
  }

  /**
   * The requested difficulty: `multiplier` (relative to base) wins over `difficulty`, as in the
   * Nano node; neither means the base itself.
   */
  #requestedDifficulty(r: Record<string, unknown>): bigint | RpcReply {
    let difficulty = this.#policy.base;
    if (r.difficulty !== undefined) {
      if (!isU64Hex(r.difficulty)) return this.#fail('bad-difficulty', 400, 'Bad difficulty');
      difficulty = BigInt(`0x${r.difficulty}`);
    }
    if (r.multiplier !== undefined) {
      // As the node reads it: a number, or a string that is exactly a decimal number (no
      // padding, no hex, no "Infinity").
      if (typeof r.multiplier === 'string' && !DECIMAL.test(r.multiplier)) {
        return this.#fail('bad-multiplier', 400, 'Bad multiplier');
      }
      try {
        difficulty = fromMultiplier(parseMultiplier(r.multiplier), this.#policy.base);
      } catch (err) {
        if (err instanceof PowInputError) return this.#fail('bad-multiplier', 400, 'Bad multiplier');
        throw err;
      }
    }
    return difficulty;
  }

  /** The requested difficulty, if it is one this server may ask of its volunteers. */
  #boundedDifficulty(r: Record<string, unknown>): bigint | RpcReply {
    const difficulty = this.#requestedDifficulty(r);
    if (typeof difficulty !== 'bigint') return difficulty;
    if (difficultyError(difficulty, this.#policy, 'request')) {
      return this.#fail('difficulty-out-of-range', 400, 'Difficulty above config limit or below publish threshold');
    }
    return difficulty;
  }

  async #generate(r: Record<string, unknown>, requester: Requester): Promise<RpcReply> {
    if (!isRootHex(r.hash)) return this.#fail('bad-hash', 400, 'Invalid block hash');
    const hash = r.hash;
    const difficulty = this.#boundedDifficulty(r);
    if (typeof difficulty !== 'bigint') return difficulty;
    const found = await this.#work(hash, difficulty, requester);
    if ('status' in found) return found;
    return this.#done('work_generate', {
      hash,
      work: found.work,
      difficulty: toU64Hex(found.value),
      multiplier: formatRpcMultiplier(found.value, this.#policy.base),
    });
  }

  /** One job on the network (volunteers, through the dispatcher), counted while it waits. */
  async #work(hash: string, difficulty: bigint, requester: Requester): Promise<{ work: string; value: bigint } | RpcReply> {
    this.#generating++;
    try {
      const answer = await this.#dispatcher.requestWork({ hash, difficulty, workType: 'ondemand', timeoutMs: this.#timeoutMs, requester });
      return { work: answer.work, value: BigInt(`0x${answer.value}`) };
    } catch (err) {
      if (err instanceof DispatchError) {
        // HTTP 200, as nano-work-server and every Nano node RPC error: callers such as
        // nano-wallet-js drop the error text of any other status.
        if (err.code === 'cancelled') return this.#fail('cancelled', 200, 'Cancelled');
        if (err.code === 'timeout') return this.#fail('timeout', 504, 'Timeout reached without work');
        return this.#fail('shutting-down', 503, 'Shutting down');
      }
      throw err;
    } finally {
      this.#generating--;
    }
  }

  /**
   * nano-work-server's status. Volunteers work on every waiting request at once, so
   * `queue_size` counts all the requests waiting for the network, not those behind a busy one.
   */
  #status(): RpcReply {
    return this.#done('status', { generating: this.#generating > 0 ? '1' : '0', queue_size: String(this.#generating) });
  }

  /**
   * `count` work_generate runs for random roots, one after another, on the network: what a
   * caller of this server would see, volunteers and broker included. Times in milliseconds.
   */
  async #benchmark(r: Record<string, unknown>, requester: Requester): Promise<RpcReply> {
    const count = typeof r.count === 'string' && /^[0-9]{1,4}$/.test(r.count) ? Number(r.count) : r.count;
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_BENCHMARK_COUNT) {
      return this.#fail('bad-count', 400, `Bad count: an integer from 1 to ${MAX_BENCHMARK_COUNT}`);
    }
    const difficulty = this.#boundedDifficulty(r);
    if (typeof difficulty !== 'bigint') return difficulty;
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      const found = await this.#work(randomBytes(32).toString('hex').toUpperCase(), difficulty, requester);
      if ('status' in found) return found;
    }
    const duration = performance.now() - started;
    return this.#done('benchmark', {
      average: String(Math.round(duration / count)),
      count: String(count),
      difficulty: toU64Hex(difficulty),
      duration: String(Math.round(duration)),
      hint: 'Times in milliseconds',
      multiplier: formatRpcMultiplier(difficulty, this.#policy.base),
    });
  }

  /**
   * Cancels the caller's own requests for this hash; `{}` whether there were any, as
   * nano-work-server answers. Another requester's request for the same hash keeps waiting.
   */
  async #cancel(r: Record<string, unknown>, requester: Requester): Promise<RpcReply> {
    if (!isRootHex(r.hash)) return this.#fail('bad-hash', 400, 'Invalid block hash');
    await this.#dispatcher.cancel(r.hash, requester);
    return this.#done('work_cancel', {});
  }

  #validate(r: Record<string, unknown>): RpcReply {
    if (!isRootHex(r.hash)) return this.#fail('bad-hash', 400, 'Invalid block hash');
    if (!isU64Hex(r.work)) return this.#fail('bad-work', 400, 'Bad work');
    const asked = r.difficulty !== undefined || r.multiplier !== undefined;
    const difficulty = this.#requestedDifficulty(r);
    if (typeof difficulty !== 'bigint') return difficulty;
    const value = workValue(r.hash, r.work);
    const body: Record<string, unknown> = {};
    if (asked) body.valid = value >= difficulty ? '1' : '0';
    body.valid_all = value >= this.#policy.base ? '1' : '0';
    body.valid_receive = value >= this.#policy.min ? '1' : '0';
    body.difficulty = toU64Hex(value);
    body.multiplier = formatRpcMultiplier(value, this.#policy.base);
    return this.#done('work_validate', body);
  }
}
