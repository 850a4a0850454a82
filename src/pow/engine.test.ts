/**
 * Scheduler tests. The backends here are test-only: they search with the reference rule in small
 * chunks (or misbehave on purpose) so the engine's own behaviour can be pinned down: validation of
 * every kernel answer, WebGPU -> WASM fallback mid-job, cancel, one job at a time and the hashrate.
 * The real kernels are covered by webgpu/wasm tests and the browser end-to-end tests.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PowEngine, measureBackend } from './engine.ts';
import { PowCancelledError, type BackendName, type EngineStatus, type PowBackend, type SearchRequest } from './types.ts';
import { difficultyPolicy } from './difficulty.ts';
import { PowInputError, validateWork, workValue } from './work.ts';
import { plainLogger } from '../log.ts';

const ROOT = '718CC2121C3E641059BC1C2CFC45666C99E8AE922F7A807B7D07B62C995D79E2';
const EASY = 0xff00000000000000n; // ~256 hashes
const MEDIUM = 0xfff0000000000000n; // ~4096 hashes
const UNREACHABLE = 0xffffffff00000000n; // 2^32 hashes: never finishes in a test
const U64_MAX = (1n << 64n) - 1n;

interface RefOptions {
  name?: BackendName;
  label?: string;
  chunk?: number;
  /** Answers to hand back before searching honestly (kernel bugs). */
  lies?: bigint[];
  /** Throw this after `failAfterChunks` chunks (device loss). */
  failWith?: Error;
  failAfterChunks?: number;
  threads?: number;
}

/** A backend that searches with the reference rule, a chunk per macrotask, like a real kernel. */
function referenceBackend(opts: RefOptions = {}) {
  const calls: SearchRequest[] = [];
  const lies = [...(opts.lies ?? [])];
  let chunks = 0;
  let disposed = 0;
  const backend: PowBackend & { setIntensity(x: number): void; intensity?: number } = {
    name: opts.name ?? 'wasm',
    label: opts.label ?? `reference ${opts.name ?? 'wasm'}`,
    compileMs: 12,
    ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    setIntensity(x) {
      backend.intensity = x;
    },
    async search(req) {
      calls.push(req);
      if (lies.length > 0) {
        await new Promise((r) => setTimeout(r, 1));
        req.onHashes?.(1);
        return { work: lies.shift()! };
      }
      let nonce = req.startNonce;
      const chunk = opts.chunk ?? 64;
      for (;;) {
        await new Promise((r) => setTimeout(r, 1));
        if (req.signal.aborted) return null;
        if (opts.failWith && chunks >= (opts.failAfterChunks ?? 0)) throw opts.failWith;
        chunks++;
        for (let i = 0; i < chunk; i++) {
          // A backend set up to fail never finds work first, so the test cannot pass by luck.
          if (!opts.failWith && workValue(req.root, nonce) >= req.difficulty) {
            req.onHashes?.(i + 1);
            return { work: nonce };
          }
          nonce = (nonce + 1n) & U64_MAX;
        }
        req.onHashes?.(chunk);
      }
    },
    dispose() {
      disposed++;
    },
  };
  return { backend, calls, get disposed() { return disposed; } };
}

let engines: PowEngine[] = [];
function makeEngine(opts: Partial<ConstructorParameters<typeof PowEngine>[0]> = {}) {
  const engine = new PowEngine({
    wasm: async (threads) => referenceBackend({ threads }).backend,
    defaultThreads: 1,
    ...opts,
  });
  engines.push(engine);
  return engine;
}

afterEach(() => {
  for (const e of engines) e.dispose();
  engines = [];
  vi.restoreAllMocks();
});

