/**
 * A lock that a writer in another container sharing the data folder holds and keeps fresh, for a test's
 * `vi.mock('node:fs/promises', …)`: each look at `looks.lock` (the `link` that would take it) is counted, moves the
 * test's clock on 500 ms and touches the lock as its holder would. `looks` comes from `vi.hoisted`; `lock` '' while
 * no lock is held. This module imports no file system of its own: it is loaded inside the mock's factory.
 */
import { vi } from 'vitest';

export interface HeldLockLooks {
  n: number;
  lock: string;
  /** false: nobody touches it (its holder was killed and its pid is another process's now); the clock still moves. */
  touched?: boolean;
}

export function withHeldLock(fsp: typeof import('node:fs/promises'), looks: HeldLockLooks) {
  const link = async (existing: string, target: string) => {
    if (looks.lock !== '' && String(target) === looks.lock) {
      looks.n += 1;
      vi.setSystemTime(Date.now() + 500);
      const now = new Date();
      if (looks.touched !== false) await fsp.utimes(target, now, now);
    }
    return fsp.link(existing, target);
  };
  return { ...fsp, link, default: { ...fsp, link } };
}
