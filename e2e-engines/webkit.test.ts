/** The engine suite in WebKitGTK's MiniBrowser (Safari's engine; no WebGPU in Debian's build). */
import { engineSuite } from './suite.ts';

engineSuite({
  engine: 'webkit',
  shaderCompiler: 'WebKit',
  backends: ['wasm'],
  // Like Safari: no install prompt (Safari installs from its Share menu).
  notes: { page: ['install-prompt'], kiosk: [] },
});
