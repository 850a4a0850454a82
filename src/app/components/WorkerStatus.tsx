/**
 * What the dashboard and the kiosk both say about the worker: the connection state's words and
 * pill, the backend's name, the expected time for a job and the rate while working.
 */
import type { ClientState, ConnectionState, SustainedRates } from '../../dpow/state.ts';
import { expectedHashes, parseDifficulty } from '../../pow/work.ts';
import { formatHashrate } from '../format.ts';

export const CONNECTION_LABELS: Record<ConnectionState, string> = {
  idle: 'Not started',
  connecting: 'Connecting…',
  online: 'Online',
  'server-offline': 'Server offline',
  reconnecting: 'Reconnecting…',
  stopped: 'Stopped',
};

export const BACKEND_NAMES = { webgpu: 'GPU (WebGPU)', wasm: 'CPU (WebAssembly)' } as const;

/** Expected time for a difficulty at the current hashrate, or null when unknown. */
export function expectedMs(difficulty: string, hashrate: number): number | null {
  if (hashrate <= 0) return null;
  try {
    return (expectedHashes(parseDifficulty(difficulty)) / hashrate) * 1000;
  } catch {
    return null;
  }
}

export function ConnectionPill({ state, wanted }: { state: ClientState; wanted: boolean }) {
  const c = wanted || state.connection !== 'stopped' ? state.connection : 'stopped';
  return (
    <span class={`pill pill-${c}`} data-testid="connection-state">
      <span class="dot" aria-hidden="true" />
      {CONNECTION_LABELS[c]}
    </span>
  );
}

/** Mean of the samples taken while hashing: what this device does when it has work. */
export function workingAverageRate(samples: number[]): number | null {
  const busy = samples.filter((v) => v > 0);
  return busy.length === 0 ? null : busy.reduce((a, b) => a + b, 0) / busy.length;
}

/**
 * The rate over computing time and the busy share (and the tuned capacity when known): what a
 * fast GPU does, although its live rate is 0 between jobs that take milliseconds.
 */
export function sustainedLine(rates: SustainedRates): string {
  const capacity = rates.capacity !== null ? ` · capacity ${formatHashrate(rates.capacity)}` : '';
  if (!(rates.hashrate > 0)) return `No work computed in the last minute${capacity}`;
  return `${formatHashrate(rates.hashrate)} sustained while computing · busy ${Math.round(rates.busyShare * 100)}% of the last minute${capacity}`;
}
