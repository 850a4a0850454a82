import { describe, expect, it } from 'vitest';
import { PEAK_MIN_BUSY_MS, SustainedMeter } from './sustained.ts';

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
    expect(reading.busyOverMs).toBe(10_000); // younger than the window: since the first job
    expect(reading.totalHashes).toBe(1e7);
    expect(reading.totalBusyMs).toBe(100);
  });

  it('reads the rate over the last window of computing time, a job still running counted up to its latest report', () => {
    const meter = new SustainedMeter(1000);
    meter.begin(0);
    meter.add(300, 300);
    meter.end(300); // 1000 H/s, and 300 ms of computing
    meter.begin(5000);
    meter.add(5800, 2400); // 3000 H/s, still running at 5900, last reported at 5800
    const reading = meter.read(5900);
    // The running job's 800 ms up to its report, then 200 of the older job's 300 ms.
    expect(reading.busyMs).toBe(1000);
    expect(reading.rate).toBeCloseTo(2400 + 200, 6);
    // Wall window 4900..5900: only the running job, 900 ms of it.
    expect(reading.busyShare).toBeCloseTo(0.9, 5);
    expect(reading.totalBusyMs).toBe(1100);
  });

  it('keeps the rate through a quiet spell: no jobs is not 0 H/s', () => {
    const meter = new SustainedMeter(60_000);
    meter.begin(0);
    meter.add(500, 5e6);
    meter.end(500);
    const later = meter.read(10 * 60_000);
    expect(later.rate).toBeCloseTo(1e7, 0);
    expect(later.busyShare).toBe(0);
  });

  it('takes a peak only with enough computing behind it', () => {
    const meter = new SustainedMeter(60_000);
    meter.begin(0);
    meter.add(10, 1e6); // one 10 ms job at 1e8 H/s: too short to be a capacity
    meter.end(10);
    expect(meter.read(20).peak).toBe(0);
    meter.begin(100);
    meter.add(100 + PEAK_MIN_BUSY_MS, 2e7 * (PEAK_MIN_BUSY_MS / 1000));
    meter.end(100 + PEAK_MIN_BUSY_MS);
    const reading = meter.read(100 + PEAK_MIN_BUSY_MS);
    expect(reading.peak).toBeGreaterThan(0);
    expect(reading.peak).toBe(reading.rate);
    // A slower minute later does not lower it.
    meter.begin(10_000);
    meter.add(10_000 + 60_000, 60 * 1e6);
    meter.end(70_000);
    expect(meter.read(70_000).peak).toBe(reading.peak);
  });

  it('takes the peak from the best stretch of PEAK_MIN_BUSY_MS, not only whole windows', () => {
    const meter = new SustainedMeter(60_000);
    meter.begin(0);
    meter.add(20_000, 20e6); // 1 MH/s for 20 s
    meter.end(20_000);
    meter.begin(30_000);
    meter.add(30_000 + PEAK_MIN_BUSY_MS, 4e6 * (PEAK_MIN_BUSY_MS / 1000)); // then 4 MH/s for 2 s
    meter.end(30_000 + PEAK_MIN_BUSY_MS);
    const reading = meter.read(30_000 + PEAK_MIN_BUSY_MS);
    expect(reading.rate).toBeLessThan(2e6); // the window's average
    expect(reading.peak).toBeCloseTo(4e6, 0);
  });

  it('reads zero before any work', () => {
    expect(new SustainedMeter().read(123)).toEqual({ rate: 0, busyShare: 0, busyOverMs: 0, busyMs: 0, peak: 0, totalHashes: 0, totalBusyMs: 0 });
  });
});
