/**
 * The WebGPU backend: runs the kernel family (shaders/nano-pow-*.wgsl) on whatever GPU the
 * runtime offers (the browser's navigator.gpu, or Dawn's GPU object in Node from
 * src/pow-node/gpu.ts).
 *
 * Reads top to bottom like a webgpu-samples program: adapter, device, pipeline, buffers, dispatch,
 * readback. The buffer layout the host shares with the kernel is src/pow/kernel-layout.ts.
 *   - Dispatches are pipelined: PIPELINE_DEPTH are queued at once, each with its own params,
 *     result and readback buffers, so the GPU has the next dispatch before the host reads the
 *     previous one back (mapAsync), and never waits on the host.
 *   - Dispatch size adapts: the measured throughput sets the next size so that one
 *     dispatch takes about targetDispatchMs (short enough for a prompt cancel and no GPU watchdog,
 *     long enough to keep the GPU busy).
 *   - Intensity < 1 runs one dispatch at a time and idles between them (setTimeout). Results come
 *     from mapAsync promises, never from animation frames or timer polling, so a hidden tab keeps
 *     working.
 *   - A lost device is re-created and the same search continues from its oldest unfinished
 *     dispatch; when that fails the search rejects with a DeviceLostError (the engine then falls
 *     back to WASM).
 * Found nonces are returned unchecked; the engine validates them with the reference rule.
 */
import { silentLogger, type Logger } from '../log.ts';
import { BINDING, decodeResult, encodeParams, PARAMS_BYTES, RESULT_BYTES, VALUE_BYTES } from './kernel-layout.ts';
import { DEFAULT_VARIANT, type KernelSources, type KernelVariant, requireVariant } from './kernel-family.ts';
import type { KernelHit, PowBackend, SearchRequest, WebGpuAdapterInfo } from './types.ts';

export type { WebGpuAdapterInfo } from './types.ts';

export interface WebGpuBackendOptions {
  /** navigator.gpu in a browser, or createNodeGpu() in Node. */
  gpu: GPU;
  /** The WGSL text of each kernel source (shaders/nano-pow-<carry>.wgsl; see kernel-family.ts). */
  shaders: KernelSources;
  /** The variant to run (kernel-family.ts); default DEFAULT_VARIANT until setVariant() says otherwise. */
  variant?: string;
  /** Share of GPU time to use, in (0, 1]; default 1. */
  intensity?: number;
  /** Aimed-for duration of one dispatch; default 50 ms. */
  targetDispatchMs?: number;
  log?: Logger;
  /**
   * Most nonces one dispatch may cover (default 2^31). Dispatch sizes start at
   * min(65536, this) and adapt toward targetDispatchMs within this bound.
   */
  maxDispatchNonces?: number;
  /**
   * Cap on workgroups per grid dimension, below the device's maxComputeWorkgroupsPerDimension
   * (which it never exceeds). Larger dispatches use a 2-D grid.
   */
  maxWorkgroupsPerDimension?: number;
}

export interface WebGpuBackend extends PowBackend {
  readonly name: 'webgpu';
  readonly adapterInfo: WebGpuAdapterInfo;
  /** Shader module + pipeline creation time of the current device, in ms. */
  readonly compileMs: number;
  /** The kernel variant searches run with. */
  readonly variant: KernelVariant;
  /** Switches the kernel variant for the searches that follow (compiled on first use). */
  setVariant(name: string): void;
  /**
   * Raw hashrate (hashes/s) of `variant` over about `ms` of searching an impossible difficulty,
   * or null when `signal` stopped it first. Runs between searches like any other search.
   */
  measure(variant: string, ms: number, signal?: AbortSignal): Promise<number | null>;
  /** Changes the GPU share in (0, 1] for the dispatches that follow. */
  setIntensity(intensity: number): void;
  /** Tests only: destroys the device as a driver reset would. */
  simulateDeviceLoss(): void;
  /** Tests only: the work value of each nonce startNonce .. startNonce + count - 1. */
  computeValues(root: Uint8Array, startNonce: bigint, count: number): Promise<BigUint64Array>;
}

/** The device went away and could not be brought back. */
export class DeviceLostError extends Error {
  override readonly name = 'DeviceLostError';
}

