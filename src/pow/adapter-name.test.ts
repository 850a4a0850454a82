/** The WebGPU adapter as people read it (describeAdapter): the backend's label everywhere. */
import { describe, expect, it } from 'vitest';
import { describeAdapter, softwareRenderer } from './webgpu.ts';
import type { WebGpuAdapterInfo } from './types.ts';

const info = (fields: Partial<WebGpuAdapterInfo>): WebGpuAdapterInfo => ({
  vendor: '',
  architecture: '',
  device: '',
  description: '',
  isFallbackAdapter: false,
  featureLevel: 'core',
  ...fields,
});

describe('describeAdapter', () => {
  it("names Dawn's llvmpipe from its slugged device string and its GL version string, and says it is software", () => {
    const dawn = info({ device: 'llvmpipe-llvm-15-0-6-256-bits-', description: 'OpenGL version OpenGL ES 3.2 Mesa 22.3.6', featureLevel: 'compatibility' });
    expect(describeAdapter(dawn)).toBe('llvmpipe (Mesa 22.3.6, OpenGL ES 3.2) · software rasteriser · compatibility mode');
  });

  it("names Chromium's SwiftShader from its vendor and architecture", () => {
    const chromium = info({ vendor: 'google', architecture: 'swiftshader', isFallbackAdapter: true });
    expect(describeAdapter(chromium)).toBe('SwiftShader (Google) · software rasteriser');
  });

  it('keeps a real GPU by its description, adding the architecture it does not already say', () => {
    const h100 = info({ vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100 80GB HBM3', device: '0x2330' });
    expect(describeAdapter(h100)).toBe('NVIDIA H100 80GB HBM3 (Hopper)');
  });

  it('says so when the runtime names nothing, instead of inventing a name', () => {
    expect(describeAdapter(info({ featureLevel: 'compatibility' }))).toBe(
      'unnamed adapter (the runtime does not name it) · compatibility mode',
    );
  });

  it('knows the software rasterisers by name, in any spelling', () => {
    expect(softwareRenderer('ANGLE (Mesa/X.org, llvmpipe (LLVM 15.0.6 256 bits), OpenGL ES 3.2)')).toBe('llvmpipe');
    expect(softwareRenderer('Vulkan 1.3.0 (SwiftShader Device (Subzero))')).toBe('SwiftShader');
    expect(softwareRenderer('NVIDIA GeForce RTX 4090')).toBeNull();
  });
});
