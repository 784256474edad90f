import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // The default (cores - 1) is one worker on a 2-core machine; most files wait on HTTP and child processes.
    maxWorkers: 3,
  },
});
