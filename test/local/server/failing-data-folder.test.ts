import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * A data folder that fails under the running gateway (docs/operations.md, "After a crash"; docs/contract.md#errors):
 * every request is answered — never a connection left hanging — and the gateway serves again once the folder is
 * back.
 */
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

const request = { query: 'What are the top deals?', source_system: 'crm', source_process: 'sync' };

describe('a data folder that fails while the gateway runs', () => {
  it('a failure after the body was read is answered 500 INTERNAL_ERROR (its stack on the console), not left hanging', async () => {
    const journal = path.join(world.dataDir, 'journal');
    // The journal's next segment cannot be made: its folder is now a file (ENOTDIR), once the body has been read.
    await rm(journal, { recursive: true, force: true });
    await writeFile(journal, 'not a folder');
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const answer = await fetch(`${world.gateway.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(request),
        signal: AbortSignal.timeout(5_000),
      });
      expect(answer.status).toBe(500);
      expect(((await answer.json()) as { error: { code: string } }).error.code).toBe('INTERNAL_ERROR');
      expect(printed).toHaveBeenCalledTimes(1);
      expect(String(printed.mock.calls[0]![0])).toMatch(/POST "\/webhook" failed: .*ENOTDIR/);
    } finally {
      printed.mockRestore();
      await rm(journal, { force: true });
      await mkdir(journal);
    }
    // The folder back: the next request runs as usual.
    const again = await world.post(request);
    expect(again.status).toBe(200);
    expect(again.body.tracking.delivery_status).toBe('delivered');
  });
});
