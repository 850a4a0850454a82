import { describe, expect, it } from 'vitest';
import { AlertPolicy, LOST_ALERT_MS, type AlertInput } from './alerts.ts';
import type { ClientMessage } from '../dpow/codec.ts';

const at = (now: number, fields: Partial<AlertInput> = {}): AlertInput => ({ now, wanted: true, activity: 'waiting', lastClientMessage: null, ...fields });

describe('AlertPolicy', () => {
  it('says the connection is lost only after minutes offline, once per outage', () => {
    const policy = new AlertPolicy();
    expect(policy.observe(at(0, { activity: 'offline' }))).toEqual([]);
    expect(policy.observe(at(LOST_ALERT_MS - 1, { activity: 'offline' }))).toEqual([]);
    const [alert] = policy.observe(at(LOST_ALERT_MS, { activity: 'offline' }));
    expect(alert).toMatchObject({ tag: 'connection-lost', body: expect.stringContaining('offline for 3 minutes') });
    expect(policy.observe(at(2 * LOST_ALERT_MS, { activity: 'offline' }))).toEqual([]);
    // Back, then lost again: a new outage.
    policy.observe(at(2 * LOST_ALERT_MS + 1));
    policy.observe(at(3 * LOST_ALERT_MS, { activity: 'offline' }));
    expect(policy.observe(at(4 * LOST_ALERT_MS, { activity: 'offline' }))).toHaveLength(1);
  });

  it('does not count a stopped worker as lost', () => {
    const policy = new AlertPolicy();
    policy.observe(at(0, { activity: 'offline', wanted: false }));
    expect(policy.observe(at(10 * LOST_ALERT_MS, { activity: 'offline', wanted: false }))).toEqual([]);
  });

  it("tells when the server refuses this address's results, not for every notice", () => {
    const policy = new AlertPolicy();
    const refused: ClientMessage = { kind: 'error', error: 'Too many invalid results: ignored for 600 s' } as ClientMessage;
    expect(policy.observe(at(0, { lastClientMessage: refused }))).toEqual([
      { tag: 'results-refused', title: 'dpow-web: results refused', body: 'The server says: Too many invalid results: ignored for 600 s' },
    ]);
    expect(policy.observe(at(1000, { lastClientMessage: refused }))).toEqual([]); // the same message
    const again = { ...refused } as ClientMessage;
    expect(policy.observe(at(2000, { lastClientMessage: again }))).toEqual([]); // quiet for a while
  });
});
