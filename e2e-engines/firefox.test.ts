/** The engine suite in Debian's Firefox ESR (Gecko; WebGPU through wgpu, WGSL compiled by naga). */
import { engineSuite } from './suite.ts';

engineSuite({
  engine: 'firefox',
  shaderCompiler: 'naga',
  backends: ['webgpu', 'wasm'],
  // Firefox has no install prompt (desktop Firefox does not install web apps).
  notes: { page: ['install-prompt'], kiosk: [] },
});