// Spec-defined flag values, so this module needs no runtime globals beyond the GPU object.
const USAGE_MAP_READ = 0x0001;
const USAGE_COPY_SRC = 0x0004;
const USAGE_COPY_DST = 0x0008;
const USAGE_UNIFORM = 0x0040;
const USAGE_STORAGE = 0x0080;
const MAP_READ = 0x0001;

const U64_MASK = (1n << 64n) - 1n;
const PIPELINE_DEPTH = 2;
/** Smallest dispatch, and the first one of a new backend (a slow GPU still answers fast). */
const MIN_BATCH = 1 << 16;
/** Nonce offsets within a dispatch are u32 in the shader. */
const MAX_BATCH = 2 ** 31;
/** Device re-creations allowed within one search before giving up. */
const MAX_RECOVERIES = 3;
/** Completed dispatches the throughput estimate spans. */
const RATE_WINDOW = 4;

const SHADER_STAGE_COMPUTE = 0x4;
/** The largest workgroup a family member uses. */
const MAX_WORKGROUP_SIZE = 256;

interface Slot {
  params: GPUBuffer;
  result: GPUBuffer;
  readback: GPUBuffer;
  bindGroup: GPUBindGroup;
  /** Settles when the readback buffer is unmapped and the slot can be reused. */
  idle: Promise<void>;
}

/** One device and everything made on it; thrown away whole when the device is lost. */
interface DeviceContext {
  device: GPUDevice;
  info: WebGpuAdapterInfo;
  /** One module per kernel source, one search pipeline per variant, made on first use. */
  modules: Map<string, GPUShaderModule>;
  searchPipelines: Map<string, GPUComputePipeline>;
  valuesPipelines: Map<string, GPUComputePipeline>;
  /** The explicit layout every search pipeline shares, so the slots serve every variant. */
  searchLayout: GPUPipelineLayout;
  slots: Slot[];
  maxPerDimension: number;
  compileMs: number;
  /** Called once when the device is lost (or destroyed). */
  lostListeners: Set<() => void>;
  isLost: boolean;
}

interface Dispatch {
  base: bigint;
  nonces: number;
  done: Promise<{ found: boolean; nonce: bigint } | { error: unknown }>;
}

/** How big one variant's dispatches are. */
interface Sizing {
  /** Nonces per dispatch, steered toward targetDispatchMs between min and max. */
  batch: number;
  /** Last measured throughput in nonces per ms (sizes the idle gap at intensity < 1). */
  rate: number;
  min: number;
  max: number;
  /** Dispatches in flight. */
  depth: number;
}

/** What one search runs: a variant, its pipeline on the current device, and its sizing. */
interface Kernel {
  variant: KernelVariant;
  pipeline: GPUComputePipeline;
  sizing: Sizing;
}

/** The root measure() hashes (any root does: the difficulty is unreachable). */
const MEASURE_ROOT = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);

type SearchOutcome =
  | { kind: 'hit'; work: bigint }
  | { kind: 'aborted' }
  | { kind: 'lost'; resumeFrom: bigint };

// ---- adapter ------------------------------------------------------------------------------

/** Renderers that run on the CPU: an "adapter" that is a software rasteriser, not a GPU. */
const SOFTWARE_RENDERERS: Record<string, string> = {
  llvmpipe: 'llvmpipe',
  lavapipe: 'lavapipe',
  softpipe: 'softpipe',
  swiftshader: 'SwiftShader',
  warp: 'WARP',
};
const SOFTWARE_PATTERN = new RegExp(`\\b(${Object.keys(SOFTWARE_RENDERERS).join('|')})\\b`, 'i');

/** The software rasteriser an adapter string names ("llvmpipe-llvm-15-0-6-256-bits-"), or null. */
export function softwareRenderer(text: string): string | null {
  const match = SOFTWARE_PATTERN.exec(text.replace(/[-_]/g, ' '));
  return match ? SOFTWARE_RENDERERS[match[1].toLowerCase()] : null;
}

const capitalize = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

/**
 * The adapter for people: its name, what the runtime adds (vendor, architecture, driver) and
 * what kind of device it is. Browsers may hide every string (Chromium does for its OpenGL ES
 * adapter); then it says so rather than invent a name.
 *   Dawn on llvmpipe: "llvmpipe (Mesa 22.3.6, OpenGL ES 3.2) · software rasteriser · compatibility mode"
 *   Chromium default: "SwiftShader (Google) · software rasteriser"
 */
