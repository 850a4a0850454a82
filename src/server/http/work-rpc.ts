/**
 * The work-server RPC that Nano nodes (`work_peers`) and wallets speak, answered by the DPoW
 * workers: `work_generate`, `work_cancel`, `work_validate` as in nano-work-server.
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
import { DispatchError, type DispatcherApi } from '../types.ts';

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

/** Multipliers are printed the way nano-work-server prints them: 15 decimals. */
export function formatMultiplier(value: bigint, base: bigint): string {
  return toMultiplier(value, base).toFixed(15);
}

export class WorkRpc {
  readonly counters: WorkRpcCounters = { requests: 0, actions: {}, errors: {} };
  private readonly dispatcher: DispatcherApi;
  private readonly policy: DifficultyPolicy;
  private readonly timeoutMs: number;

  constructor(options: WorkRpcOptions) {
    this.dispatcher = options.dispatcher;
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  private fail(reason: string, status: number, error: string): RpcReply {
    this.counters.errors[reason] = (this.counters.errors[reason] ?? 0) + 1;
    return { status, body: { error } };
  }

  private done(action: string, body: Record<string, unknown>): RpcReply {
    this.counters.actions[action] = (this.counters.actions[action] ?? 0) + 1;
    return { status: 200, body };
  }

  /** Answers one request (already parsed; `undefined` means the body was not JSON). */
  async handle(request: unknown): Promise<RpcReply> {
    this.counters.requests++;
    if (typeof request !== 'object' || request === null || Array.isArray(request)) {
      return this.fail('bad-json', 400, 'Unable to parse JSON');
    }
    const r = request as Record<string, unknown>;
    switch (r.action) {
      case 'work_generate':
        return this.generate(r);
      case 'work_cancel':
        return this.cancel(r);
      case 'work_validate':
        return this.validate(r);
      default:
        return this.fail('unknown-action', 400, 'Unknown command');
    }
  }

  /**
   * The requested difficulty: `multiplier` (relative to base) wins over `difficulty`, as in the
   * Nano node; neither means the base itself.
   */
  private requestedDifficulty(r: Record<string, unknown>): bigint | RpcReply {
    let difficulty = this.policy.base;
    if (r.difficulty !== undefined) {
      if (!isU64Hex(r.difficulty)) return this.fail('bad-difficulty', 400, 'Bad difficulty');
      difficulty = BigInt(`0x${r.difficulty}`);
    }
    if (r.multiplier !== undefined) {
      try {
        difficulty = fromMultiplier(parseMultiplier(r.multiplier), this.policy.base);
      } catch (err) {
        if (err instanceof PowInputError) return this.fail('bad-multiplier', 400, 'Bad multiplier');
        throw err;
      }
    }
    return difficulty;
  }

  private async generate(r: Record<string, unknown>): Promise<RpcReply> {
    if (!isRootHex(r.hash)) return this.fail('bad-hash', 400, 'Invalid block hash');
    const hash = r.hash;
    const difficulty = this.requestedDifficulty(r);
    if (typeof difficulty !== 'bigint') return difficulty;
    if (difficultyError(difficulty, this.policy, 'request')) {
      return this.fail('difficulty-out-of-range', 400, 'Difficulty above config limit or below publish threshold');
    }
    try {
      const answer = await this.dispatcher.requestWork({
        hash,
        difficulty,
        workType: 'ondemand',
        timeoutMs: this.timeoutMs,
      });
      const value = BigInt(`0x${answer.value}`);
      return this.done('work_generate', {
        hash,
        work: answer.work,
        difficulty: toU64Hex(value),
        multiplier: formatMultiplier(value, this.policy.base),
      });
    } catch (err) {
      if (err instanceof DispatchError) {
        if (err.code === 'cancelled') return this.fail('cancelled', 409, 'Cancelled');
        if (err.code === 'timeout') return this.fail('timeout', 504, 'Timeout reached without work');
        return this.fail('shutting-down', 503, 'Shutting down');
      }
      throw err;
    }
  }

  private async cancel(r: Record<string, unknown>): Promise<RpcReply> {
    if (!isRootHex(r.hash)) return this.fail('bad-hash', 400, 'Invalid block hash');
    await this.dispatcher.withdraw(r.hash);
    return this.done('work_cancel', {});
  }

  private validate(r: Record<string, unknown>): RpcReply {
    if (!isRootHex(r.hash)) return this.fail('bad-hash', 400, 'Invalid block hash');
    if (!isU64Hex(r.work)) return this.fail('bad-work', 400, 'Bad work');
    const asked = r.difficulty !== undefined || r.multiplier !== undefined;
    const difficulty = this.requestedDifficulty(r);
    if (typeof difficulty !== 'bigint') return difficulty;
    const value = workValue(r.hash, r.work);
    const body: Record<string, unknown> = {};
    if (asked) body.valid = value >= difficulty ? '1' : '0';
    body.valid_all = value >= this.policy.base ? '1' : '0';
    body.valid_receive = value >= this.policy.min ? '1' : '0';
    body.difficulty = toU64Hex(value);
    body.multiplier = formatMultiplier(value, this.policy.base);
    return this.done('work_validate', body);
  }
}
