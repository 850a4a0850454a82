/**
 * WebGPU for Node through Dawn (the `webgpu` package), for the kernel tests, `dpow-web bench` and
 * the headless worker. The browser uses navigator.gpu instead; both feed the same
 * createWebGpuBackend (src/pow/webgpu.ts).
 *
 * Backends on Linux: Vulkan for a real GPU (needs the Vulkan loader and a vendor driver), else
 * OpenGL ES through EGL, which on a machine with no GPU is Mesa's llvmpipe (needs libegl1 and
 * libgl1-mesa-dri). Dawn only hands out the OpenGL ES adapter in compatibility mode. Elsewhere
 * Dawn picks its native backend (Metal, D3D12).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { create, globals } from 'webgpu';
import { silentLogger, type Logger } from '../log.ts';
import type { KernelSources } from '../pow/kernel-family.ts';

export type NodeGpuBackend = 'auto' | 'vulkan' | 'opengles';

export interface NodeGpuOptions {
  backend?: NodeGpuBackend;
  /** Where to say which backends were tried and why they were skipped. */
  log?: Logger;
}

const LIBRARY_DIRS = [
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/usr/lib64',
  '/usr/lib',
  '/usr/local/lib',
  '/lib/x86_64-linux-gnu',
  '/lib/aarch64-linux-gnu',
];
const ICD_DIRS = ['/etc/vulkan/icd.d', '/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
/** Mesa's software Vulkan: Dawn refuses older versions, and llvmpipe via GL ES is as fast. */
const SOFTWARE_ICDS = /lvp_icd|lavapipe/i;

function hasVulkanLoader(): boolean {
  const extra = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  return [...extra, ...LIBRARY_DIRS].some((dir) => existsSync(`${dir}/libvulkan.so.1`));
}

/** True when some Vulkan driver other than Mesa's software one is registered. */
function hasVulkanDriver(): boolean {
  const named = process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES;
  if (named) return named.split(':').some((file) => file && existsSync(file));
  for (const dir of ICD_DIRS) {
    let files: string[];
    try {
      files = readdirSync(dir);
    } catch {
      continue;
    }
    for (const file of files) {
      if (!file.endsWith('.json') || SOFTWARE_ICDS.test(file)) continue;
      if (hardwarePresentFor(`${dir}/${file}`)) return true;
    }
  }
  return false;
}

/**
 * Debian ships Intel and AMD Vulkan drivers with Mesa whether or not such a GPU exists; only
 * count them when the kernel has a render node for them. Other vendors' ICDs count as present.
 */
function hardwarePresentFor(icdFile: string): boolean {
  let libraryPath = '';
  try {
    libraryPath = String(JSON.parse(readFileSync(icdFile, 'utf8'))?.ICD?.library_path ?? '');
  } catch {
    return false;
  }
  const mesaDriver = /libvulkan_(intel|intel_hasvk|radeon)\.so/.exec(libraryPath);
  if (!mesaDriver) return libraryPath !== '';
  try {
    return readdirSync('/dev/dri').some((node) => node.startsWith('renderD'));
  } catch {
    return false;
  }
}

/** Makes GPUBufferUsage, GPUMapMode etc. global where the runtime does not already have them. */
function installGlobals(): void {
  const target = globalThis as Record<string, unknown>;
  for (const [name, value] of Object.entries(globals as Record<string, unknown>)) {
    if (!(name in target)) target[name] = value;
  }
}

/** A GPU object for `backend` if it offers an adapter (a software fallback only if `acceptFallback`). */
async function tryBackend(
  backend: 'vulkan' | 'opengles' | 'native',
  acceptFallback: boolean,
  log: Logger,
): Promise<GPU | null> {
  if (backend === 'opengles') process.env.EGL_PLATFORM ??= 'surfaceless';
  let gpu: GPU;
  try {
    gpu = create(backend === 'native' ? [] : [`backend=${backend}`]);
  } catch (err) {
    log.info(`webgpu: ${backend} backend unavailable: ${(err as Error).message}`);
    return null;
  }
  const requests: GPURequestAdapterOptions[] =
    backend === 'opengles'
      ? [{ powerPreference: 'high-performance' }, { featureLevel: 'compatibility' }]
      : [{ powerPreference: 'high-performance' }];
  for (const request of requests) {
    try {
      const adapter = await gpu.requestAdapter(request);
      if (adapter && (acceptFallback || !adapter.info.isFallbackAdapter)) return gpu;
      if (adapter) log.info(`webgpu: skipping the ${backend} software adapter (${adapter.info.description})`);
    } catch (err) {
      log.warn(`webgpu: ${backend} adapter request failed: ${(err as Error).message}`);
    }
  }
  log.info(`webgpu: no ${backend} adapter`);
  return null;
}

/**
 * A WebGPU entry point for Node, or null when this machine has no usable adapter (never throws
 * for "no GPU"). 'auto' tries Vulkan first when a loader and a hardware driver are installed,
 * then OpenGL ES through EGL (surfaceless, so no display is needed).
 *
 * Nothing here keeps the process alive: once the backend built on it is disposed (its device
 * destroyed) and no GPU work is pending, Node exits (webgpu.test.ts checks this in a child
 * process).
 */
export async function createNodeGpu(options: NodeGpuOptions = {}): Promise<GPU | null> {
  const backend = options.backend ?? 'auto';
  const log = options.log ?? silentLogger;
  installGlobals();
  if (backend === 'vulkan' || backend === 'opengles') return tryBackend(backend, true, log);
  // macOS (Metal) and Windows (D3D12): Dawn's own choice is the right one.
  if (process.platform !== 'linux') return tryBackend('native', true, log);
  if (hasVulkanLoader() && hasVulkanDriver()) {
    // A Vulkan software adapter (SwiftShader) is slower than llvmpipe through OpenGL ES.
    const gpu = await tryBackend('vulkan', false, log);
    if (gpu) return gpu;
  } else {
    log.info('webgpu: no Vulkan loader or hardware driver; using OpenGL ES');
  }
  return tryBackend('opengles', true, log);
}

const shaderText = (file: string): string => readFileSync(new URL(`../../shaders/${file}`, import.meta.url), 'utf8');

/** The WGSL kernel family's sources (shaders/nano-pow-<carry>.wgsl; see src/pow/kernel-family.ts). */
export function loadKernelSources(): KernelSources {
  return { plain: shaderText('nano-pow-plain.wgsl'), biased: shaderText('nano-pow-biased.wgsl') };
}

/** The family plus the bench's naive yardstick (shaders/yardstick.wgsl). */
export function loadBenchSources(): KernelSources {
  return { ...loadKernelSources(), yardstick: shaderText('yardstick.wgsl') };
}