export function describeAdapter(info: WebGpuAdapterInfo): string {
  // Dawn's OpenGL ES description is the GL version string: the API and driver, not the device.
  const gl = /^OpenGL version (OpenGL(?: ES)? [\d.]+)\s*(.*)$/.exec(info.description);
  const description = gl ? '' : info.description;
  const software = softwareRenderer([info.description, info.device, info.architecture].join(' '));
  // Dawn slugs the device string ("llvmpipe-llvm-15-0-6-256-bits-"): a known renderer reads better.
  const name = description || software || info.device || info.architecture || info.vendor;
  const extras = [info.vendor, info.architecture]
    .filter((part) => part && !name.toLowerCase().includes(part.toLowerCase()))
    .map(capitalize);
  if (gl) extras.push(...[gl[2], gl[1]].filter(Boolean));
  const parts = [name ? `${name}${extras.length ? ` (${extras.join(', ')})` : ''}` : 'unnamed adapter (the runtime does not name it)'];
  if (software || info.isFallbackAdapter) parts.push('software rasteriser');
  if (info.featureLevel === 'compatibility') parts.push('compatibility mode');
  return parts.join(' · ');
}

async function requestAdapter(
  gpu: GPU,
  options: GPURequestAdapterOptions,
  log: Logger,
): Promise<GPUAdapter | null> {
  try {
    return await gpu.requestAdapter(options);
  } catch (err) {
    log.warn(`webgpu: requestAdapter(${JSON.stringify(options)}) failed: ${(err as Error).message}`);
    return null;
  }
}

/**
 * A normal adapter first; a compatibility-mode one when there is none, or when the normal one is
 * a software fallback (Chromium with --use-webgpu-adapter=opengles hands out llvmpipe, much faster
 * than SwiftShader, only to compatibility requests).
 */
async function pickAdapter(
  gpu: GPU,
  log: Logger,
): Promise<{ adapter: GPUAdapter; featureLevel: 'core' | 'compatibility' } | null> {
  const core = await requestAdapter(gpu, { powerPreference: 'high-performance' }, log);
  if (core && !core.info.isFallbackAdapter) return { adapter: core, featureLevel: levelOf(core, 'core') };
  const compat = await requestAdapter(gpu, { featureLevel: 'compatibility' }, log);
  if (compat && (!compat.info.isFallbackAdapter || !core)) {
    return { adapter: compat, featureLevel: levelOf(compat, 'compatibility') };
  }
  return core ? { adapter: core, featureLevel: levelOf(core, 'core') } : null;
}

function levelOf(adapter: GPUAdapter, requested: 'core' | 'compatibility'): 'core' | 'compatibility' {
  const reported = (adapter as { featureLevel?: string }).featureLevel;
  if (reported === 'core' || reported === 'compatibility') return reported;
  if (adapter.features.has('core-features-and-limits')) return 'core';
  return requested;
}

// ---- device -------------------------------------------------------------------------------

