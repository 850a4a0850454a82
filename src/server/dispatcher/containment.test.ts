import { describe, expect, it } from 'vitest';
import { SessionRecorder } from '../../testkit/session-recorder.ts';
import { Containment } from './containment.ts';

function setup() {
  const session = new SessionRecorder();
  const warnings: string[] = [];
  const log = { info() {}, warn: (m: string) => warnings.push(m), error() {} };
  const containment = new Containment({ abuse: { threshold: 3, windowMs: 60_000, cooldownMs: 600_000 }, session, log });
  return { containment, session, warnings };
}

describe('Containment', () => {
  it('contains a connection past the threshold, says so once and tells the address it last named', () => {
    const { containment, session, warnings } = setup();
    const source = { address: 'nano_a', publisher: 'flooder' };
    containment.noteInvalid({ publisher: 'flooder' });
    containment.noteInvalid(source);
    expect(containment.contained(source)).toBeUndefined();
    containment.noteInvalid({ publisher: 'flooder' }); // the crossing one names no address
    expect(containment.contained({ publisher: 'flooder' })).toEqual({ kind: 'connection', reason: 'connection "flooder" is contained' });
    // Another connection naming the same address is not held back: anyone can write it.
    expect(containment.contained({ address: 'nano_a', publisher: 'honest' })).toBeUndefined();
    expect(warnings).toEqual(['dispatcher: too many invalid results from connection "flooder"; its results are ignored for 600 s']);
    expect(session.clients).toEqual([
      { address: 'nano_a', message: { kind: 'error', error: 'Too many invalid results: results from this connection are ignored for 600 s' } },
    ]);
    expect(containment.guard.counters.contained).toEqual({ address: 0, connection: 1 });
  });

  it('contains the payout address when the broker cannot say who published, telling it that valid work still counts', () => {
    const { containment, session, warnings } = setup();
    for (let i = 0; i < 3; i++) containment.noteInvalid({ address: 'nano_b' });
    expect(containment.contained({ address: 'nano_b' })).toEqual({ kind: 'address', reason: 'address "nano_b" is contained' });
    expect(warnings).toEqual(['dispatcher: too many invalid results from address "nano_b"; its invalid results are ignored (valid work is still credited) for 600 s']);
    expect(session.clients).toEqual([
      {
        address: 'nano_b',
        message: { kind: 'error', error: 'Too many invalid results name this address: invalid ones are ignored for 600 s; valid work is still credited' },
      },
    ]);

    // A connection that named no address cannot be told.
    for (let i = 0; i < 3; i++) containment.noteInvalid({ publisher: 'mute' });
    expect(containment.contained({ publisher: 'mute' })).toMatchObject({ kind: 'connection' });
    expect(session.clients).toHaveLength(1);
  });

  it('tells an address of a containment once per cooldown, however many connections name it', () => {
    const { containment, session, warnings } = setup();
    // Ten throwaway connections, each flooding with a victim's address: one notice reaches it.
    for (let c = 0; c < 10; c++) for (let i = 0; i < 3; i++) containment.noteInvalid({ address: 'nano_victim', publisher: `thief-${c}` });
    expect(containment.guard.counters.contained.connection).toBe(10);
    expect(session.clients.map((m) => m.address)).toEqual(['nano_victim']);
    // And the containments are one log line (the rest are counted, summarised when the interval ends).
    expect(warnings).toHaveLength(1);
    containment.close();
    expect(warnings[1]).toMatch(/^dispatcher: containment: 9 more in 10 s, not logged one by one; the last: .*"thief-9"/);
  });
});
