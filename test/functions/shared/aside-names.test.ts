import { afterEach, describe, expect, it, vi } from 'vitest';

/** Random bytes drawn by the module under test. */
const drawn = vi.hoisted(() => ({ calls: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const crypto = await importOriginal<typeof import('node:crypto')>();
  const randomBytes = ((size: number) => {
    drawn.calls += 1;
    return crypto.randomBytes(size);
  }) as typeof crypto.randomBytes;
  return { ...crypto, randomBytes, default: { ...crypto, randomBytes } };
});
const { asideName, asideWriter, processTempName, stampedWriter, writerHost } = await import(
  '../../../functions/shared/writers.ts'
);

/**
 * The names of the files a process writes aside (functions/shared/writers.ts): unique in the process, its pid and host
 * tag in them for the sweeps, without random bytes drawn for each (docs/performance.md §2, perf24).
 */
afterEach(() => {
  drawn.calls = 0;
});

describe('files written aside and temporary files of this process', () => {
  it('are never named alike, carry the writer the sweeps read, and draw random bytes once per process', () => {
    const names = Array.from({ length: 2000 }, (_, i) => (i % 2 ? asideName('/d/a.json') : processTempName()));
    expect(new Set(names).size).toBe(2000);
    const aside = /^\/d\/a\.json\.(\d+)\.([0-9a-f]+)\.tmp$/.exec(names[1]!);
    expect(aside).not.toBeNull();
    // The shape local/store/json-files.ts's sweep parses: the host tag and 12 more digits.
    expect(asideWriter(aside![1]!, aside![2]!)).toEqual({ pid: process.pid, host: writerHost() });
    expect(stampedWriter(names[0]!)).toEqual({ pid: process.pid, host: writerHost() });
    expect(names[0]).toMatch(/^\d+@[0-9a-f]{8}-[0-9a-f]{12}$/);
    // Before: 6 random bytes (a call into OpenSSL) for each name.
    expect(drawn.calls).toBeLessThanOrEqual(1);
  });
});
