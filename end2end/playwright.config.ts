import { defineConfig } from '@playwright/test';

// `cargo leptos end-to-end` builds, starts the server on 127.0.0.1:3000 and runs this suite;
// global-setup waits until the server answers. DUET_E2E_SMOKE=1 (used for the release build)
// runs only the tests tagged @smoke (between them they use every lazily loaded part of the UI:
// incoming sheet, notices, in-call controls, peer flags, quality details); DUET_E2E_PERF=1 adds
// the @perf figures (release build only: a debug build's speed means nothing).
export default defineConfig({
  testDir: './tests',
  globalSetup: './global-setup.ts',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  // Two cores: one test at a time (each runs two or three browser pages with live video).
  workers: 1,
  fullyParallel: false,
  retries: 0,
  grep: process.env.DUET_E2E_SMOKE ? (process.env.DUET_E2E_PERF ? /@smoke|@perf/ : /@smoke/) : undefined,
  grepInvert: process.env.DUET_E2E_PERF ? undefined : /@perf/,
  reporter: [['list']],
  outputDir: 'test-results',
  use: {
    // DUET_E2E_URL points the suite at another running server (e.g. one started by hand).
    baseURL: process.env.DUET_E2E_URL ?? 'http://127.0.0.1:3000',
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      // Playwright's own browser download cannot work here: Debian's Chromium.
      executablePath: '/usr/bin/chromium',
      args: [
        '--use-fake-ui-for-media-stream',
        '--use-fake-device-for-media-stream',
        '--allow-loopback-in-peer-connection',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-sync',
      ],
    },
  },
});
