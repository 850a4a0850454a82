/**
 * What the worker is doing, in one word a volunteer can read from across the room: the page's
 * headline and kiosk and the headless worker's lines all use these. Derived from the client's
 * state, never stored.
 */
import type { ClientState, PauseReason } from './state.ts';

export type Activity =
  | 'not-started'
  | 'stopped'
  | 'connecting'
  | 'offline'
  | 'paused-battery'
  | 'paused-another-tab'
  | 'paused-hidden'
  | 'working'
  | 'waiting';

/** Why a worker is paused, as it follows "Paused". */
export const PAUSE_WORDS: Record<PauseReason, string> = {
  battery: 'on battery',
  'another-tab': 'another tab',
  hidden: 'page hidden',
};

export const ACTIVITY_WORDS: Record<Activity, string> = {
  'not-started': 'Not started',
  stopped: 'Stopped',
  connecting: 'Connecting…',
  offline: 'Offline',
  'paused-battery': `Paused (${PAUSE_WORDS.battery})`,
  'paused-another-tab': `Paused (${PAUSE_WORDS['another-tab']})`,
  'paused-hidden': `Paused (${PAUSE_WORDS.hidden})`,
  working: 'Working',
  waiting: 'Waiting for work',
};

/** "busy 3% of the last minute", or "busy 95% since the first job" while that was under a minute ago. */
export function busyText(rates: { busyShare: number; busyOverMs: number }): string {
  const over = rates.busyOverMs >= 59_000 ? 'of the last minute' : 'since the first job';
  return `busy ${Math.round(rates.busyShare * 100)}% ${over}`;
}

/**
 * The activity of a worker whose client is in `state`. `networkUp` false (the browser says it is
 * offline) reads as offline before the client notices. A job in flight is Working; connected with
 * none, Waiting for work, however fast the last one went.
 */
export function workerActivity(state: Pick<ClientState, 'connection' | 'paused' | 'current'>, networkUp = true): Activity {
  const { connection } = state;
  if (connection === 'idle') return 'not-started';
  if (connection === 'stopped') return 'stopped';
  if (state.paused) return `paused-${state.paused}`;
  if (!networkUp || connection === 'reconnecting' || connection === 'server-offline') return 'offline';
  if (connection === 'connecting') return 'connecting';
  return state.current ? 'working' : 'waiting';
}
