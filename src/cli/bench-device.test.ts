/**
 * `npm run bench:device` (scripts/bench-device.ts) on this machine, with a short window: it must
 * fall back to the adapter that exists (llvmpipe here) and write its JSON.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

describe.skipIf(process.env.DPOW_SKIP_GPU === '1')('bench:device', () => {
  it('runs where there is no GPU and writes every variant, the yardstick and the adapter as JSON', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-device-'));
    const cache = mkdtempSync(join(tmpdir(), 'bench-device-cache-'));
    try {
      const script = fileURLToPath(new URL('../../scripts/bench-device.ts', import.meta.url));
      await new Promise<void>((resolve, reject) => {
        execFile(
          process.execPath,
          ['--import', 'tsx', script, '--out', out, '--seconds', '0.3', '--no-chromium'],
          { cwd: fileURLToPath(new URL('../..', import.meta.url)), timeout: 240_000, env: { ...process.env, XDG_CACHE_HOME: cache } },
          (err, _stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve()),
        );
      });
      const report = JSON.parse(readFileSync(join(out, 'bench-device.json'), 'utf8'));
      expect(report.machine.cores).toBeGreaterThan(0);
      const node = report.runs.find((r: { name: string }) => r.name === 'node-dawn');
      expect(node.error).toBeUndefined();
      expect(typeof node.adapter.vendor).toBe('string');
      const variants = node.rows.map((r: { variant: string }) => r.variant);
      expect(variants).toContain('yardstick');
      expect(variants).toContain(node.tunedVariant);
      expect(node.tuning.table.length).toBeGreaterThan(1);
      for (const row of node.rows) expect(row.hashrate, row.variant).toBeGreaterThan(0);
    } finally {
      rmSync(out, { recursive: true, force: true });
      rmSync(cache, { recursive: true, force: true });
    }
  });
});