/** Opens a device on the best adapter, compiles the kernel and makes the dispatch slots. */
async function openDevice(
  options: WebGpuBackendOptions,
  variant: KernelVariant,
  log: Logger,
): Promise<DeviceContext> {
  const picked = await pickAdapter(options.gpu, log);
  if (!picked) throw new Error('no WebGPU adapter');
  const { adapter, featureLevel } = picked;
  const info: WebGpuAdapterInfo = {
    vendor: adapter.info.vendor ?? '',
    architecture: adapter.info.architecture ?? '',
    device: adapter.info.device ?? '',
    description: adapter.info.description ?? '',
    isFallbackAdapter: adapter.info.isFallbackAdapter ?? false,
    featureLevel,
  };
  // Compatibility-mode devices default to 128 invocations per workgroup; the family goes to 256.
  const workgroupLimit = Math.min(MAX_WORKGROUP_SIZE, adapter.limits.maxComputeWorkgroupSizeX, adapter.limits.maxComputeInvocationsPerWorkgroup);
  const device = await adapter.requestDevice({
    label: 'nano-pow',
    requiredLimits: { maxComputeWorkgroupSizeX: workgroupLimit, maxComputeInvocationsPerWorkgroup: workgroupLimit },
  });
  const ctxLost = { isLost: false };
  const lostListeners = new Set<() => void>();
  void device.lost.then((reason) => {
    ctxLost.isLost = true;
    if (reason.reason !== 'destroyed') log.warn(`webgpu: device lost: ${reason.message}`);
    for (const listener of lostListeners) listener();
  });
  device.addEventListener('uncapturederror', (event) => {
    log.warn(`webgpu: ${(event as GPUUncapturedErrorEvent).error.message}`);
  });

  const bindGroupLayout = device.createBindGroupLayout({
    label: 'nano-pow search',
    entries: [
      { binding: BINDING.params, visibility: SHADER_STAGE_COMPUTE, buffer: { type: 'uniform' } },
      { binding: BINDING.result, visibility: SHADER_STAGE_COMPUTE, buffer: { type: 'storage' } },
    ],
  });
  const ctx: DeviceContext = {
    device,
    info,
    modules: new Map(),
    searchPipelines: new Map(),
    valuesPipelines: new Map(),
    searchLayout: device.createPipelineLayout({ bindGroupLayouts: [bindGroupLayout] }),
    slots: Array.from({ length: PIPELINE_DEPTH }, () => createSlot(device, bindGroupLayout)),
    maxPerDimension: Math.max(
      1,
      Math.min(
        Math.floor(options.maxWorkgroupsPerDimension ?? Infinity),
        device.limits.maxComputeWorkgroupsPerDimension,
      ),
    ),
    compileMs: 0,
    lostListeners,
    get isLost() {
      return ctxLost.isLost;
    },
    set isLost(value: boolean) {
      ctxLost.isLost = value;
    },
  };
  const started = performance.now();
  try {
    await searchPipeline(ctx, options.shaders, variant);
  } catch (err) {
    device.destroy();
    throw err;
  }
  ctx.compileMs = performance.now() - started;
  log.info(`webgpu: ${describeAdapter(info)}, kernel ${variant.name} compiled in ${ctx.compileMs.toFixed(0)} ms`);
  return ctx;
}
// ---- pipeline -----------------------------------------------------------------------------

/** The shader module of a kernel source; rejects with the compiler's messages. */
async function shaderModule(ctx: DeviceContext, shaders: KernelSources, source: string): Promise<GPUShaderModule> {
  const known = ctx.modules.get(source);
  if (known) return known;
  const code = shaders[source];
  if (code === undefined) throw new Error(`no WGSL text for kernel source "${source}"`);
  const module = ctx.device.createShaderModule({ label: `nano-pow ${source}`, code });
  const compilation = await module.getCompilationInfo();
  const errors = compilation.messages.filter((m) => m.type === 'error');
  if (errors.length > 0) {
    throw new Error(
      `nano-pow.wgsl: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')} (kernel source ${source})`,
    );
  }
  ctx.modules.set(source, module);
  return module;
}

/** The search pipeline of a variant, compiled on first use. */
async function searchPipeline(ctx: DeviceContext, shaders: KernelSources, variant: KernelVariant): Promise<GPUComputePipeline> {
  const known = ctx.searchPipelines.get(variant.name);
  if (known) return known;
  const pipeline = await ctx.device.createComputePipelineAsync({
    label: `nano-pow search ${variant.name}`,
    layout: ctx.searchLayout,
    compute: {
      module: await shaderModule(ctx, shaders, variant.source),
      entryPoint: 'search_main',
      constants: { WORKGROUP_SIZE: variant.workgroupSize, NONCES_PER_INVOCATION: variant.noncesPerInvocation },
    },
  });
  ctx.searchPipelines.set(variant.name, pipeline);
  return pipeline;
}

/** The test-only values_main pipeline of a variant's source, made on first use. */
async function valuesPipeline(ctx: DeviceContext, shaders: KernelSources, variant: KernelVariant): Promise<GPUComputePipeline> {
  const key = `${variant.source}/${variant.workgroupSize}`;
  const known = ctx.valuesPipelines.get(key);
  if (known) return known;
  const pipeline = await ctx.device.createComputePipelineAsync({
    label: `nano-pow values ${variant.source}`,
    layout: 'auto',
    compute: {
      module: await shaderModule(ctx, shaders, variant.source),
      entryPoint: 'values_main',
      constants: { WORKGROUP_SIZE: variant.workgroupSize },
    },
  });
  ctx.valuesPipelines.set(key, pipeline);
  return pipeline;
}

// ---- buffers ------------------------------------------------------------------------------

