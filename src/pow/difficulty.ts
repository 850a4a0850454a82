/**
 * The difficulty policy: which difficulties this deployment computes, and which a service may
 * ask for. Decided here only. Each composition root (the CLI's start, worker and work commands;
 * the page, which takes the default) builds one policy and hands the same object to everything
 * that checks a difficulty: the worker's queue and engine, the dispatcher, the service API and
 * the work RPC. So their bounds cannot drift apart.
 *
 *  - Ceiling: `maxMultiplier` x `base`. Nothing above it is computed anywhere, so one absurd
 *    request (ffffffffffffffff would take ~2^64 hashes) cannot occupy a GPU forever.
 *  - Floor: `min`, the lowest difficulty a service request may ask for (by default the Nano
 *    receive threshold: below it, work could not be published). Only requests are held to it;
 *    jobs the dispatcher makes itself (the demo source asks for less) and work messages reaching
 *    a worker are checked against the ceiling alone.
 *
 * Pure: no DOM, no Node APIs.
 */
import { DEFAULT_BASE, fromMultiplier, PowInputError, THRESHOLDS, toU64Hex } from './work.ts';

/** Default ceiling: 64x the Nano send threshold. */
export const DEFAULT_MAX_MULTIPLIER = 64;

export interface DifficultyPolicy {
  /** Multiplier base, and the difficulty a request gets when it names none. */
  readonly base: bigint;
  /** Floor for service requests. */
  readonly min: bigint;
  /** Ceiling: fromMultiplier(maxMultiplier, base). */
  readonly max: bigint;
  /** The ceiling as a multiple of base, as configured (and as error texts print it). */
  readonly maxMultiplier: number;
}

export interface DifficultyPolicyOptions {
  /** Default: the Nano send threshold fffffff800000000. */
  base?: bigint;
  /** Default: the Nano receive threshold fffffe0000000000 (tests lower it to run fast). */
  minDifficulty?: bigint;
  /** Default 64. */
  maxMultiplier?: number;
}

/** Builds a policy; a bad maxMultiplier throws PowInputError('bad-multiplier'). */
export function difficultyPolicy(options: DifficultyPolicyOptions = {}): DifficultyPolicy {
  const base = options.base ?? DEFAULT_BASE;
  const maxMultiplier = options.maxMultiplier ?? DEFAULT_MAX_MULTIPLIER;
  return Object.freeze({
    base,
    min: options.minDifficulty ?? THRESHOLDS.nanoReceive,
    max: fromMultiplier(maxMultiplier, base),
    maxMultiplier,
  });
}

/** The policy every component uses unless its composition root hands it another. */
export const DEFAULT_POLICY: DifficultyPolicy = difficultyPolicy();

/**
 * What is being checked: a difficulty a service asks for ('request') must also reach the floor;
 * a job already taken on by the dispatcher or sent to a worker ('job') only the ceiling.
 */
export type DifficultyCheck = 'request' | 'job';

/** Why this difficulty is refused under the policy, or null when it is accepted. */
export function difficultyError(
  difficulty: bigint,
  policy: DifficultyPolicy = DEFAULT_POLICY,
  check: DifficultyCheck = 'job',
): PowInputError | null {
  if (difficulty > policy.max) {
    return new PowInputError(
      'difficulty-too-high',
      `difficulty ${toU64Hex(difficulty)} is above the maximum ${toU64Hex(policy.max)} (${policy.maxMultiplier}x base)`,
    );
  }
  if (check === 'request' && difficulty < policy.min) {
    return new PowInputError(
      'difficulty-too-low',
      `difficulty ${toU64Hex(difficulty)} is below the minimum ${toU64Hex(policy.min)}`,
    );
  }
  return null;
}

/** difficultyError as a check: returns the difficulty, or throws the PowInputError. */
export function checkDifficulty(
  difficulty: bigint,
  policy: DifficultyPolicy = DEFAULT_POLICY,
  check: DifficultyCheck = 'job',
): bigint {
  const error = difficultyError(difficulty, policy, check);
  if (error) throw error;
  return difficulty;
}
