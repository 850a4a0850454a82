// `npm run bench:device [-- --out DIR] [-- --seconds N]`: the whole WebGPU measurement for a
// machine with a real GPU, in one run of a few minutes, written as JSON to $OUT (or --out, or
// ./bench-device). For each adapter present: the tuner's calibration table, every kernel variant
// and the naive yardstick (raw MH/s and the ratio to it), and the adapter's info.
//   - Dawn in Node: Vulkan when a loader and a driver are there, else OpenGL ES (llvmpipe).
//   - Headless Chromium on Vulkan (and its default adapter), when Chromium is installed; a run
//     that gets only a software adapter says so in its adapter info.
// A bare Linux machine with an NVIDIA driver may lack the Vulkan loader: Debian's libvulkan1 (and
// the GL/EGL dispatch libraries) downloaded into .gl/ beside this checkout are unpacked first when
// `ldconfig -p` lists no libvulkan (see the README's performance section).
// It also runs on a machine without a GPU (falling back to what exists); a test runs it that way.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { VariantBenchReport } from '../src/cli/bench-variants.ts';
import { chromiumVariantRates, type VariantRun } from './chromium-variant-rates.ts';

const ROOT_DIR = fileURLToPath(new URL('..', import.meta.url));
const CHROMIUM = process.env.DPOW_CHROMIUM ?? '/usr/lib/chromium/chromium';
const NVIDIA_ICD = '/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json';
const NVIDIA_EGL = '/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string' },
    seconds: { type: 'string', default: '6' },
    chromium: { type: 'boolean', default: true },
  },
  allowNegative: true,
});
const seconds = Number(args.seconds);
if (!(seconds > 0)) throw new Error(`--seconds must be positive, got ${args.seconds}`);
const outDir = resolve(args.out ?? process.env.OUT ?? 'bench-device');
mkdirSync(outDir, { recursive: true });
const started = Date.now();
const notes: string[] = [];
const log = (line: string) => process.stderr.write(`bench:device: ${line}\n`);

function quiet(command: string, argv: string[]): string | null {
  try {
    return execFileSync(command, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/** Brings the Vulkan loader along when the machine has none (needs root: dpkg -x into /). */
function prepareVulkan() {
  const listed = quiet('ldconfig', ['-p']) ?? '';
  const debs = existsSync(join(ROOT_DIR, '.gl')) ? readdirSync(join(ROOT_DIR, '.gl')).filter((f) => f.endsWith('.deb')) : [];
  if (!/libvulkan\.so\.1/.test(listed) && debs.length > 0) {
    if (process.getuid?.() === 0) {
      for (const deb of debs) execFileSync('dpkg', ['-x', join(ROOT_DIR, '.gl', deb), '/']);
      execFileSync('ldconfig');
      notes.push(`unpacked ${debs.length} packages from .gl/ (no Vulkan loader was installed)`);
    } else {
      notes.push('no Vulkan loader, and not root: .gl/ left packed');
    }
  }
  if (!process.env.VK_DRIVER_FILES && existsSync(NVIDIA_ICD)) {
    process.env.VK_DRIVER_FILES = NVIDIA_ICD;
    notes.push(`VK_DRIVER_FILES=${NVIDIA_ICD}`);
  }
  if (!process.env.__EGL_VENDOR_LIBRARY_FILENAMES && existsSync(NVIDIA_EGL)) {
    process.env.__EGL_VENDOR_LIBRARY_FILENAMES = NVIDIA_EGL;
  }
}

function run(command: string, argv: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, argv, { cwd: ROOT_DIR, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolvePromise(out) : reject(new Error(`${command} ${argv.join(' ')} exited ${code}`))));
  });
}

prepareVulkan();
const machine = {
  cpus: cpus()[0]?.model ?? 'unknown',
  cores: availableParallelism(),
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  gpu: quiet('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader']),
  vulkanLoader: /libvulkan\.so\.1/.test(quiet('ldconfig', ['-p']) ?? ''),
};
log(`machine: ${JSON.stringify(machine)}`);

const results: { at: string; secondsPerVariant: number; machine: typeof machine; notes: string[]; runs: VariantRun[]; ms?: number } = {
  at: new Date().toISOString(),
  secondsPerVariant: seconds,
  machine,
  notes,
  runs: [],
};
const save = () => writeFileSync(join(outDir, 'bench-device.json'), `${JSON.stringify(results, null, 2)}\n`);

// Dawn in Node: the tuner calibrates (--tune), then every variant and the yardstick.
try {
  log('Dawn in Node');
  const out = await run(process.execPath, ['bin/dpow-web.mjs', 'bench', '--tune', '--json', '--seconds', String(seconds)]);
  results.runs.push({ name: 'node-dawn', ...(JSON.parse(out.trim().split('\n').pop()!) as VariantBenchReport) });
} catch (err) {
  results.runs.push({ name: 'node-dawn', error: (err as Error).message });
}
save();

if (args.chromium && existsSync(CHROMIUM)) {
  log('headless Chromium');
  const runs = [
    { name: 'chromium-vulkan', flags: ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan', '--ignore-gpu-blocklist'] },
    { name: 'chromium-default', flags: ['--enable-unsafe-webgpu', '--ignore-gpu-blocklist'] },
  ];
  const rows = await chromiumVariantRates({ chromiumPath: CHROMIUM, runs, seconds }).catch((err: Error): VariantRun[] => [
    { name: 'chromium', error: err.message },
  ]);
  results.runs.push(...rows);
} else {
  notes.push(args.chromium ? `no Chromium at ${CHROMIUM}` : 'Chromium skipped (--no-chromium)');
}
const ms = Date.now() - started;
results.ms = ms;
save();

for (const r of results.runs) {
  if (r.error !== undefined) {
    log(`${r.name}: FAILED ${r.error}`);
    continue;
  }
  const tuned = r.rows.find((row) => row.tuned);
  log(
    `${r.name} on ${r.label}: tuned ${tuned?.variant} ${((tuned?.hashrate ?? 0) / 1e6).toFixed(1)} MH/s = ${tuned?.ratio.toFixed(2)}x the yardstick`,
  );
}
log(`wrote ${join(outDir, 'bench-device.json')} in ${(ms / 1000).toFixed(0)} s`);
