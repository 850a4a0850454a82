import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

export default defineConfig({
  plugins: [preact()],
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
  worker: { format: 'es' },
  build: {
    target: 'es2022',
    // Keep .wasm out of inlining so the service worker can precache it as a file.
    assetsInlineLimit: (file) => (file.endsWith('.wasm') ? false : undefined),
  },
});
