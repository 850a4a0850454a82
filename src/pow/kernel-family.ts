/**
 * The WGSL kernel family: the kernel sources kernels/gen-wgsl.mjs generates (shaders/nano-pow-
 * <carry>.wgsl) and the variants run from them. A variant is named by its parameters:
 *
 *   <carry>-n<nonces per invocation>-w<workgroup size>     e.g. plain-n64-w64
 *
 *   - carry: 'plain' (unsigned compare; GPU compilers make it add-with-carry) or 'biased'
 *     (signed compare on biased low words; wins on CPU rasterisers without unsigned SIMD
 *     compares);
 *   - rotation form: every member uses shift pairs (rotr32 is a swizzle). WGSL has no byte
 *     permute; pack4xU8/unpack4xU8 are conversions that cost more ops than a shift pair, so
 *     there is no cheaper form to offer (GPU compilers fold the pair into one funnel shift);
 *   - nonces per invocation and workgroup size: pipeline override constants.
 * Every member keeps the buffer layout of kernel-layout.ts. The tuner (tuner.ts) measures the
 * candidates on the user's own adapter and keeps the fastest.
 */

export type CarryForm = 'plain' | 'biased';

/** The text of each kernel source, by name ('plain', 'biased'; the bench adds 'yardstick'). */
export type KernelSources = Readonly<Record<string, string>>;

export interface KernelVariant {
  readonly name: string;
  /** Which kernel source (a key of KernelSources). */
  readonly source: string;
  readonly noncesPerInvocation: number;
  readonly workgroupSize: number;
  /** A fixed dispatch (nonces) and pipeline depth instead of the adaptive ones (the yardstick). */
  readonly fixedDispatch?: { nonces: number; depth: number };
}

/** Bumped whenever a kernel or the variant list changes, so cached tuning results are redone. */
export const KERNEL_FAMILY_VERSION = 2;

function variant(carry: CarryForm, noncesPerInvocation: number, workgroupSize: number): KernelVariant {
  return { name: `${carry}-n${noncesPerInvocation}-w${workgroupSize}`, source: carry, noncesPerInvocation, workgroupSize };
}

/**
 * The tuning candidates, pruned from carry x {1, 8, 32, 64, 128} x {64, 128, 256}: on llvmpipe and
 * SwiftShader many nonces per invocation win (start-up and prepare() amortised) and workgroup
 * size barely matters; on a GPU fewer nonces per invocation and larger workgroups keep more
 * invocations in flight. Larger counts than 64 never won anywhere measured.
 */
export const KERNEL_VARIANTS: readonly KernelVariant[] = [
  variant('plain', 64, 64),
  variant('biased', 64, 64),
  variant('plain', 8, 256),
  variant('biased', 8, 256),
  variant('plain', 1, 256),
];

/** The variant a backend starts with before any tuning: the best on software adapters. */
export const DEFAULT_VARIANT = 'biased-n64-w64';

/**
 * The bench's naive yardstick (shaders/yardstick.wgsl): 1 nonce per invocation and one dispatch of
 * 4096 x 64 in flight.
 */
export const YARDSTICK_VARIANT: KernelVariant = {
  name: 'yardstick',
  source: 'yardstick',
  noncesPerInvocation: 1,
  workgroupSize: 64,
  fixedDispatch: { nonces: 4096 * 64, depth: 1 },
};

/** A variant by name: a family member, the yardstick, or any <carry>-n<N>-w<W>. */
export function findVariant(name: string): KernelVariant | null {
  if (name === YARDSTICK_VARIANT.name) return YARDSTICK_VARIANT;
  const listed = KERNEL_VARIANTS.find((v) => v.name === name);
  if (listed) return listed;
  const match = /^(plain|biased)-n(\d+)-w(\d+)$/.exec(name);
  if (!match) return null;
  const [npi, wg] = [Number(match[2]), Number(match[3])];
  if (npi < 1 || npi > 1024 || ![32, 64, 128, 256].includes(wg)) return null;
  return variant(match[1] as CarryForm, npi, wg);
}

/** The variant `name`, or a RangeError listing the family. */
export function requireVariant(name: string): KernelVariant {
  const found = findVariant(name);
  if (!found) {
    throw new RangeError(
      `unknown kernel "${name}": use one of ${KERNEL_VARIANTS.map((v) => v.name).join(', ')} (or <plain|biased>-n<N>-w<64|128|256>)`,
    );
  }
  return found;
}
