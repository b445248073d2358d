import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'benchmarks/test/**/*.test.ts', 'test/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // integration tests share real servers; files run in parallel, each with its own prefix
    pool: 'forks',
    // starts missing servers with testcontainers when a Docker engine is reachable (never here)
    globalSetup: ['packages/test-servers/src/global-setup.ts'],
    reporters: ['default', './vitest.summary-reporter.ts'],
  },
});
