/** Types for kernel-ops.mjs (the static op counter). */
export interface KernelOps {
  /** u32 ALU ops on the per-nonce path (nonce_at, mixed, meets). */
  perNonce: number;
  /** u32 ALU ops of prepare(), once per invocation. */
  prepare: number;
  samples: number;
}
export function countKernelOps(text: string, options?: { samples?: number; seed?: number }): KernelOps;
export function kernelFiles(): { kind: string; file: string; text: string }[];
