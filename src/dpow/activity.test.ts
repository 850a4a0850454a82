import { describe, expect, it } from 'vitest';
import { ACTIVITY_WORDS, busyText, workerActivity } from './activity.ts';
import type { ClientState, CurrentJob } from './state.ts';

const job: CurrentJob = { hash: 'A'.repeat(64), difficulty: 'fffffff800000000', workType: 'ondemand', receivedAt: 0, startedAt: 0, multiplier: 1 };
const state = (fields: Partial<Pick<ClientState, 'connection' | 'paused' | 'current'>>) => ({
  connection: 'online' as const,
  paused: null,
  current: null,
  ...fields,
});
const word = (fields: Parameters<typeof state>[0], networkUp?: boolean) => ACTIVITY_WORDS[workerActivity(state(fields), networkUp)];

describe('workerActivity', () => {
  it('is Working with a job in flight and Waiting for work between jobs', () => {
    expect(word({ current: job })).toBe('Working');
    expect(word({})).toBe('Waiting for work');
  });

  it('names the pause and its reason before anything else but a stop', () => {
    expect(word({ paused: 'battery', current: job })).toBe('Paused (on battery)');
    expect(word({ paused: 'another-tab', connection: 'reconnecting' })).toBe('Paused (another tab)');
    expect(word({ paused: 'hidden' })).toBe('Paused (page hidden)');
    expect(word({ paused: 'battery', connection: 'stopped' })).toBe('Stopped');
  });

  it('is Offline while the broker or the server is gone, or the browser says the network is', () => {
    expect(word({ connection: 'reconnecting' })).toBe('Offline');
    expect(word({ connection: 'server-offline' })).toBe('Offline');
    expect(word({ current: job }, false)).toBe('Offline');
  });

  it('tells a worker never started from one stopped, and says when it connects', () => {
    expect(word({ connection: 'idle' })).toBe('Not started');
    expect(word({ connection: 'stopped' })).toBe('Stopped');
    expect(word({ connection: 'connecting' })).toBe('Connecting…');
  });
});

describe('busyText', () => {
  it('says what the busy share is over: the last minute, or the time since the first job when shorter', () => {
    expect(busyText({ busyShare: 0.034, busyOverMs: 60_000 })).toBe('busy 3% of the last minute');
    expect(busyText({ busyShare: 0.95, busyOverMs: 4_000 })).toBe('busy 95% since the first job');
  });
});