describe('PowEngine.generate', () => {
  it('returns work that passes the reference check, with the value and hash count', async () => {
    const engine = makeEngine();
    const result = await engine.generate(ROOT, MEDIUM, { backend: 'wasm' });
    expect(result.backend).toBe('wasm');
    const check = validateWork(ROOT, result.work, MEDIUM);
    expect(check.valid).toBe(true);
    expect(result.value).toBe(check.value.toString(16).padStart(16, '0'));
    expect(result.work).toMatch(/^[0-9a-f]{16}$/);
    expect(result.hashes).toBeGreaterThan(0);
    expect(result.ms).toBeGreaterThanOrEqual(0);
  });

  it('accepts a lower-case root and starts each search at a random nonce', async () => {
    const made = referenceBackend();
    const engine = makeEngine({ wasm: async () => made.backend });
    await engine.generate(ROOT.toLowerCase(), EASY);
    await engine.generate(ROOT, EASY);
    expect(made.calls).toHaveLength(2);
    expect(made.calls[0].startNonce).not.toBe(made.calls[1].startNonce);
  });

  it.each([
    ['bad-root', 'xyz', EASY],
    ['bad-root', ROOT.slice(1), EASY],
    // Text is not a difficulty: a caller across the worker boundary must send the bigint.
    ['bad-difficulty', ROOT, 'fff0000000000000'],
    ['bad-difficulty', ROOT, -1n],
    ['bad-difficulty', ROOT, 1n << 64n],
    ['difficulty-too-high', ROOT, 0xffffffffffffffffn],
  ])('refuses bad input with a specific code (%s)', async (code, root, difficulty) => {
    const engine = makeEngine();
    const err = await engine.generate(root, difficulty as bigint).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PowInputError);
    expect((err as PowInputError).code).toBe(code);
  });

  it('refuses a nonsensical thread count or intensity with the reason', async () => {
    const engine = makeEngine();
    await expect(engine.generate(ROOT, EASY, { threads: 0 })).rejects.toThrow(/threads must be an integer/);
    await expect(engine.generate(ROOT, EASY, { threads: 1.5 })).rejects.toThrow(RangeError);
    await expect(engine.generate(ROOT, EASY, { intensity: 0 })).rejects.toThrow(/intensity must be in/);
    await expect(engine.benchmark({ threads: -1, seconds: 1 })).rejects.toThrow(RangeError);
  });

  it('applies the configured max multiplier', async () => {
    const engine = makeEngine({ policy: difficultyPolicy({ maxMultiplier: 1 }) });
    // 2x the send threshold is above a 1x ceiling; the send threshold itself is allowed.
    await expect(engine.generate(ROOT, 0xfffffffc00000000n)).rejects.toMatchObject({ code: 'difficulty-too-high' });
    const ok = makeEngine({ policy: difficultyPolicy({ maxMultiplier: 1 }) });
    await expect(ok.generate(ROOT, EASY)).resolves.toMatchObject({ backend: 'wasm' });
  });

  it('never returns a kernel answer that fails the reference check', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const liar = referenceBackend({ lies: [0n, 1n] });
    const engine = makeEngine({ wasm: async () => liar.backend });
    const result = await engine.generate(ROOT, MEDIUM);
    expect(validateWork(ROOT, result.work, MEDIUM).valid).toBe(true);
    expect(result.work).not.toBe('0000000000000000');
    expect((await engine.status()).kernelMismatches).toBe(2);
    expect(errors).toHaveBeenCalledTimes(2);
    expect(String(errors.mock.calls[0][0])).toMatch(/KERNEL MISMATCH/);
    expect(errors.mock.calls[0][1]).toMatchObject({ root: ROOT, nonce: '0000000000000000' });
    // Each retry starts from a fresh random nonce.
    expect(new Set(liar.calls.map((c) => c.startNonce)).size).toBe(3);
  });

  it('gives up on a WASM backend that only returns invalid work', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const liar = referenceBackend({ lies: Array(10).fill(5n) });
    const engine = makeEngine({ wasm: async () => liar.backend });
    await expect(engine.generate(ROOT, MEDIUM)).rejects.toThrow(/invalid answers/);
  });
});

