/**
 * The kernel tuner's cache on SwiftShader through Dawn's Vulkan backend (the same suite as
 * tuner.test.ts runs on llvmpipe), and a real key change: one cache file shared by SwiftShader
 * (Vulkan) and llvmpipe (OpenGL ES) in one process keeps an entry for each, and going back to
 * SwiftShader reuses its entry without measuring.
 *
 * The Vulkan loader reads VK_ICD_FILENAMES when Dawn first creates an instance, so it is set
 * before anything else in this file runs (vi.hoisted), in this file's own process (vitest runs
 * each file in its own fork). Debian's chromium package ships the SwiftShader ICD; without it the
 * file is skipped, saying so.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createNodeGpu } from '../pow-node/gpu.ts';
import { fileTuningStore } from '../pow-node/tuning-store.ts';
import { TUNER_CANDIDATES, countedBackend, tunerCacheSuite } from '../testkit/tuner-suite.ts';
import { createTunedBackend, tuningKey } from './tuner.ts';
import type { WebGpuBackend } from './webgpu.ts';
import { plainLogger } from '../log.ts';

const ICD = vi.hoisted(() => {
  const file = process.env.DPOW_SWIFTSHADER_ICD ?? '/usr/lib/chromium/vk_swiftshader_icd.json';
  process.env.VK_ICD_FILENAMES = file;
  return file;
});

const skip = process.env.DPOW_SKIP_GPU === '1' || !existsSync(ICD);
if (!existsSync(ICD)) {
  console.warn(`tuner.swiftshader.test.ts: skipped: no SwiftShader Vulkan ICD at ${ICD} (install Debian's chromium, or set DPOW_SWIFTSHADER_ICD)`);
}

describe.skipIf(skip)('kernel tuner (Dawn, SwiftShader on Vulkan)', () => {
  let swiftshader: GPU;
  const backends: WebGpuBackend[] = [];

  beforeAll(async () => {
    const logs: string[] = [];
    const found = await createNodeGpu({ backend: 'vulkan', log: plainLogger((m) => logs.push(m)) });
    if (!found) throw new Error(`no Vulkan adapter with VK_ICD_FILENAMES=${ICD} (needs libvulkan1): ${logs.join('; ')}`);
    swiftshader = found;
    // Make sure this really is SwiftShader, not whatever Vulkan driver the machine has.
    const probe = await countedBackend(swiftshader, backends);
    expect(probe.inner.adapterInfo.architecture + probe.inner.adapterInfo.description).toMatch(/swiftshader/i);
  });

  afterAll(() => {
    for (const backend of backends) backend.dispose();
  });

  // Short windows: SwiftShader runs about 1.5 MH/s on these CPUs, and compiles each pipeline in
  // about a second.
  tunerCacheSuite({ gpu: () => swiftshader, windowMs: 120 });

  it('one cache file, two adapters (SwiftShader on Vulkan, llvmpipe on OpenGL ES): an entry each, and back again reuses the first', async () => {
    const llvmpipe = await createNodeGpu({ backend: 'opengles' });
    if (!llvmpipe) throw new Error('no OpenGL ES adapter: install libegl1 and libgl1-mesa-dri (llvmpipe)');
    const dir = mkdtempSync(join(tmpdir(), 'dpow-tuning-'));
    try {
      const file = join(dir, 'kernel-tuning.json');
      const tune = { runtime: 'dawn test', store: fileTuningStore(file), candidates: TUNER_CANDIDATES, windowMs: 120, rounds: 1 };

      const onSwiftshader = await countedBackend(swiftshader, backends);
      const first = await createTunedBackend(onSwiftshader.inner, tune);
      await first.calibrated;
      expect(first.kernel.state).toBe('tuned');
      const swiftshaderKey = tuningKey(onSwiftshader.inner.adapterInfo, 'dawn test');
      const afterFirst = JSON.parse(readFileSync(file, 'utf8'));
      expect(Object.keys(afterFirst)).toEqual([swiftshaderKey]);

      const onLlvmpipe = await countedBackend(llvmpipe, backends);
      expect(onLlvmpipe.inner.label).toMatch(/llvmpipe/i);
      const other = await createTunedBackend(onLlvmpipe.inner, tune);
      expect(other.kernel.state).toBe('calibrating'); // another adapter is another key
      await other.calibrated;
      expect(onLlvmpipe.measured).toEqual(TUNER_CANDIDATES);
      const afterOther = JSON.parse(readFileSync(file, 'utf8'));
      const llvmpipeKey = tuningKey(onLlvmpipe.inner.adapterInfo, 'dawn test');
      expect(Object.keys(afterOther).sort()).toEqual([swiftshaderKey, llvmpipeKey].sort());
      expect(afterOther[swiftshaderKey]).toEqual(afterFirst[swiftshaderKey]);

      const back = await countedBackend(swiftshader, backends);
      const again = await createTunedBackend(back.inner, tune);
      await again.calibrated;
      expect(again.kernel).toEqual({ variant: first.kernel.variant, calibratedRate: afterFirst[swiftshaderKey].rate, state: 'cached' });
      expect(back.measured).toEqual([]);
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(afterOther);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
