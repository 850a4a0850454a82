/**
 * The engine suite in Debian's Chromium (Blink; WebGPU through Dawn on SwiftShader, WGSL compiled
 * by Tint): the yardstick the other engines are held to, through the same driver layer.
 */
import { engineSuite } from './suite.ts';

engineSuite({
  engine: 'chromium',
  shaderCompiler: 'Tint',
  backends: ['webgpu', 'wasm'],
  notes: { page: [], kiosk: [] },
});
