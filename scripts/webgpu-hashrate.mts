/**
 * Measures the WebGPU kernel's hashrate in Node (Dawn): searches an unreachable difficulty for a
 * few seconds and counts hashes.
 *
 *   npx tsx scripts/webgpu-hashrate.mts [--seconds 5] [--backend auto|vulkan|opengles]
 *                                       [--kernel biased-n64-w64|yardstick|...] [--target-ms 50]
 *
 * Besides wall-clock MH/s it prints MH per CPU-second of this process: on a software adapter
 * (llvmpipe) the GPU is this process's own threads, so that figure survives other load on a
 * shared machine (multiply by the core count for an idle machine's estimate).
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { createNodeGpu, loadBenchSources } from '../src/pow-node/gpu.ts';
import { createWebGpuBackend } from '../src/pow/webgpu.ts';
import { plainLogger } from '../src/log.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    backend: { type: 'string', default: 'auto' },
    kernel: { type: 'string' },
    'target-ms': { type: 'string' },
  },
});
const backendName = values.backend as 'auto' | 'vulkan' | 'opengles';
const gpu = await createNodeGpu({ backend: backendName, log: plainLogger((m) => console.error(m)) });
if (!gpu) {
  console.error('no WebGPU adapter');
  process.exit(1);
}
const backend = await createWebGpuBackend({
  gpu,
  shaders: loadBenchSources(),
  variant: values.kernel,
  targetDispatchMs: values['target-ms'] ? Number(values['target-ms']) : undefined,
});
const root = new Uint8Array(32).map((_, i) => (i * 37 + 11) & 0xff);
const seconds = Number(values.seconds);

// One second of warm-up lets the dispatch size settle before counting.
await backend.search({
  root,
  difficulty: 0xffffffffffffffffn,
  startNonce: 0n,
  signal: AbortSignal.timeout(1000),
});
let hashes = 0;
const cpuBefore = process.cpuUsage();
const started = performance.now();
await backend.search({
  root,
  difficulty: 0xffffffffffffffffn,
  startNonce: 1n << 40n,
  signal: AbortSignal.timeout(seconds * 1000),
  onHashes: (n) => {
    hashes += n;
  },
});
const ms = performance.now() - started;
const cpu = process.cpuUsage(cpuBefore);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
console.log(
  JSON.stringify({
    adapter: backend.label,
    compileMs: Math.round(backend.compileMs),
    kernel: backend.variant.name,
    seconds: +(ms / 1000).toFixed(2),
    mhs: +(hashes / ms / 1000).toFixed(2),
    mhPerCpuSecond: +(hashes / cpuSeconds / 1e6).toFixed(2),
    cores: cpus().length,
  }),
);
backend.dispose();
