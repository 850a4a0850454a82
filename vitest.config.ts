import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    // Kernel and integration tests start GPU devices, worker threads and brokers: give them room
    // on a 2-core CI machine, and never run two heavy files at once.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    env: { EGL_PLATFORM: 'surfaceless' },
  },
});
