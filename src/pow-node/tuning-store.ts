/**
 * The kernel tuner's cache in Node: one JSON file under the user's cache directory
 * ($XDG_CACHE_HOME or ~/.cache, then dpow-web/kernel-tuning.json), one entry per tuning key.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TuningResult, TuningStore } from '../pow/tuner.ts';

export function defaultTuningFile(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'dpow-web', 'kernel-tuning.json');
}

/** "dawn <webgpu package version>": part of the tuning key. */
export function dawnRuntime(): string {
  const { version } = createRequire(import.meta.url)('webgpu/package.json') as { version: string };
  return `dawn ${version} (node ${process.versions.node})`;
}

export function fileTuningStore(file = defaultTuningFile()): TuningStore {
  const read = (): Record<string, TuningResult> => {
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      return parsed && typeof parsed === 'object' ? (parsed as Record<string, TuningResult>) : {};
    } catch {
      return {}; // missing or unreadable: tune again
    }
  };
  return {
    load: async (key) => {
      const entry = read()[key];
      return entry && typeof entry.variant === 'string' && typeof entry.rate === 'number' ? entry : null;
    },
    save: async (key, result) => {
      const all = { ...read(), [key]: result };
      mkdirSync(dirname(file), { recursive: true });
      const temporary = `${file}.${process.pid}.tmp`;
      writeFileSync(temporary, `${JSON.stringify(all, null, 2)}\n`);
      renameSync(temporary, file);
    },
  };
}