describe('backend choice', () => {
  it("'auto' uses WebGPU when an adapter exists, and creates it once", async () => {
    let created = 0;
    const gpu = referenceBackend({ name: 'webgpu', label: 'test gpu' });
    const engine = makeEngine({
      webgpu: async () => {
        created++;
        return gpu.backend;
      },
    });
    const a = await engine.generate(ROOT, EASY);
    const b = await engine.generate(ROOT, EASY, { backend: 'auto', intensity: 0.5 });
    expect(a.backend).toBe('webgpu');
    expect(b.backend).toBe('webgpu');
    expect(created).toBe(1);
    expect(gpu.backend.intensity).toBe(0.5);
    const status = await engine.status();
    expect(status).toMatchObject({ backend: 'webgpu', label: 'test gpu', root: null, hashrate: 0 });
  });

  it("'auto' falls back to WASM when there is no adapter; 'webgpu' then fails clearly", async () => {
    let asked = 0;
    const engine = makeEngine({
      webgpu: async () => {
        asked++;
        return null;
      },
    });
    expect((await engine.generate(ROOT, EASY)).backend).toBe('wasm');
    await expect(engine.generate(ROOT, EASY, { backend: 'webgpu' })).rejects.toThrow(/WebGPU is not available/);
    expect(asked).toBe(1);
  });

  it("treats a WebGPU factory that throws as no adapter", async () => {
    const logs: string[] = [];
    const engine = makeEngine({
      webgpu: async () => {
        throw new Error('requestDevice failed');
      },
      log: plainLogger((m) => logs.push(m)),
    });
    expect((await engine.generate(ROOT, EASY)).backend).toBe('wasm');
    expect(logs.join('\n')).toMatch(/requestDevice failed/);
  });

  it("'wasm' never touches WebGPU and passes the thread count, replacing the pool when it changes", async () => {
    const made: { threads: number; backend: ReturnType<typeof referenceBackend> }[] = [];
    const engine = makeEngine({
      webgpu: async () => {
        throw new Error('must not be called');
      },
      wasm: async (threads) => {
        const b = referenceBackend({ threads });
        made.push({ threads, backend: b });
        return b.backend;
      },
      defaultThreads: 3,
    });
    await engine.generate(ROOT, EASY, { backend: 'wasm' });
    await engine.generate(ROOT, EASY, { backend: 'wasm' });
    await engine.generate(ROOT, EASY, { backend: 'wasm', threads: 2 });
    expect(made.map((m) => m.threads)).toEqual([3, 2]);
    await new Promise((r) => setTimeout(r, 0));
    expect(made[0].backend.disposed).toBe(1);
    expect(made[1].backend.disposed).toBe(0);
  });

  it('falls back to WASM mid-job when the GPU device is lost, and finishes the same job', async () => {
    const lost = Object.assign(new Error('device lost: destroyed'), { name: 'DeviceLostError' });
    const gpu = referenceBackend({ name: 'webgpu', chunk: 8, failWith: lost, failAfterChunks: 3 });
    const wasm = referenceBackend({ chunk: 64 });
    const logs: string[] = [];
    let gpuCreated = 0;
    const engine = makeEngine({
      webgpu: async () => {
        gpuCreated++;
        return gpu.backend;
      },
      wasm: async () => wasm.backend,
      log: plainLogger((m) => logs.push(m)),
    });
    const result = await engine.generate(ROOT, MEDIUM);
    expect(result.backend).toBe('wasm');
    expect(validateWork(ROOT, result.work, MEDIUM).valid).toBe(true);
    expect(result.hashes).toBeGreaterThanOrEqual(24); // the GPU's hashes count toward the job
    expect(gpu.disposed).toBe(1);
    expect(wasm.calls).toHaveLength(1);
    expect(logs.join('\n')).toMatch(/DeviceLostError.*WASM/);
    // The next job asks for a fresh GPU device.
    await engine.generate(ROOT, EASY, { backend: 'wasm' });
    await engine.generate(ROOT, EASY).catch(() => undefined);
    expect(gpuCreated).toBe(2);
  });

  it('Auto skips a software fallback adapter for WASM; an explicit WebGPU choice still uses it', async () => {
    const gpu = referenceBackend({ name: 'webgpu', label: 'swiftshader' });
    const logs: string[] = [];
    const engine = makeEngine({
      webgpu: async () => Object.assign(gpu.backend, { software: true }),
      log: plainLogger((m) => logs.push(m)),
    });
    expect((await engine.generate(ROOT, EASY)).backend).toBe('wasm');
    expect(logs.join('\n')).toMatch(/swiftshader is a software fallback/);
    expect((await engine.generate(ROOT, EASY, { backend: 'webgpu' })).backend).toBe('webgpu');
  });

  it('moves off a WebGPU kernel that keeps returning invalid work', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const gpu = referenceBackend({ name: 'webgpu', lies: Array(10).fill(7n) });
    const engine = makeEngine({ webgpu: async () => gpu.backend });
    const result = await engine.generate(ROOT, MEDIUM);
    expect(result.backend).toBe('wasm');
    expect(validateWork(ROOT, result.work, MEDIUM).valid).toBe(true);
    expect((await engine.status()).kernelMismatches).toBe(4);
  });

  it('reports a simulated device loss only when a GPU backend with that hook exists', async () => {
    let simulated = 0;
    const gpu = referenceBackend({ name: 'webgpu' });
    const hooked = Object.assign(gpu.backend, { simulateDeviceLoss: async () => void simulated++ });
    const engine = makeEngine({ webgpu: async () => hooked });
    expect(await engine.simulateDeviceLoss()).toBe(false); // not created yet
    await engine.generate(ROOT, EASY);
    expect(await engine.simulateDeviceLoss()).toBe(true);
    expect(simulated).toBe(1);
    expect(await makeEngine().simulateDeviceLoss()).toBe(false);
  });
});

