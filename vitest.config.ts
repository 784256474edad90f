import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    testTimeout: 30_000,
    // A beforeAll that synthesizes the stack takes ~20 s on an idle 2-core machine and more when it is shared: the
    // hook timeout only catches hangs, it is not a speed check (those live in npm run bench).
    hookTimeout: 120_000,
    pool: 'forks',
    // The default (cores - 1) is one worker on a 2-core machine; most files wait on HTTP and child processes.
    maxWorkers: 3,
  },
});
