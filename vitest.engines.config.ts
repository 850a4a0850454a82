import { defineConfig } from 'vitest/config';

/**
 * The engine specs (e2e-engines/): the same scenarios in Chromium, Firefox and WebKitGTK, one
 * browser per engine. One file at a time: each starts a browser and the app server, and the
 * machine has 2 cores. Browsers start slowly under load, hence the long timeouts (never sleeps).
 */
export default defineConfig({
  test: {
    include: ['e2e-engines/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 180_000,
    fileParallelism: false,
  },
});
