/**
 * The device the worker computes on, named for people: the WebGPU adapter as the browser
 * describes it (describeAdapter), or the CPU threads and their kernel. Where the browser hides
 * the adapter (Chromium names nothing for its OpenGL ES adapter), WebGL's renderer string says
 * what the same browser draws with: Dawn's OpenGL ES backend and ANGLE's talk to the same driver.
 */
import type { DeviceInfo } from '../pow/types.ts';
import { describeAdapter, softwareRenderer } from '../pow/webgpu.ts';

/** The GPU as WebGL names it ("ANGLE (Mesa/X.org, llvmpipe (LLVM 15.0.6 256 bits), OpenGL ES 3.2)"), or null. */
export function webglRenderer(): string | null {
  try {
    const canvas = document.createElement('canvas');
    const gl = (canvas.getContext('webgl2') ?? canvas.getContext('webgl')) as WebGLRenderingContext | null;
    if (!gl) return null;
    const debug = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = debug ? gl.getParameter(debug.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
    gl.getExtension('WEBGL_lose_context')?.loseContext();
    return typeof renderer === 'string' && renderer.trim() !== '' ? renderer.trim() : null;
  } catch {
    return null;
  }
}

/** Splits "ANGLE (vendor, renderer, api)" at its top-level commas; other strings are the renderer. */
export function parseRenderer(text: string): { vendor: string; renderer: string; api: string } {
  const angle = /^ANGLE \((.*)\)$/.exec(text.trim());
  if (!angle) return { vendor: '', renderer: text.trim(), api: '' };
  const parts: string[] = [];
  let depth = 0;
  let part = '';
  for (const c of angle[1]) {
    if (c === ',' && depth === 0) {
      parts.push(part.trim());
      part = '';
      continue;
    }
    if (c === '(') depth++;
    if (c === ')') depth--;
    part += c;
  }
  parts.push(part.trim());
  return parts.length >= 3
    ? { vendor: parts[0], renderer: parts.slice(1, -1).join(', '), api: parts.at(-1)! }
    : { vendor: '', renderer: angle[1], api: '' };
}

/**
 * One line for the Device row and the kiosk:
 *   "CPU · 3 threads · WebAssembly SIMD"
 *   "SwiftShader (Google) · software rasteriser"
 *   "llvmpipe (LLVM 15.0.6 256 bits) by Mesa/X.org, named by WebGL · software rasteriser · compatibility mode"
 * `webgl` is asked only when the adapter names nothing.
 */
export function describeDevice(device: DeviceInfo | null, webgl: () => string | null = webglRenderer): string | null {
  if (!device) return null;
  if (device.backend === 'wasm') {
    return `CPU · ${device.threads} thread${device.threads === 1 ? '' : 's'} · WebAssembly ${device.simd ? 'SIMD' : 'without SIMD'}`;
  }
  const adapter = device.adapter;
  if (!adapter) return 'WebGPU adapter';
  const named = [adapter.vendor, adapter.architecture, adapter.device, adapter.description].some((s) => s.trim() !== '');
  if (named) return describeAdapter(adapter);
  const renderer = webgl();
  if (!renderer) return describeAdapter(adapter).replace('the runtime does not name it', 'the browser does not name it');
  const { vendor, renderer: name, api } = parseRenderer(renderer);
  const parts = [`${name}${vendor ? ` by ${vendor}` : ''}, named by WebGL${api ? ` (${api})` : ''}`];
  if (adapter.isFallbackAdapter || softwareRenderer(renderer)) parts.push('software rasteriser');
  if (adapter.featureLevel === 'compatibility') parts.push('compatibility mode');
  return parts.join(' · ');
}
