/**
 * How a multiplier reads on screen, wherever it shows: the event log, the dashboard, the kiosk
 * and the headless worker's log lines. (The work RPC's 15-decimal `multiplier` field is a wire
 * format, not a display: see formatRpcMultiplier in src/server/http/work-rpc.ts.)
 */

/** "64.0×", "1.000×", "0.00391×": three significant figures or more, "—" when unknown. */
export function formatMultiplier(multiplier: number): string {
  if (!Number.isFinite(multiplier)) return '—';
  return `${multiplier >= 10 ? multiplier.toFixed(1) : multiplier.toFixed(multiplier < 0.01 ? 5 : 3)}×`;
}
