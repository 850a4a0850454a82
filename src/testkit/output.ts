/** Test helper, never imported by the product: what a command run in-process writes. */
import { afterEach, beforeEach, vi } from 'vitest';

/**
 * Captures process.stdout and process.stderr writes during each test of the calling file, into
 * the returned arrays (emptied before each test), and restores both (and any stubbed
 * environment variable) after it.
 */
export function captureOutput(): { stdout: string[]; stderr: string[] } {
  const captured = { stdout: [] as string[], stderr: [] as string[] };
  beforeEach(() => {
    captured.stdout.length = 0;
    captured.stderr.length = 0;
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (captured.stdout.push(String(chunk)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (captured.stderr.push(String(chunk)), true));
  });
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
  });
  return captured;
}
