import { defineConfig } from '@playwright/test';

// The NAT lab suite: run by end2end/natlab/run.sh, which builds the lab and starts the servers.
// Each test launches its own Chromium processes inside the lab's LAN namespaces (lab.spec.ts).
export default defineConfig({
  testDir: '.',
  testMatch: '*.spec.ts',
  timeout: 120_000,
  expect: { timeout: 20_000 },
  workers: 1,
  fullyParallel: false,
  retries: 0,
  reporter: [['list']],
  outputDir: '../test-results/natlab',
});
