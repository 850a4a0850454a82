/**
 * How many WASM threads to use by default. A browser's navigator.hardwareConcurrency is a claim,
 * not a measurement: WebKit rounds it to 4 or 8 against fingerprinting (4 on a 2-core machine),
 * and a page can be handed anything. So the claim is clamped, and where a measurement of the
 * threads that really run side by side exists (pow-browser/parallelism.ts), it caps the claim.
 */

/** Cores assumed when the claim is missing or not a positive integer. */
const UNKNOWN_CORES = 2;
/** A claim above this is capped: more threads in one tab add start-up cost, not hashes. */
export const MAX_CLAIMED_CORES = 64;

/**
 * The cores to plan threads for: the claim, clamped to 1..MAX_CLAIMED_CORES (2 when it is not a
 * positive integer), and capped by `measured` when a measurement exists.
 */
export function usableCores(claimed: number | undefined, measured?: number | null): number {
  const claim = Number.isInteger(claimed) && claimed! > 0 ? Math.min(claimed!, MAX_CLAIMED_CORES) : UNKNOWN_CORES;
  return Number.isInteger(measured) && measured! > 0 ? Math.min(claim, measured!) : claim;
}

/**
 * Threads default to all cores but one (the page and the GPU driver need one), at least 1. `cores`
 * is a browser's claim or what was measured; it is clamped as usableCores does.
 */
export function defaultThreads(cores: number | undefined): number {
  return Math.max(1, usableCores(cores) - 1);
}

/**
 * The number of threads that really run in parallel, from busy-loop rates (iterations per ms):
 * `alone`, one thread by itself (measured before and after, the faster counts, so a moment of
 * outside load does not shrink the yardstick), and `together`, each of `together.length` threads
 * running at once. Time-sliced threads share the cores, so their sum is about cores x `alone`.
 * Rounded down unless nearly whole (2.8 is 3, 2.6 is 2), at least 1, at most the threads run.
 */
export function estimateParallelism(alone: readonly number[], together: readonly number[]): number {
  const single = Math.max(...alone.filter((r) => Number.isFinite(r) && r > 0));
  if (!(single > 0) || together.length === 0) return Math.max(1, together.length);
  const sum = together.reduce((total, r) => total + (Number.isFinite(r) && r > 0 ? r : 0), 0);
  return Math.min(together.length, Math.max(1, Math.floor(sum / single + 0.25)));
}
