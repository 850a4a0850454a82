import { describe, expect, it } from 'vitest';
import { SustainedMeter } from './sustained.ts';

describe('SustainedMeter', () => {
  it('divides hashes by computing time, so idle gaps between short jobs do not dilute the rate', () => {
    const meter = new SustainedMeter(60_000);
    // Ten 10 ms jobs of 1e6 hashes each, one per second: 1e8 H/s while computing, busy 1%.
    for (let i = 0; i < 10; i++) {
      meter.begin(i * 1000);
      meter.add(i * 1000 + 10, 1e6);
      meter.end(i * 1000 + 10);
    }
    const reading = meter.read(10_000);
    expect(reading.rate).toBeCloseTo(1e8, -3);
    expect(reading.busyShare).toBeCloseTo(0.01, 5);
  });

  it('counts a job still running up to now, and forgets what left the window', () => {
    const meter = new SustainedMeter(1000);
    meter.begin(0);
    meter.add(500, 500);
    meter.end(500);
    meter.begin(2000);
    meter.add(2400, 800);
    const reading = meter.read(2500);
    expect(reading.busyMs).toBe(500);
    expect(reading.rate).toBe(1600);
    expect(reading.busyShare).toBeCloseTo(0.5, 5);
  });

  it('reads zero before any work', () => {
    expect(new SustainedMeter().read(123)).toEqual({ rate: 0, busyShare: 0, busyMs: 0 });
  });
});
