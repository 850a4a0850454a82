/** Types for generate.mjs (the kernel generator). */
export type KernelFlavour = 'scalar' | 'simd';
/** The generated AssemblyScript text of one kernel. */
export function kernelSource(flavour: KernelFlavour): string;
/** The file name of each kernel under assembly/. */
export const KERNEL_FILES: Record<KernelFlavour, string>;