describe('cancel, one job at a time', () => {
  it('cancel(root) stops the running search (case-insensitive) and its generate rejects', async () => {
    const engine = makeEngine();
    const job = engine.generate(ROOT, UNREACHABLE);
    await vi.waitUntil(async () => (await engine.status()).totalHashes > 0);
    expect(await engine.cancel(ROOT.toLowerCase())).toBe(true);
    const err = await job.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PowCancelledError);
    expect((err as PowCancelledError).root).toBe(ROOT);
    expect(await engine.cancel(ROOT)).toBe(false);
    expect((await engine.status()).root).toBeNull();
  });

  it('computes exactly what it is given: a second job while one runs is refused, not queued', async () => {
    const engine = makeEngine();
    const other = 'A'.repeat(64);
    const first = engine.generate(ROOT, UNREACHABLE);
    await vi.waitUntil(async () => (await engine.status()).totalHashes > 0);
    await expect(engine.generate(other, EASY)).rejects.toThrow(/busy with work for 718CC2121C3E6410/);
    await expect(engine.benchmark({ seconds: 0.1 })).rejects.toThrow(/busy/);
    expect((await engine.status()).root).toBe(ROOT);
    expect(await engine.cancel('b'.repeat(64))).toBe(false);
    expect(await engine.cancel(ROOT)).toBe(true);
    await expect(first).rejects.toBeInstanceOf(PowCancelledError);
    // Free again once the cancelled search has ended.
    const done = await engine.generate(other, EASY);
    expect(validateWork(other, done.work, EASY).valid).toBe(true);
  });

  it('dispose stops the running job and releases the backends', async () => {
    const gpu = referenceBackend({ name: 'webgpu' });
    const engine = new PowEngine({ webgpu: async () => gpu.backend, wasm: async () => referenceBackend().backend, defaultThreads: 1 });
    const running = engine.generate(ROOT, UNREACHABLE);
    await vi.waitUntil(async () => (await engine.status()).totalHashes > 0);
    engine.dispose();
    await expect(running).rejects.toBeInstanceOf(PowCancelledError);
    await new Promise((r) => setTimeout(r, 0));
    expect(gpu.disposed).toBe(1);
    await expect(engine.generate(ROOT, EASY)).rejects.toThrow(/disposed/);
  });
});

describe('status and hashrate', () => {
  it('pushes a positive hashrate while busy and 0 once idle', async () => {
    const engine = makeEngine({ statusPerSecond: 20 });
    const seen: EngineStatus[] = [];
    engine.onStatus((s) => seen.push(s));
    expect(seen[0]).toMatchObject({ hashrate: 0, root: null });
    const job = engine.generate(ROOT, UNREACHABLE);
    await vi.waitUntil(() => seen.some((s) => s.root === ROOT && s.hashrate > 0), { timeout: 5000 });
    await engine.cancel(ROOT);
    await job.catch(() => undefined);
    const last = seen[seen.length - 1];
    expect(last).toMatchObject({ hashrate: 0, root: null, backend: 'wasm' });
    const count = seen.length;
    await new Promise((r) => setTimeout(r, 150));
    expect(seen.length).toBe(count); // no pushes while idle
  });

  it('drops a listener that throws instead of failing the job', async () => {
    const engine = makeEngine();
    engine.onStatus(() => {
      throw new Error('page went away');
    });
    await expect(engine.generate(ROOT, EASY)).resolves.toMatchObject({ backend: 'wasm' });
  });
});

