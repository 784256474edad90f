import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMain } from '../../support/cli.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * `conversations search` and `conversations query` read the exports. With a gateway started with
 * ENABLE_CONVERSATION_EXPORT=false, they found nothing of what it ran ("No exported conversation matches", a count of
 * 0) and said nothing more, while `conversations list` showed the conversation: now a line on stderr says why.
 */
let world: TestWorld;
const NOTE =
  'exports are off (ENABLE_CONVERSATION_EXPORT=false): the conversations run meanwhile are not in this table; conversations list shows them';

beforeAll(async () => {
  world = await startWorld({ ENABLE_CONVERSATION_EXPORT: 'false' });
  expect((await world.post(SEED_REQUEST)).status).toBe(200);
});
afterAll(async () => {
  await world?.close();
});

describe('a gateway with exports off', () => {
  // As another shell runs the CLI: without the gateway's variables, which its gateway.json tells.
  const env = () => ({
    LOCAL_DATA_DIR: world.dataDir,
    AWS_ENDPOINT_URL_S3: undefined,
    ENABLE_CONVERSATION_EXPORT: undefined,
  });

  it('search and query say so, beside what they found', async () => {
    const search = await runMain(['conversations', 'search', 'deals'], env());
    expect(search.code, search.stderr).toBe(0);
    expect(search.stdout).toContain('No exported conversation matches "deals".');
    expect(search.stderr).toContain(NOTE);
    const query = await runMain(['conversations', 'query', 'SELECT count(*) AS n FROM conversations', '--json'], env());
    expect(query.code, query.stderr).toBe(0);
    expect(JSON.parse(query.stdout)).toEqual([{ n: 0 }]);
    expect(query.stderr).toContain(NOTE);
    const list = await runMain(['conversations', 'list', '--json'], env());
    expect(JSON.parse(list.stdout)).toHaveLength(1);
  });
});
