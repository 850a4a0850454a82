import { defineConfig, type Plugin } from 'vite';
import preact from '@preact/preset-vite';
import { VitePWA } from 'vite-plugin-pwa';

/**
 * The PWA: a generated service worker precaches the app shell, the engine worker, the WASM
 * kernel and the icons, so a reload offline still shows the app. Paths served by `dpow-web
 * start` itself (/mqtt, /service, /config.json) are never answered with index.html.
 * registerType 'prompt': a new version waits for the volunteer's Reload (kiosk mode accepts it
 * by itself, see src/app/pwa.ts). injectRegister false: registration lives in our own module,
 * so index.html needs no inline script under its CSP.
 */
const pwa = VitePWA({
  registerType: 'prompt',
  injectRegister: false,
  manifest: {
    name: 'dpow-web — distributed proof of work',
    short_name: 'dpow-web',
    description: 'Contribute proof of work for Nano services from your browser, on your GPU or CPU.',
    id: '/',
    start_url: '/',
    scope: '/',
    display: 'standalone',
    orientation: 'any',
    theme_color: '#0f1b2d',
    background_color: '#0f1b2d',
    categories: ['utilities', 'finance'],
    icons: [
      { src: '/pwa-192.png', sizes: '192x192', type: 'image/png', purpose: 'any' },
      { src: '/pwa-512.png', sizes: '512x512', type: 'image/png', purpose: 'any' },
      { src: '/maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
      { src: '/icon.svg', sizes: 'any', type: 'image/svg+xml', purpose: 'any' },
    ],
  },
  workbox: {
    globPatterns: ['**/*.{js,css,html,svg,png,ico,txt,wasm,wgsl,webmanifest}'],
    // The engine lab page is a developer tool, not part of the offline app.
    globIgnores: ['bench.html', 'assets/bench-*', 'config.json'],
    maximumFileSizeToCacheInBytes: 16 * 1024 * 1024,
    navigateFallback: '/index.html',
    navigateFallbackDenylist: [/^\/mqtt/, /^\/service/, /^\/config\.json/, /^\/bench\.html/],
    cleanupOutdatedCaches: true,
    // The first install takes the open page at once (there is no older version to disturb).
    clientsClaim: true,
    runtimeCaching: [
      {
        // Fresh deployment settings when online, the last ones offline.
        urlPattern: ({ url }) => url.pathname === '/config.json',
        handler: 'NetworkFirst',
        options: { cacheName: 'dpow-config', networkTimeoutSeconds: 4, expiration: { maxEntries: 4 } },
      },
    ],
  },
});

/**
 * The dev server injects CSS as <style> elements (hot reload); the built app links stylesheets.
 * So only `vite` (serve) relaxes style-src; the production CSP stays strict.
 */
const devStyleCsp: Plugin = {
  name: 'dpow-dev-style-csp',
  apply: 'serve',
  transformIndexHtml: (html) => html.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'"),
};

export default defineConfig({
  plugins: [preact(), pwa, devStyleCsp],
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
  worker: { format: 'es' },
  build: {
    target: 'es2022',
    // Keep .wasm out of inlining so the service worker can precache it as a file.
    assetsInlineLimit: (file) => (file.endsWith('.wasm') ? false : undefined),
    // bench.html is the engine lab page (benchmarks and the engine's browser tests).
    rollupOptions: { input: { main: 'index.html', bench: 'bench.html' } },
  },
});
