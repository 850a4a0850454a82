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
  it('ignores a connection past the threshold, says so once and tells the address it last named', () => {
    const { containment, session, warnings } = setup();
    const source = { address: 'nano_a', publisher: 'flooder' };
    containment.noteInvalid({ publisher: 'flooder' });
    containment.noteInvalid(source);
    expect(containment.ignoring(source)).toBeUndefined();
    containment.noteInvalid({ publisher: 'flooder' }); // the crossing one names no address
    expect(containment.ignoring({ publisher: 'flooder' })).toBe('connection "flooder" is contained');
    // Another connection naming the same address is not held back: anyone can write it.
    expect(containment.ignoring({ address: 'nano_a', publisher: 'honest' })).toBeUndefined();
    expect(warnings).toEqual(['dispatcher: too many invalid results from connection "flooder"; its results are ignored for 600 s']);
    expect(session.clients).toEqual([
      { address: 'nano_a', message: { kind: 'error', error: 'Too many invalid results: results from this connection are ignored for 600 s' } },
    ]);
    expect(containment.guard.counters.contained).toEqual({ address: 0, connection: 1 });
  });

  it('contains the payout address when the broker cannot say who published, with no notice for a source that named none', () => {
    const { containment, session } = setup();
    for (let i = 0; i < 3; i++) containment.noteInvalid({ address: 'nano_b' });
    expect(containment.ignoring({ address: 'nano_b' })).toBe('address "nano_b" is contained');
    expect(session.clients.map((c) => c.address)).toEqual(['nano_b']);

    for (let i = 0; i < 3; i++) containment.noteInvalid({ publisher: 'mute' });
    expect(containment.ignoring({ publisher: 'mute' })).toBe('connection "mute" is contained');
    expect(session.clients).toHaveLength(1);
  });
});
