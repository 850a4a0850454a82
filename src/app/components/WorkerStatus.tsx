/**
 * What the dashboard and the kiosk both say about the worker: the connection state's words and
 * pill, the activity word, the headline's rate and what it is, the device's name, and the
 * expected time for a job.
 */
import { useMemo } from 'preact/hooks';
import { ACTIVITY_WORDS, busyText, type Activity } from '../../dpow/activity.ts';
import type { ClientState, ConnectionState, SustainedRates } from '../../dpow/state.ts';
import type { DeviceInfo } from '../../pow/types.ts';
import { expectedHashes, parseDifficulty } from '../../pow/work.ts';
import type { Headline } from '../controller.ts';
import { describeDevice } from '../device.ts';
import { formatHashrate } from '../../format.ts';

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

/** The pill colour of an activity: green while taking work, amber when paused, red offline. */
const ACTIVITY_TONES: Record<Activity, string> = {
  'not-started': 'idle',
  stopped: 'idle',
  connecting: 'connecting',
  offline: 'server-offline',
  'paused-battery': 'paused',
  'paused-another-tab': 'paused',
  'paused-hidden': 'paused',
  working: 'online',
  waiting: 'online',
};

/** The worker's state in one word ("Working", "Paused (on battery)"), as a pill. */
export function ActivityWord({ activity, large = false, testId = 'activity' }: { activity: Activity; large?: boolean; testId?: string }) {
  return (
    <span class={`pill pill-${ACTIVITY_TONES[activity]}${large ? ' pill-large' : ''}`} data-testid={testId} data-activity={activity} role="status">
      <span class="dot" aria-hidden="true" />
      {ACTIVITY_WORDS[activity]}
    </span>
  );
}

/** The headline's number: the rate, or a dash before anything was computed (never a false 0 H/s). */
export function headlineText(headline: Headline): string {
  return headline.rate === null ? '—' : formatHashrate(headline.rate);
}

/**
 * What the headline's number is, and the figures of the same backend beside it:
 * "live" while a job runs, "sustained while computing · busy 3% of the last minute · capacity 28.7 MH/s".
 */
export function rateDetail(headline: Headline, rates: SustainedRates): string {
  if (headline.rate === null) return 'No work computed yet: the rate shows with the first job';
  const parts = [headline.live ? 'live, this job' : 'sustained while computing'];
  if (headline.live && rates.hashrate > 0) parts.push(`${formatHashrate(rates.hashrate)} sustained`);
  parts.push(busyText(rates));
  if (rates.capacity !== null) parts.push(`capacity ${formatHashrate(rates.capacity)}`);
  return parts.join(' · ');
}

/** The device's name (device.ts); WebGL is asked at most once per adapter. */
export function useDeviceName(device: DeviceInfo | null): string | null {
  return useMemo(() => describeDevice(device), [JSON.stringify(device)]);
}
