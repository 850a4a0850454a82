/**
 * URLs of the built WASM kernels for the browser engine worker to fetch. Vite emits them as
 * hashed files in dist/assets (never inlined, see vite.config.ts), so the service worker can
 * precache them. Run `npm run build:wasm` first (postinstall does).
 */
import simdUrl from '../../build/wasm/nano-pow-simd.wasm?url';
import scalarUrl from '../../build/wasm/nano-pow-scalar.wasm?url';

export { simdUrl, scalarUrl };

/** The URL of one kernel, in the shape compileKernels' fetchBytes is called with. */
export function kernelUrl(name: 'simd' | 'scalar'): string {
  return name === 'simd' ? simdUrl : scalarUrl;
}