/** One dispatch's params, result and readback buffers (layouts in kernel-layout.ts). */
function createSlot(device: GPUDevice, layout: GPUBindGroupLayout): Slot {
  const params = device.createBuffer({ size: PARAMS_BYTES, usage: USAGE_UNIFORM | USAGE_COPY_DST });
  const result = device.createBuffer({ size: RESULT_BYTES, usage: USAGE_STORAGE | USAGE_COPY_SRC | USAGE_COPY_DST });
  const readback = device.createBuffer({ size: RESULT_BYTES, usage: USAGE_MAP_READ | USAGE_COPY_DST });
  const bindGroup = device.createBindGroup({
    layout,
    entries: [
      { binding: BINDING.params, resource: { buffer: params } },
      { binding: BINDING.result, resource: { buffer: result } },
    ],
  });
  return { params, result, readback, bindGroup, idle: Promise.resolve() };
}

function writeParams(
  device: GPUDevice,
  buffer: GPUBuffer,
  root: Uint8Array,
  difficulty: bigint,
  base: bigint,
  rowWidth: number,
  count: number,
): void {
  device.queue.writeBuffer(buffer, 0, encodeParams(root, difficulty, base, rowWidth, count));
}

// ---- dispatch and readback ----------------------------------------------------------------

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

/**
 * What can interrupt a search: its signal, or the loss of its device. `wait` races a promise
 * against both without leaving anything attached to long-lived promises (a search waits on
 * thousands of dispatches; Promise.race against a device-lifetime promise would pile up
 * reactions on it forever).
 */
class Interrupt {
  reason: 'aborted' | 'lost' | null = null;
  readonly #waiters = new Set<(reason: 'aborted' | 'lost') => void>();
  readonly #detach: () => void;

  constructor(signal: AbortSignal, ctx: DeviceContext) {
    const onAbort = (): void => this.#fire('aborted');
    const onLost = (): void => this.#fire('lost');
    signal.addEventListener('abort', onAbort, { once: true });
    ctx.lostListeners.add(onLost);
    this.#detach = () => {
      signal.removeEventListener('abort', onAbort);
      ctx.lostListeners.delete(onLost);
    };
    if (signal.aborted) this.#fire('aborted');
    else if (ctx.isLost) this.#fire('lost');
  }

  #fire(reason: 'aborted' | 'lost'): void {
    if (this.reason) return;
    this.reason = reason;
    for (const waiter of this.#waiters) waiter(reason);
    this.#waiters.clear();
  }

  /** `promise`'s value, or the interruption if one comes first. `promise` must not reject. */
  wait<T>(promise: Promise<T>): Promise<T | 'aborted' | 'lost'> {
    if (this.reason) return Promise.resolve(this.reason);
    return new Promise((resolve) => {
      this.#waiters.add(resolve);
      void promise.then((value) => {
        this.#waiters.delete(resolve);
        resolve(value);
      });
    });
  }

  release(): void {
    this.#detach();
  }
}

class WebGpuBackendImpl implements WebGpuBackend {
  readonly name = 'webgpu' as const;
  #ctx: DeviceContext;
  #intensity: number;
  readonly #targetMs: number;
  #current: KernelVariant;
  /** Dispatch sizing per variant, learned from completed dispatches and kept across searches. */
  readonly #sizings = new Map<string, Sizing>();
  #disposed = false;
  /** Searches and computeValues calls run one after another on the one device. */
  #queue: Promise<unknown> = Promise.resolve();

  readonly #options: WebGpuBackendOptions;
  readonly #log: Logger;

  private constructor(
    options: WebGpuBackendOptions,
    log: Logger,
    ctx: DeviceContext,
    variant: KernelVariant,
  ) {
    this.#options = options;
    this.#log = log;
    this.#ctx = ctx;
    this.#current = variant;
    this.#intensity = 1;
    this.setIntensity(options.intensity ?? 1);
    this.#targetMs = Math.min(Math.max(options.targetDispatchMs ?? 50, 1), 1000);
  }

  static async create(options: WebGpuBackendOptions): Promise<WebGpuBackendImpl> {
    const log = options.log ?? silentLogger;
    const variant = requireVariant(options.variant ?? DEFAULT_VARIANT);
    const ctx = await openDevice(options, variant, log);
    return new WebGpuBackendImpl(options, log, ctx, variant);
  }

  get variant(): KernelVariant {
    return this.#current;
  }

  setVariant(name: string): void {
    this.#current = requireVariant(name);
  }

