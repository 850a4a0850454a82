// Builds the WASM proof-of-work kernels from the AssemblyScript sources in assembly/:
//
//   build/wasm/nano-pow-scalar.wasm   plain i64 kernel, runs everywhere
//   build/wasm/nano-pow-simd.wasm     WASM SIMD kernel: two nonces in i64x2 lanes and one u64 per step
//
// Run by `prepare` (at the end of `npm install` / `npm ci`, once the dev dependencies, tsx
// included, are in) and `npm run build:wasm`. Needs only the assemblyscript npm package.
// Exits non-zero with the compiler's diagnostics on any error, and refuses to build sources that
// are stale against kernels/gen-assembly.mjs.
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { kernelSource, KERNEL_FILES, type KernelFlavour } from '../kernels/gen-assembly.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = `${root}build/wasm`;

const BUILDS: Array<{ flavour: KernelFlavour; out: string; flags: string[] }> = [
  { flavour: 'scalar', out: 'nano-pow-scalar.wasm', flags: [] },
  { flavour: 'simd', out: 'nano-pow-simd.wasm', flags: ['--enable', 'simd'] },
];

async function main() {
  let asc: typeof import('assemblyscript/asc');
  try {
    asc = await import('assemblyscript/asc');
  } catch (error) {
    throw new Error(`assemblyscript is not installed (npm ci installs it): ${(error as Error).message}`);
  }
  mkdirSync(outDir, { recursive: true });

  for (const build of BUILDS) {
    const source = `assembly/${KERNEL_FILES[build.flavour]}`;
    const onDisk = readFileSync(`${root}${source}`, 'utf8');
    if (onDisk !== kernelSource(build.flavour)) {
      throw new Error(`${source} is stale: run \`node kernels/gen-assembly.mjs\` and commit the result`);
    }
    const started = performance.now();
    const args = [
      source,
      '--outFile',
      `build/wasm/${build.out}`,
      '-O3',
      '--runtime',
      'stub',
      '--noAssert',
      // No abort import: the kernel has nothing that can fail, so the module needs no imports.
      '--use',
      'abort=',
      '--baseDir',
      root,
      ...build.flags,
    ];
    const { error, stderr } = await asc.main(args);
    if (error) {
      throw new Error(`asc failed for ${source}: ${error.message}\n${stderr.toString()}`);
    }
    const ms = Math.round(performance.now() - started);
    console.log(`build-wasm: build/wasm/${build.out} (${ms} ms)`);
  }
}

main().catch((error: Error) => {
  console.error(`build-wasm: ${error.message}`);
  process.exit(1);
});
