import { defineConfig } from '@playwright/test';

/**
 * Browser tests run Debian's Chromium (Playwright cannot download browsers here). WebGPU in
 * headless Chromium needs only --enable-unsafe-webgpu and gives a SwiftShader adapter.
 * Set DPOW_CHROMIUM to use another binary.
 */
export const chromiumPath = process.env.DPOW_CHROMIUM ?? '/usr/lib/chromium/chromium';
export const chromiumArgs = [
  '--enable-unsafe-webgpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];

const PORT = Number(process.env.DPOW_E2E_PORT ?? 4173);

export default defineConfig({
  testDir: 'e2e',
  // The specs' own tsconfig. Without it Playwright loads the specs with settings that make
  // `import mqtt from 'mqtt'` fail ("does not provide an export named 'default'"), and no test runs.
  tsconfig: './tsconfig.browser-tests.json',
  timeout: 120_000,
  expect: { timeout: 30_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  outputDir: 'test-results',
  use: {
    baseURL: `http://127.0.0.1:${PORT}`,
    browserName: 'chromium',
    launchOptions: { executablePath: chromiumPath, args: chromiumArgs },
    trace: 'retain-on-failure',
  },
  webServer: {
    command: `npx vite preview --host 127.0.0.1 --port ${PORT} --strictPort`,
    url: `http://127.0.0.1:${PORT}/`,
    reuseExistingServer: !process.env.CI,
    timeout: 120_000,
  },
});
