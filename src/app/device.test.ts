import { describe, expect, it } from 'vitest';
import { describeDevice, parseRenderer } from './device.ts';
import type { WebGpuAdapterInfo } from '../pow/types.ts';

const blank: WebGpuAdapterInfo = { vendor: '', architecture: '', device: '', description: '', isFallbackAdapter: false, featureLevel: 'compatibility' };
const LLVMPIPE_WEBGL = 'ANGLE (Mesa/X.org, llvmpipe (LLVM 15.0.6 256 bits), OpenGL ES 3.2)';

describe('describeDevice', () => {
  it('names the CPU threads and their kernel', () => {
    expect(describeDevice({ backend: 'wasm', threads: 1, simd: true })).toBe('CPU · 1 thread · WebAssembly SIMD');
    expect(describeDevice({ backend: 'wasm', threads: 3, simd: false })).toBe('CPU · 3 threads · WebAssembly without SIMD');
  });

  it('names an adapter the browser describes from its own words', () => {
    const swiftshader = { ...blank, vendor: 'google', architecture: 'swiftshader', isFallbackAdapter: true, featureLevel: 'core' as const };
    expect(describeDevice({ backend: 'webgpu', adapter: swiftshader }, () => 'unused')).toBe('SwiftShader (Google) · software rasteriser');
  });

  it("names an adapter the browser hides by WebGL's renderer, and says where the name comes from", () => {
    expect(describeDevice({ backend: 'webgpu', adapter: blank }, () => LLVMPIPE_WEBGL)).toBe(
      'llvmpipe (LLVM 15.0.6 256 bits) by Mesa/X.org, named by WebGL (OpenGL ES 3.2) · software rasteriser · compatibility mode',
    );
  });

  it('says the browser does not name it when WebGL cannot either', () => {
    expect(describeDevice({ backend: 'webgpu', adapter: blank }, () => null)).toBe(
      'unnamed adapter (the browser does not name it) · compatibility mode',
    );
  });

  it("splits ANGLE's renderer string at its top-level commas", () => {
    expect(parseRenderer(LLVMPIPE_WEBGL)).toEqual({ vendor: 'Mesa/X.org', renderer: 'llvmpipe (LLVM 15.0.6 256 bits)', api: 'OpenGL ES 3.2' });
    expect(parseRenderer('Apple M2')).toEqual({ vendor: '', renderer: 'Apple M2', api: '' });
  });
});