describe('benchmark', () => {
  it('measures each available backend for the given time', async () => {
    const gpu = referenceBackend({ name: 'webgpu', label: 'test gpu' });
    const engine = makeEngine({ webgpu: async () => gpu.backend, defaultThreads: 2 });
    const results = await engine.benchmark({ seconds: 0.2 });
    expect(results.map((r) => r.backend)).toEqual(['webgpu', 'wasm']);
    for (const r of results) {
      expect(r.hashes).toBeGreaterThan(0);
      expect(r.hashrate).toBeGreaterThan(0);
      expect(r.ms).toBeGreaterThanOrEqual(190);
      expect(r.compileMs).toBe(12);
    }
    expect(results[1].threads).toBe(2);
    const wasmOnly = await engine.benchmark({ backend: 'wasm', seconds: 0.1, threads: 1 });
    expect(wasmOnly).toHaveLength(1);
    expect(wasmOnly[0].threads).toBe(1);
    await expect(engine.benchmark({ seconds: 0 })).rejects.toThrow(RangeError);
  });

  it('measureBackend stops at the deadline', async () => {
    const b = referenceBackend();
    const r = await measureBackend(b.backend, 0.1);
    expect(r.hashes).toBeGreaterThan(0);
    expect(b.calls.every((c) => c.signal.aborted)).toBe(true);
  });
});

describe('across the Comlink boundary (as the page talks to the engine worker)', () => {
  it('keeps results and typed errors intact, and delivers proxied status callbacks', async () => {
    const Comlink = await import('comlink');
    const { installEngineErrorTransfer } = await import('./engine-errors.ts');
    installEngineErrorTransfer();
    const { port1, port2 } = new MessageChannel();
    const engine = makeEngine({ statusPerSecond: 20 });
    Comlink.expose(engine, port1 as unknown as Parameters<typeof Comlink.expose>[1]);
    const remote = Comlink.wrap<PowEngine>(port2 as unknown as Parameters<typeof Comlink.wrap>[0]);
    try {
      const result = await remote.generate(ROOT, EASY, { backend: 'wasm' });
      expect(validateWork(ROOT, result.work, EASY).valid).toBe(true);

      const bad = await remote.generate(ROOT, 0xffffffffffffffffn).catch((e: unknown) => e);
      expect(bad).toBeInstanceOf(PowInputError);
      expect((bad as PowInputError).code).toBe('difficulty-too-high');

      const seen: EngineStatus[] = [];
      await remote.onStatus(Comlink.proxy((s: EngineStatus) => void seen.push(s)));
      const job = remote.generate(ROOT, UNREACHABLE);
      await vi.waitUntil(() => seen.some((s) => s.hashrate > 0), { timeout: 5000 });
      expect(await remote.cancel(ROOT)).toBe(true);
      const err = await job.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PowCancelledError);
      expect((err as PowCancelledError).root).toBe(ROOT);
    } finally {
      remote[Comlink.releaseProxy]();
      port1.close();
      port2.close();
    }
  });
});

