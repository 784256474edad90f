import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * docs/contract.md#get-conversationsid: every answer of the status route is `Cache-Control: no-store`, and a read that
 * failed answers 503 `STORAGE_UNAVAILABLE` with `Retry-After`, as the status function does on AWS. Here the data
 * folder refuses to read the status file (EACCES, made through this seam: root reads a chmod 000 file anyway).
 */
const refuse = { statusRead: false };
// The open of functions/shared/local-files.ts (readDataFile), as Node's callback API gives its error.
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const open = ((file: string, ...rest: unknown[]) => {
    if (refuse.statusRead && String(file).includes(`${path.sep}status${path.sep}`)) {
      const done = rest.pop() as (error: Error) => void;
      done(Object.assign(new Error(`EACCES: permission denied, open '${file}'`), { code: 'EACCES', syscall: 'open' }));
      return;
    }
    return (fs.open as (...args: unknown[]) => void)(file, ...rest);
  }) as typeof fs.open;
  return { ...fs, open, default: { ...fs, open } };
});

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

describe('GET /conversations/{id} whose status file cannot be read', () => {
  it('503 STORAGE_UNAVAILABLE with Retry-After and Cache-Control: no-store; the status again once readable', async () => {
    const accepted = await world.post(SEED_REQUEST, { prefer: 'respond-async' });
    expect(accepted.status).toBe(202);
    await world.gateway.idle();
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    refuse.statusRead = true;
    try {
      const refused = await fetch(accepted.body.status_url);
      expect(refused.status).toBe(503);
      expect(refused.headers.get('cache-control')).toBe('no-store');
      // The status function's Retry-After, as on AWS (before: the data folder's 30 s).
      expect(refused.headers.get('retry-after')).toBe('2');
      expect(((await refused.json()) as any).error.code).toBe('STORAGE_UNAVAILABLE');
    } finally {
      refuse.statusRead = false;
      errors.mockRestore();
    }
    const read = await fetch(accepted.body.status_url);
    expect(read.status).toBe(200);
    expect(((await read.json()) as any).status).toBe('completed');
  });
});
