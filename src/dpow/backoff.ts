/**
 * Reconnect delays for every long-lived connection (the worker's MQTT session, the node feeds):
 * doubling from `baseMs` up to `maxMs`, with "equal jitter" (at least half the ceiling), so a
 * crowd of clients that lost the same server spreads out without any of them hammering it.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}