describe('sustained hashrate', () => {
  it('keeps the rate over computing time, the busy share and the kernel between jobs', async () => {
    const tuned = referenceBackend({ name: 'webgpu', label: 'tuned gpu' }).backend;
    Object.assign(tuned, { kernel: { variant: 'plain-n8-w256', calibratedRate: 5e9, state: 'tuned' } });
    const engine = makeEngine({ webgpu: async () => tuned });
    await engine.generate(ROOT, MEDIUM, { backend: 'webgpu' });
    await new Promise((r) => setTimeout(r, 50)); // idle after the job
    const status = await engine.status();
    expect(status.hashrate).toBe(0); // the live rate: nothing runs now
    expect(status.sustainedHashrate).toBeGreaterThan(0);
    expect(status.busyShare).toBeGreaterThan(0);
    expect(status.busyShare).toBeLessThan(1);
    expect(status.kernel).toBe('plain-n8-w256');
    expect(status.capacity).toBe(5e9);
    expect(status.kernelState).toBe('tuned');
  });

  it("pushes the tuner's state when it changes between jobs (calibration ends after the job)", async () => {
    const changed = new Set<() => void>();
    const tuned = referenceBackend({ name: 'webgpu', label: 'tuned gpu' }).backend;
    Object.assign(tuned, {
      kernel: { variant: 'biased-n64-w64', calibratedRate: 2e6, state: 'calibrating' },
      onKernelChange: (listener: () => void) => void changed.add(listener),
    });
    const engine = makeEngine({ webgpu: async () => tuned });
    const seen: EngineStatus[] = [];
    engine.onStatus((s) => void seen.push(s));
    await engine.generate(ROOT, EASY, { backend: 'webgpu' });
    expect(changed.size).toBe(1);
    expect((await engine.status()).kernelState).toBe('calibrating');
    const before = seen.length;
    Object.assign(tuned, { kernel: { variant: 'plain-n64-w64', calibratedRate: 3e6, state: 'tuned' } });
    for (const listener of changed) listener();
    expect(seen.length).toBe(before + 1);
    expect(seen.at(-1)).toMatchObject({ kernel: 'plain-n64-w64', calibratedRate: 3e6, kernelState: 'tuned', root: null });
  });

  it("does not count a backend's start-up as computing time, so the first job gives the rate", async () => {
    const STARTUP_MS = 200;
    const engine = makeEngine({
      wasm: async (threads) => {
        // Threads spawning, a kernel compiling: time the device does no hashing.
        await new Promise((r) => setTimeout(r, STARTUP_MS));
        return referenceBackend({ threads }).backend;
      },
    });
    const result = await engine.generate(ROOT, MEDIUM, { backend: 'wasm' });
    const status = await engine.status();
    // result.ms runs from the request: the start-up (at least STARTUP_MS) and then the search.
    expect(status.totals.busyMs).toBeLessThanOrEqual(result.ms - STARTUP_MS);
    expect(status.totals.hashes).toBe(result.hashes);
    expect(status.sustainedHashrate).toBeCloseTo((result.hashes * 1000) / status.totals.busyMs, 3);
  });

  it('keeps the backends apart: after a fallback the figures are the WASM threads alone', async () => {
    const counted = { webgpu: 0, wasm: 0 };
    const counting = (made: ReturnType<typeof referenceBackend>, name: BackendName) => {
      const search = made.backend.search.bind(made.backend);
      made.backend.search = (req) =>
        search({ ...req, onHashes: (n) => { counted[name] += n; req.onHashes?.(n); } });
      return made.backend;
    };
    const gpu = counting(referenceBackend({ name: 'webgpu', failWith: new Error('device lost'), failAfterChunks: 20 }), 'webgpu');
    Object.assign(gpu, { kernel: { variant: 'plain-n8-w256', calibratedRate: 1e12, state: 'tuned' } });
    const engine = makeEngine({
      webgpu: async () => gpu,
      wasm: async (threads) => counting(referenceBackend({ threads }), 'wasm'),
    });
    const result = await engine.generate(ROOT, MEDIUM, { backend: 'webgpu' });
    expect(result.backend).toBe('wasm');
    expect(counted.webgpu).toBeGreaterThan(0);
    const status = await engine.status();
    expect(status.backend).toBe('wasm');
    expect(status.device).toEqual({ backend: 'wasm', threads: 1, simd: false });
    expect(status.totals.hashes).toBe(counted.wasm);
    expect(result.hashes).toBe(counted.webgpu + counted.wasm);
    // The GPU's kernel and its calibrated rate are not the CPU threads' capacity.
    expect(status.calibratedRate).toBeNull();
    expect(status.capacity === null || status.capacity < 1e12).toBe(true);
  });

  it('never shows a sustained rate above the capacity of the backend that produced it', async () => {
    const gpu = referenceBackend({ name: 'webgpu' }).backend;
    // A calibration that came out far too low (a short window on a loaded machine).
    Object.assign(gpu, { kernel: { variant: 'plain-n8-w256', calibratedRate: 10, state: 'tuned' } });
    const engine = makeEngine({ webgpu: async () => gpu });
    await engine.generate(ROOT, MEDIUM, { backend: 'webgpu' });
    const status = await engine.status();
    expect(status.sustainedHashrate).toBeGreaterThan(10);
    expect(status.calibratedRate).toBe(10);
    expect(status.capacity).toBeGreaterThanOrEqual(status.sustainedHashrate);
  });
});

describe('pinned kernel', () => {
  it('hands a pinned variant to the WebGPU backend, now or when it is created, and refuses unknown names', async () => {
    const forced: (string | null)[] = [];
    const gpu = referenceBackend({ name: 'webgpu' }).backend;
    Object.assign(gpu, { forceKernel: (variant: string | null) => void forced.push(variant) });
    const engine = makeEngine({ webgpu: async () => gpu });
    await engine.setKernel('plain-n8-w256'); // before the backend exists
    await engine.generate(ROOT, MEDIUM, { backend: 'webgpu' });
    expect(forced).toEqual(['plain-n8-w256']);
    await engine.setKernel(null);
    expect(forced).toEqual(['plain-n8-w256', null]);
    await expect(engine.setKernel('fancy')).rejects.toThrow(RangeError);
  });
});
