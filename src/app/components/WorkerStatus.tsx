/**
 * What the dashboard and the kiosk both say about the worker: the connection state's words and
 * pill, the backend's name, the expected time for a job and the rate while working.
 */
import type { ClientState, ConnectionState } from '../../dpow/state.ts';
import { expectedHashes, parseDifficulty } from '../../pow/work.ts';

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
