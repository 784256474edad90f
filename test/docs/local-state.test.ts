import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../local/paths.ts';
import { runMain } from '../support/cli.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * docs/configuration.md, "The local runtime": what `LOCAL_DATA_DIR` holds. A user who opens the folder after a
 * conversation in a thread, a failed delivery, a status read and the CLI's listings and SQL finds each entry named.
 */
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

async function localStateParagraph(): Promise<string> {
  const page = await readFile(path.join(PROJECT_ROOT, 'docs', 'configuration.md'), 'utf8');
  const start = page.indexOf('- **Local state** lives in `LOCAL_DATA_DIR`');
  expect(start).toBeGreaterThan(0);
  return page.slice(start, page.indexOf('\n- ', start + 1));
}

describe('docs/configuration.md names what the data folder holds', () => {
  it('every entry of a used data folder is named in the "Local state" paragraph', async () => {
    world.receiver.reply(400);
    expect((await world.post({ ...SEED_REQUEST, thread_id: 'q3-review' }, { 'idempotency-key': 'k1' })).status).toBe(
      200,
    );
    world.receiver.reply(200);
    expect((await world.post(SEED_REQUEST, { prefer: 'respond-async' })).status).toBe(202);
    const env = { LOCAL_DATA_DIR: world.dataDir };
    const listed = await runMain(['conversations', 'list', '--source', 'testing_system'], env);
    expect(listed.stderr).toBe('');
    expect((await runMain(['conversations', 'query', 'SELECT count(*) AS n FROM conversations'], env)).code).toBe(0);
    const paragraph = await localStateParagraph();
    const entries = (await readdir(world.dataDir, { withFileTypes: true })).map((e) =>
      e.isDirectory() ? `${e.name}/` : e.name,
    );
    const unnamed = entries.filter((entry) => !paragraph.includes(`\`${entry}`));
    expect(unnamed).toEqual([]);
  });
});
