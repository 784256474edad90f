import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { runMain } from '../../support/cli.ts';
import { saveDeliveredHistory } from '../../support/history-reads.ts';

/** The history files the system refuses to read (its permissions changed; root reads them anyway, so refused here). */
const refused = vi.hoisted(() => new Set<string>());
vi.mock(import('../../../local/store/json-files.ts'), async (original) => {
  const actual = await original();
  return {
    ...actual,
    readJson: (async (file: string) => {
      if (refused.has(file))
        throw Object.assign(new Error(`EACCES: permission denied, read '${file}'`), { code: 'EACCES', path: file });
      return actual.readJson(file);
    }) as typeof actual.readJson,
  };
});

/**
 * `conversations show <id>` whose only history is a folder, or a file the system refuses to read, names that path and
 * what is wrong and exits 1 (it said "no conversation", or the folder's reason without its path); `conversations
 * list` lists the others and names the file (a refused read stopped the whole listing).
 */
let dataDir: string;
const ids: string[] = [];
const historyOf = async (id: string) => {
  const folder = path.join(dataDir, 'executions', id);
  return path.join(folder, (await readdir(folder))[0]!);
};

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-show-damaged-'));
  const store = new ExecutionStore(dataDir);
  for (let n = 0; n < 3; n++) {
    const at = new Date(Date.UTC(2026, 10, 29, 10, 0, n)).toISOString();
    const id = await saveDeliveredHistory(store, at, `sd${n}`, `run-${n}`);
    ids.push(id);
    // Written a minute ago: what a listing learns of them is kept in the summary index.
    const then = new Date(Date.now() - 60_000);
    await utimes(await historyOf(id), then, then);
    await utimes(path.dirname(await historyOf(id)), then, then);
  }
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const cli = (...args: string[]) => runMain(args, { LOCAL_DATA_DIR: dataDir });

describe('a conversation whose history cannot be read', () => {
  it('a folder where the history file belongs: show names the path and exits 1, list lists the others', async () => {
    const file = await historyOf(ids[0]!);
    await rm(file);
    await mkdir(file);
    const show = await cli('conversations', 'show', ids[0]!);
    expect(show.code).toBe(1);
    expect(show.stderr).toContain(`${file}: it is a folder, not a file (EISDIR)`);
    expect(show.stderr).not.toContain('no conversation');
    const list = await cli('conversations', 'list', '--json');
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { conversation_id: string }[]).map((r) => r.conversation_id)).toEqual([
      ids[2],
      ids[1],
    ]);
    expect(list.stderr).toContain(`${file}: it is a folder, not a file (EISDIR)`);
  });

  it('a damaged history beside a good one is named at every listing that shows its conversation', async () => {
    const folder = path.dirname(await historyOf(ids[2]!));
    const cut = path.join(folder, '20261129T100003000Z_cut-run.json');
    await writeFile(cut, '{"execution_name":"cut-run","sta');
    const then = new Date(Date.now() - 60_000);
    for (const name of await readdir(folder)) await utimes(path.join(folder, name), then, then);
    await utimes(folder, then, then);
    for (let n = 0; n < 2; n++) {
      const list = await cli('conversations', 'list', '--json', '--type', 'deal_analysis');
      expect(list.code, list.stderr).toBe(0);
      expect((JSON.parse(list.stdout) as { conversation_id: string }[]).map((r) => r.conversation_id)).toContain(
        ids[2],
      );
      expect(list.stderr).toContain(`${cut} is not valid JSON`);
    }
    await rm(cut);
  });

  it('a file the system refuses to read: show names it and exits 1, list lists the others', async () => {
    const file = await historyOf(ids[1]!);
    refused.add(file);
    const show = await cli('conversations', 'show', ids[1]!);
    expect(show.code).toBe(1);
    expect(show.stderr).toContain(`${file}: cannot read it (EACCES: permission denied)`);
    await rm(path.join(dataDir, 'summaries'), { recursive: true, force: true }); // read again, not from the index
    const list = await cli('conversations', 'list', '--json', '--status', 'delivered');
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { conversation_id: string }[]).map((r) => r.conversation_id)).toEqual([ids[2]]);
    expect(list.stderr).toContain(`${file}: cannot read it (EACCES: permission denied)`);
    // Readable again (a chmod changes no file's time): listed again, not remembered as a conversation without a row.
    refused.delete(file);
    const again = await cli('conversations', 'list', '--json', '--status', 'delivered');
    expect((JSON.parse(again.stdout) as { conversation_id: string }[]).map((r) => r.conversation_id)).toEqual([
      ids[2],
      ids[1],
    ]);
  });
});

describe('a conversation whose history is gone but whose export is kept', () => {
  it('show says the history is gone and where the export is, not "no conversation" (the retention sweep keeps exports)', async () => {
    const id = 'webhook_20261018_100000_testing_phase3valid_swept00001';
    const folder = path.join(dataDir, 's3', 'revops-conversations', 'conversation-history', '2026', '10', '18', id);
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 'conversation.json'), JSON.stringify({ conversation_id: id }));
    const show = await cli('conversations', 'show', id);
    expect(show.code).toBe(1);
    // Before: `no conversation <id> in <folder>/executions (run "webhook-gateway conversations list" …)`, as for an
    // id never seen, while the bucket had the conversation whole.
    expect(show.stderr).toContain(
      `conversation ${id} has no execution history in ${path.join(dataDir, 'executions')} (removed by the retention sweep after LOCAL_HISTORY_DAYS, or deleted), but its export is in s3://revops-conversations/conversation-history/2026/10/18/${id}/: "webhook-gateway conversations search ${id}" shows it`,
    );
    const never = await cli('conversations', 'show', 'webhook_20261018_100000_testing_phase3valid_never00001');
    expect(never.code).toBe(1);
    expect(never.stderr).toContain('no conversation webhook_20261018_100000_testing_phase3valid_never00001 in');
  });
});
