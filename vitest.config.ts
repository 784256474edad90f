import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    // A test that starts the gateway as a child process waits for its start (17.5 s at load 12.5 on 2 cores) and often
    // for a second one or a few CLI commands: 30 s failed such tests on a loaded machine. Like the hooks' below, the
    // limit only catches a hang.
    testTimeout: 60_000,
    // expect.poll waits in real time for what a test cannot move by a clock (a browser page's answer, a child
    // process's line): 1 s, its default, is what an idle machine needs, not a loaded one. Only a failure waits it out.
    expect: { poll: { timeout: 15_000 } },
    // A beforeAll that synthesizes the stack takes ~20 s on an idle 2-core machine and more when it is shared: the
    // hook timeout only catches hangs, it is not a speed check (those live in npm run bench).
    hookTimeout: 120_000,
    pool: 'forks',
    // The default (cores - 1) is one worker on a 2-core machine; most files wait on HTTP and child processes.
    maxWorkers: 3,
  },
});
