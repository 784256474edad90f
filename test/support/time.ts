import { vi } from 'vitest';

/**
 * `fn` with the clock standing still (Date faked, never moved; timers run): what must not wait for a file to age
 * happens, and a wait for one to age never ends (the test times out), however fast or loaded the machine.
 */
export async function withTimeStill<T>(fn: () => Promise<T>): Promise<T> {
  vi.useFakeTimers({ toFake: ['Date'] });
  try {
    return await fn();
  } finally {
    vi.useRealTimers();
  }
}
