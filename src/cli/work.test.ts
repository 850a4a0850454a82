/**
 * `dpow-web work` and `dpow-web bench` as a user runs them: a real process, real backends,
 * exit codes and output lines.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { validateWork } from '../pow/work.ts';

const BIN = fileURLToPath(new URL('../../bin/dpow-web.mjs', import.meta.url));
const ROOT = '718CC2121C3E641059BC1C2CFC45666C99E8AE922F7A807B7D07B62C995D79E2';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('dpow-web work', () => {
  it('prints one JSON line with validated work and exits 0', () => {
    const r = cli('work', ROOT.toLowerCase(), '--difficulty', 'fff0000000000000', '--backend', 'wasm', '--threads', '1');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0]);
    expect(Object.keys(out)).toEqual(['hash', 'work', 'difficulty', 'value', 'backend', 'hashes', 'ms']);
    expect(out).toMatchObject({ hash: ROOT, difficulty: 'fff0000000000000', backend: 'wasm' });
    const check = validateWork(ROOT, out.work, 'fff0000000000000');
    expect(check.valid).toBe(true);
    expect(out.value).toBe(check.value.toString(16).padStart(16, '0'));
  });

  it('turns --multiplier into a difficulty relative to the Nano send threshold', () => {
    const r = cli('work', ROOT, '--multiplier', '0.001953125', '--backend', 'wasm', '--threads', '1');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    // 1/512 of the send threshold's 2^35 span: 2^64 - 2^44.
    expect(out.difficulty).toBe('fffff00000000000');
    expect(validateWork(ROOT, out.work, out.difficulty).valid).toBe(true);
  });

  it.each([
    [['work', 'xyz'], /root must be 64 hex characters/],
    [['work', ROOT, '--difficulty', 'ffffffffffffffff'], /above the maximum/],
    [['work', ROOT, '--difficulty', '12'], /difficulty must be 16 hex characters/],
    [['work', ROOT, '--multiplier=-3'], /multiplier must be a positive number/],
    [['work', ROOT, '--difficulty', 'fff0000000000000', '--multiplier', '1'], /either --difficulty or --multiplier/],
    [['work', ROOT, '--backend', 'cuda'], /--backend must be one of auto\|webgpu\|wasm/],
    [['work', ROOT, '--threads', '0'], /--threads must be an integer >= 1/],
    [['work'], /Missing required argument 'root'/],
    [['work', ROOT, ROOT], /Too many arguments/],
    [['bench', '--seconds', 'soon'], /--seconds must be a number/],
  ])('refuses bad input %j with one line on stderr and exit 2', (args, reason) => {
    const r = cli(...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(reason);
  });
});

describe('dpow-web bench', () => {
  it('measures WASM and prints rows as JSON', () => {
    const r = cli('bench', '--backend', 'wasm', '--seconds', '0.3', '--threads', '1', '--json');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout);
    expect(rows.length).toBeGreaterThanOrEqual(1);
    for (const row of rows) {
      expect(row).toMatchObject({ backend: 'wasm', threads: 1 });
      expect(['simd', 'scalar']).toContain(row.variant);
      expect(row.hashrate).toBeGreaterThan(0);
    }
  });
});
