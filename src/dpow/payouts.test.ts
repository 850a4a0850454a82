import { describe, expect, it } from 'vitest';
import { parsePayoutsReport, payoutsUrl, PAYOUTS_SHOWN } from './payouts.ts';

const REPORT = {
  address: 'nano_1111111111111111111111111111111111111111111111111111hifc8npp',
  paid: '12345000000000000000000000000',
  carried: '0',
  payouts: [{ at: 1_700_000_000_000, amount: '12345000000000000000000000000', status: 'confirmed', block: 'AB'.repeat(32) }],
  serverHasPaid: true,
};

describe('the payouts report', () => {
  it('reads what the server writes', () => {
    expect(parsePayoutsReport(REPORT)).toEqual(REPORT);
    expect(parsePayoutsReport({ ...REPORT, carried: '5', carriedReason: 'below the minimum', payouts: [{ at: 1, amount: '5', status: 'sending' }] })).toMatchObject({ carriedReason: 'below the minimum' });
  });

  it('refuses anything else: a proxy’s page, floats, unknown states, odd blocks, too many payouts', () => {
    for (const bad of [
      null,
      '<html>',
      [],
      { ...REPORT, paid: 1.5e28 },
      { ...REPORT, paid: '-1' },
      { ...REPORT, serverHasPaid: 'yes' },
      { ...REPORT, payouts: [{ ...REPORT.payouts[0], status: 'lost' }] },
      { ...REPORT, payouts: [{ ...REPORT.payouts[0], block: 'javascript:alert(1)' }] },
      { ...REPORT, payouts: [{ ...REPORT.payouts[0], amount: '1e3' }] },
      { ...REPORT, payouts: Array.from({ length: PAYOUTS_SHOWN + 1 }, () => REPORT.payouts[0]) },
    ]) {
      expect(parsePayoutsReport(bad), JSON.stringify(bad)?.slice(0, 80)).toBeUndefined();
    }
  });

  it('builds the endpoint URL from the page or a broker URL’s origin', () => {
    expect(payoutsUrl('https://dpow.example/', REPORT.address)).toBe(`https://dpow.example/api/payouts/${REPORT.address}`);
    expect(payoutsUrl('http://127.0.0.1:8787/mqtt', REPORT.address)).toBe(`http://127.0.0.1:8787/api/payouts/${REPORT.address}`);
  });
});
