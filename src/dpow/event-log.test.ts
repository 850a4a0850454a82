import { describe, expect, it } from 'vitest';
import { EventLog, MAX_EVENTS } from './event-log.ts';
import { formatMultiplier } from '../format.ts';
import type { ClientEvent } from './state.ts';

function makeLog(sink?: (e: ClientEvent) => void) {
  let t = 1_000;
  let changes = 0;
  const log = new EventLog({ now: () => t++, onEvent: sink, onChange: () => changes++ });
  return { log, changes: () => changes };
}

const JOB = { hash: 'BFEB8AA91D346E6EFBB41D11FD247E48E0BC0DBC183DDEB9F26F3A98AA17522F', workType: 'ondemand' as const, multiplier: 1 };

describe('EventLog', () => {
  it('keeps the newest MAX_EVENTS events, newest first, and says each change', () => {
    const { log, changes } = makeLog();
    for (let i = 0; i < MAX_EVENTS + 5; i++) log.add('info', 'connection', `event ${i}`);
    const events = log.events();
    expect(events).toHaveLength(MAX_EVENTS);
    expect(events[0].message).toBe(`event ${MAX_EVENTS + 4}`);
    expect(events.at(-1)!.message).toBe('event 5');
    expect(changes()).toBe(MAX_EVENTS + 5);
  });

  it('counts rejections by code and logs each with its reason', () => {
    const { log } = makeLog();
    log.reject('bad-hash', 'work hash "zz…" is not 64 hex characters');
    log.reject('bad-hash', 'again');
    log.bump('queue-overflow');
    log.count('received');
    expect(log.counters(3)).toMatchObject({ received: 1, rejected: { 'bad-hash': 2, 'queue-overflow': 1 }, expired: 3 });
    expect(log.events().map((e) => e.message)).toEqual(['Rejected (bad-hash): again', 'Rejected (bad-hash): work hash "zz…" is not 64 hex characters']);
    expect(log.events()[0]).toMatchObject({ level: 'warn', kind: 'reject' });
  });

  it('writes one line per job event, with the structured job beside it', () => {
    const { log } = makeLog();
    log.job('info', 'job', 'computed', JOB, undefined, { ms: 12, backend: 'wasm' });
    const [e] = log.events();
    expect(e.message).toBe(`Computed ondemand BFEB8AA91D346E6E… ${formatMultiplier(1)} in 12 ms on wasm`);
    expect(e.job).toEqual({ event: 'computed', hash: JOB.hash, workType: 'ondemand', multiplier: 1, ms: 12, backend: 'wasm' });
  });

  it('starts counters from zero for a new session but keeps the events, and survives a failing sink', () => {
    const { log } = makeLog(() => {
      throw new Error('stdout closed');
    });
    log.count('published');
    log.add('info', 'connection', 'Stopped');
    log.resetCounters();
    expect(log.counters(0).published).toBe(0);
    expect(log.events()).toHaveLength(1);
  });

  it('hands out copies, so a view cannot change the log', () => {
    const { log } = makeLog();
    log.reject('bad-json', 'x');
    log.counters(0).rejected['bad-json'] = 99;
    log.events().length = 0;
    expect(log.counters(0).rejected['bad-json']).toBe(1);
    expect(log.events()).toHaveLength(1);
  });
});
