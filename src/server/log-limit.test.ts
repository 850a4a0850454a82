import { describe, expect, it } from 'vitest';
import { clip, LogLimiter } from './log-limit.ts';
import type { Logger } from './log.ts';

function collect(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (message: string) => void lines.push(`${level} ${message}`);
  return { log: { info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

describe('clip', () => {
  it('quotes what it is given, so a newline cannot start a forged line', () => {
    expect(clip('result/ondemand')).toBe('"result/ondemand"');
    expect(clip('a\nwarn forged')).toBe('"a\\nwarn forged"');
    expect(clip(undefined)).toBe('""');
    expect(clip(Buffer.from('user'))).toBe('"user"');
  });

  it('cuts long fields and says how much was cut', () => {
    const out = clip('x'.repeat(60_000), 10);
    expect(out).toBe(`"${'x'.repeat(10)}"…(+59990 chars)`);
  });
});

describe('LogLimiter', () => {
  it('logs the first of each kind at once and one summary for the rest of the interval', () => {
    let now = 0;
    const { log, lines } = collect();
    const limiter = new LogLimiter(log, { intervalMs: 10_000, now: () => now });
    for (let i = 0; i < 20_000; i++) limiter.warn('broker: refused publish', `broker: refused publish #${i}`);
    limiter.info('broker: refused login', 'broker: refused login a');
    expect(lines).toEqual(['warn broker: refused publish #0', 'info broker: refused login a']);
    now = 10_000;
    limiter.flush();
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe('warn broker: refused publish: 19999 more in 10 s, not logged one by one; the last: broker: refused publish #19999');
    // A new interval starts with the next event.
    limiter.warn('broker: refused publish', 'again');
    expect(lines[3]).toBe('warn again');
    limiter.close();
    expect(lines).toHaveLength(4);
  });

  it('writes the summary by itself when the interval ends', async () => {
    const { log, lines } = collect();
    const limiter = new LogLimiter(log, { intervalMs: 20 });
    limiter.warn('k', 'one');
    limiter.warn('k', 'two');
    limiter.warn('k', 'three');
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (lines.length === 2) {
          clearInterval(check);
          resolve();
        }
      }, 5);
    });
    expect(lines[1]).toMatch(/^warn k: 2 more in 20 ms, not logged one by one; the last: three$/);
    limiter.close();
  });

  it('a summary comes before the first line of the next interval when no timer ran', () => {
    let now = 0;
    const { log, lines } = collect();
    const limiter = new LogLimiter(log, { intervalMs: 1000, now: () => now });
    limiter.error('k', 'a');
    limiter.error('k', 'b');
    now = 5000;
    limiter.error('k', 'c');
    expect(lines).toEqual(['error a', 'error k: 1 more in 1 s, not logged one by one; the last: b', 'error c']);
    limiter.close();
  });
});