  /** How big a dispatch of `variant` is, and how fast it last ran. */
  #sizing(variant: KernelVariant): Sizing {
    let sizing = this.#sizings.get(variant.name);
    if (!sizing) {
      const perWorkgroup = variant.workgroupSize * variant.noncesPerInvocation;
      const fixed = variant.fixedDispatch?.nonces;
      const max = fixed ?? Math.max(Math.min(Math.floor(this.#options.maxDispatchNonces ?? MAX_BATCH), MAX_BATCH), perWorkgroup);
      const min = fixed ?? Math.min(MIN_BATCH, max);
      sizing = { batch: min, rate: 1, min, max, depth: variant.fixedDispatch?.depth ?? PIPELINE_DEPTH };
      this.#sizings.set(variant.name, sizing);
    }
    return sizing;
  }

  measure(name: string, ms: number, signal?: AbortSignal): Promise<number | null> {
    const variant = requireVariant(name);
    return this.#exclusive(async () => {
      // The warm-up covers the pipeline's compile and lets the dispatch size settle.
      if ((await this.#hashesFor(variant, Math.min(ms / 4, 250), signal)) === null) return null;
      const measured = await this.#hashesFor(variant, ms, signal);
      return measured === null ? null : (measured.hashes * 1000) / measured.ms;
    });
  }

  /**
   * Searches an impossible difficulty with `variant` until the first completed dispatch after
   * `ms` (so a slow adapter whose first dispatch takes longer still measures something), or at
   * most 20 x `ms`. Null when `signal` stopped it. Own controller and timer, not
   * AbortSignal.timeout/any: Node 20 holds those signals weakly, and one collected mid-search
   * never fires.
   */
  async #hashesFor(variant: KernelVariant, ms: number, signal?: AbortSignal): Promise<{ hashes: number; ms: number } | null> {
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) stop.abort();
    const cap = setTimeout(onAbort, Math.max(1, Math.round(ms * 20)));
    const started = performance.now();
    let hashes = 0;
    let last = started;
    try {
      await this.#runSearch(
        {
          root: MEASURE_ROOT,
          difficulty: U64_MASK,
          startNonce: 1n << 40n,
          signal: stop.signal,
          onHashes: (count) => {
            hashes += count;
            last = performance.now();
            if (last - started >= ms) stop.abort();
          },
        },
        variant,
      );
    } finally {
      clearTimeout(cap);
      signal?.removeEventListener('abort', onAbort);
    }
    if (signal?.aborted) return null;
    return { hashes, ms: Math.max(last - started, 1) };
  }

  get label(): string {
    return describeAdapter(this.#ctx.info);
  }

  get adapterInfo(): WebGpuAdapterInfo {
    return { ...this.#ctx.info };
  }

  get software(): boolean {
    return this.#ctx.info.isFallbackAdapter;
  }

  get compileMs(): number {
    return this.#ctx.compileMs;
  }

  setIntensity(intensity: number): void {
    if (!Number.isFinite(intensity) || intensity <= 0) {
      throw new RangeError(`intensity must be in (0, 1], got ${intensity}`);
    }
    this.#intensity = Math.min(intensity, 1);
  }

  simulateDeviceLoss(): void {
    this.#ctx.device.destroy();
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#ctx.device.destroy();
  }

  search(request: SearchRequest): Promise<KernelHit | null> {
    return this.#exclusive(() => this.#runSearch(request));
  }

  computeValues(root: Uint8Array, startNonce: bigint, count: number): Promise<BigUint64Array> {
    return this.#exclusive(() => this.#runComputeValues(root, startNonce, count));
  }

  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** The current device, re-created first if it was lost. */
  async #device(): Promise<DeviceContext> {
    if (this.#disposed) throw new Error('the WebGPU backend was disposed');
    if (!this.#ctx.isLost) return this.#ctx;
    this.#log.warn('webgpu: device lost; re-creating it');
    try {
      this.#ctx = await openDevice(this.#options, this.#current, this.#log);
    } catch (err) {
      throw new DeviceLostError(`the GPU device was lost and could not be re-created: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return this.#ctx;
  }

  async #runSearch(request: SearchRequest, variant = this.#current): Promise<KernelHit | null> {
    const { root, difficulty, signal } = request;
    if (root.length !== 32) throw new RangeError(`root must be 32 bytes, got ${root.length}`);
    if (difficulty < 0n || difficulty > U64_MASK) throw new RangeError('difficulty must be a u64');
    let next = request.startNonce & U64_MASK;
    for (let recoveries = 0; ; recoveries++) {
      if (signal.aborted) return null;
      const ctx = await this.#device();
      const pipeline = await searchPipeline(ctx, this.#options.shaders, variant);
      const outcome = await this.#searchOn(ctx, { variant, pipeline, sizing: this.#sizing(variant) }, request, next);
      if (outcome.kind === 'hit') return { work: outcome.work };
      if (outcome.kind === 'aborted') return null;
      if (recoveries >= MAX_RECOVERIES) {
        throw new DeviceLostError(`the GPU device was lost ${recoveries + 1} times during one search`);
      }
      next = outcome.resumeFrom;
    }
  }

  /** Searches on one device until a hit, an abort or the device's loss. */
  async #searchOn(ctx: DeviceContext, kernel: Kernel, request: SearchRequest, start: bigint): Promise<SearchOutcome> {
    const { sizing } = kernel;
    const { signal } = request;
    const interrupt = new Interrupt(signal, ctx);
    const inflight: Dispatch[] = [];
    let next = start;
    let slotIndex = 0;
    // Throughput over the last few completed dispatches, from the submit before them. It holds
    // whether submit() returns at once (browsers) or runs the previous dispatch before returning
    // (Dawn on OpenGL ES with llvmpipe), where one dispatch's own timing would be meaningless.
    const recent: { at: number; nonces: number }[] = [];
    let windowStart = Number.NaN;
    try {
      for (;;) {
        const depth = this.#intensity < 1 ? 1 : sizing.depth;
        while (inflight.length < depth) {
          const slot = ctx.slots[slotIndex++ % ctx.slots.length];
          // A slot still finishing a dispatch of an earlier (aborted) search: wait for it.
          const ready = await interrupt.wait(slot.idle.then(() => 'ready' as const));
          if (ready === 'aborted') return { kind: 'aborted' };
          if (ready === 'lost') return { kind: 'lost', resumeFrom: inflight[0]?.base ?? next };
          if (Number.isNaN(windowStart)) windowStart = performance.now();
          const dispatch = this.#dispatchSearch(ctx, kernel, slot, request, next, sizing.batch);
          inflight.push(dispatch);
          next = (next + BigInt(dispatch.nonces)) & U64_MASK;
        }
        const head = inflight[0];
        const outcome = await interrupt.wait(head.done);
        if (outcome === 'aborted') return { kind: 'aborted' };
        if (outcome === 'lost' || 'error' in outcome) {
          if (outcome !== 'lost') this.#markLost(ctx, outcome.error);
          return { kind: 'lost', resumeFrom: head.base };
        }
        inflight.shift();
        if (outcome.found) {
          const done = Number((outcome.nonce - head.base) & U64_MASK) + 1;
          request.onHashes?.(Math.min(done, head.nonces));
          return { kind: 'hit', work: outcome.nonce };
        }
        request.onHashes?.(head.nonces);
        // Only full dispatches count: one that found work stopped early.
        const now = performance.now();
        recent.push({ at: now, nonces: head.nonces });
        if (recent.length > RATE_WINDOW) windowStart = recent.shift()!.at;
        this.#adapt(sizing, recent.reduce((n, d) => n + d.nonces, 0) / (now - windowStart));
        if (this.#intensity < 1) {
          // Idle so that busy / (busy + idle) = intensity; the idle time is left out of the rate.
          const busyMs = head.nonces / sizing.rate;
          await sleep((busyMs * (1 - this.#intensity)) / this.#intensity, signal);
          recent.length = 0;
          windowStart = Number.NaN;
        }
      }
    } finally {
      interrupt.release();
    }
  }

  /** Records the measured rate (nonces/ms) and steers the dispatch size toward targetMs. */
  #adapt(sizing: Sizing, rate: number): void {
    if (!(rate > 0) || !Number.isFinite(rate)) return;
    sizing.rate = rate;
    const ideal = rate * this.#targetMs;
    // At most 2x per step: one odd measurement cannot swing the size far.
    const next = Math.min(Math.max(ideal, sizing.batch / 2, sizing.min), sizing.batch * 2, sizing.max);
    sizing.batch = Math.round(next);
  }

  /**
   * A grid of about `invocations` invocations: x workgroups per row up to the per-dimension
   * limit, then rows: rounded down for a search (a dispatch never overshoots the bound it was
   * given by more than one workgroup), up for computeValues (which must cover every nonce).
   */
  #grid(
    ctx: DeviceContext,
    workgroupSize: number,
    invocations: number,
    rows: 'down' | 'up',
  ): { x: number; y: number } {
    const workgroups = Math.max(1, Math.ceil(invocations / workgroupSize));
    const x = Math.min(workgroups, ctx.maxPerDimension);
    const y = Math.max(1, Math.min((rows === 'up' ? Math.ceil : Math.floor)(workgroups / x), ctx.maxPerDimension));
    return { x, y };
  }

  #dispatchSearch(
    ctx: DeviceContext,
    kernel: Kernel,
    slot: Slot,
    request: SearchRequest,
    base: bigint,
    wanted: number,
  ): Dispatch {
    const { device } = ctx;
    const { workgroupSize, noncesPerInvocation } = kernel.variant;
    const { x, y } = this.#grid(ctx, workgroupSize, Math.ceil(wanted / noncesPerInvocation), 'down');
    const rowWidth = x * workgroupSize;
    const nonces = rowWidth * y * noncesPerInvocation;
    writeParams(device, slot.params, request.root, request.difficulty, base, rowWidth, 0);
    const encoder = device.createCommandEncoder();
    encoder.clearBuffer(slot.result);
    const pass = encoder.beginComputePass();
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, slot.bindGroup);
    pass.dispatchWorkgroups(x, y);
    pass.end();
    encoder.copyBufferToBuffer(slot.result, 0, slot.readback, 0, RESULT_BYTES);
    device.queue.submit([encoder.finish()]);
    const done = slot.readback.mapAsync(MAP_READ).then(
      () => {
        const result = decodeResult(slot.readback.getMappedRange(0, RESULT_BYTES).slice(0));
        slot.readback.unmap();
        return result;
      },
      (error: unknown) => ({ error }),
    );
    slot.idle = done.then(() => {});
    return { base, nonces, done };
  }

  #markLost(ctx: DeviceContext, reason: unknown): void {
    if (ctx.isLost) return;
    this.#log.warn(`webgpu: readback failed (${(reason as Error)?.message ?? String(reason)}); treating the device as lost`);
    ctx.isLost = true;
    ctx.device.destroy();
  }

  async #runComputeValues(root: Uint8Array, startNonce: bigint, count: number): Promise<BigUint64Array> {
    if (root.length !== 32) throw new RangeError(`root must be 32 bytes, got ${root.length}`);
    if (!Number.isInteger(count) || count < 1 || count > 1 << 24) {
      throw new RangeError(`count must be an integer in [1, 2^24], got ${count}`);
    }
    const ctx = await this.#device();
    const { device } = ctx;
    const variant = this.#current;
    const pipeline = await valuesPipeline(ctx, this.#options.shaders, variant);
    const bytes = count * VALUE_BYTES;
    const params = device.createBuffer({ size: PARAMS_BYTES, usage: USAGE_UNIFORM | USAGE_COPY_DST });
    const values = device.createBuffer({ size: bytes, usage: USAGE_STORAGE | USAGE_COPY_SRC });
    const readback = device.createBuffer({ size: bytes, usage: USAGE_MAP_READ | USAGE_COPY_DST });
    try {
      const { x, y } = this.#grid(ctx, variant.workgroupSize, count, 'up');
      const rowWidth = x * variant.workgroupSize;
      if (rowWidth * y < count) throw new RangeError(`count ${count} does not fit one dispatch on this device`);
      writeParams(device, params, root, 0n, startNonce & U64_MASK, rowWidth, count);
      const bindGroup = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: BINDING.params, resource: { buffer: params } },
          { binding: BINDING.values, resource: { buffer: values } },
        ],
      });
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(x, y);
      pass.end();
      encoder.copyBufferToBuffer(values, 0, readback, 0, bytes);
      device.queue.submit([encoder.finish()]);
      await readback.mapAsync(MAP_READ);
      const out = new BigUint64Array(readback.getMappedRange().slice(0));
      readback.unmap();
      return out;
    } finally {
      params.destroy();
      values.destroy();
      readback.destroy();
    }
  }
}

/**
 * Opens a device on the best adapter `gpu` offers and compiles the kernel. Rejects when there is
 * no adapter or the kernel does not compile.
 */
export async function createWebGpuBackend(options: WebGpuBackendOptions): Promise<WebGpuBackend> {
  return WebGpuBackendImpl.create(options);
}
