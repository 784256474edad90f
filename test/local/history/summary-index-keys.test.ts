import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { runMain, until } from '../../support/cli.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';
import { historiesRead as historiesReadFrom, listedIds } from '../../support/history-reads.ts';

/** Every file the stores read as JSON, by path: which execution histories a listing reads. */
const reads = vi.hoisted(() => [] as string[]);
vi.mock(import('../../../local/store/json-files.ts'), async (original) =>
  (await import('../../support/read-recorder.ts')).recordReads(reads, await original()),
);

/**
 * The summary index keeps each conversation's request keys (its Idempotency-Key, or the webhook-id it was keyed on,
 * and the inbound webhook-id), so `conversations list --key` finds a conversation the way its source knows it
 * (docs/operations.md, "Find a conversation by the source's message id") without reading the others' histories; an
 * index of an earlier version (no keys) and a rebuilt one find it from the histories. Before, the index kept neither
 * and there was no such filter: the operator searched by the conversation id the source never had.
 */
let world: TestWorld;
const ids: Record<string, string> = {};
const indexFile = () => path.join(world.dataDir, 'summaries', 'conversations.json');
const savedFile = () => path.join(world.dataDir, 'summaries', 'conversations.saved.jsonl');

beforeAll(async () => {
  world = await startWorld();
  const ask = async (name: string, headers: Record<string, string>, source = 'crm_sync') => {
    const answer = await world.post(
      { query: `What are the top deals (${name})?`, source_system: source, source_process: 'nightly' },
      headers,
    );
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    ids[name] = answer.body.conversation_id;
  };
  await ask('keyed', { 'Idempotency-Key': 'order-1001' });
  await ask('webhookId', { 'webhook-id': 'msg_2001' });
  await ask('both', { 'Idempotency-Key': ' ik-3001 ', 'webhook-id': 'msg_3001' });
  await ask('none', {});
  await ask('otherSource', { 'Idempotency-Key': 'order-1001' }, 'erp_feed');
  const store = new ExecutionStore(world.dataDir);
  for (const id of Object.values(ids))
    await until(`the history of ${id}`, async () => (await store.executions(id)).length > 0);
});
afterAll(async () => {
  await world?.close();
});

const historiesRead = () => historiesReadFrom(reads, world.dataDir);
const list = (...args: string[]) => listedIds(reads, world.dataDir, ...args);

describe('the summary index and the request keys', () => {
  it('finds a conversation by its Idempotency-Key or inbound webhook-id, exact, reading no other history', async () => {
    expect(await list('--key', 'order-1001')).toEqual([ids.keyed, ids.otherSource].sort());
    expect(await list('--key', 'order-1001', '--source', 'crm_sync')).toEqual([ids.keyed]);
    expect(await list('--key', 'msg_2001')).toEqual([ids.webhookId]);
    // Both keys of a request that sent both (the Idempotency-Key as the gateway took it: trimmed).
    expect(await list('--key', 'ik-3001')).toEqual([ids.both]);
    expect(await list('--key', 'msg_3001')).toEqual([ids.both]);
    expect(historiesRead()).toEqual([]);
    // Exact: another case, or a part, is another key.
    expect(await list('--key', 'ORDER-1001')).toEqual([]);
    expect(await list('--key', 'order-100')).toEqual([]);
    expect(historiesRead()).toEqual([]);
  });

  it('lists each row with its keys (--json)', async () => {
    const run = await runMain(['conversations', 'list', '--json', '--key', 'msg_3001'], {
      LOCAL_DATA_DIR: world.dataDir,
    });
    expect(JSON.parse(run.stdout)).toEqual([
      expect.objectContaining({ conversation_id: ids.both, idempotency_key: 'ik-3001', webhook_id: 'msg_3001' }),
    ]);
    const none = await runMain(['conversations', 'list', '--json', '--id', ids.none!], {
      LOCAL_DATA_DIR: world.dataDir,
    });
    expect(JSON.parse(none.stdout)).toEqual([
      expect.objectContaining({ conversation_id: ids.none, idempotency_key: null, webhook_id: null }),
    ]);
  });

  it('an index of an earlier version (no keys) is completed by the first lookup by key, which reads the histories once', async () => {
    await list('--status', 'completed'); // the saved entries folded into the index file
    const stored = JSON.parse(await readFile(indexFile(), 'utf8'));
    for (const entry of Object.values(stored.entries) as { row: Record<string, unknown> }[]) {
      delete entry.row.idempotency_key;
      delete entry.row.webhook_id;
    }
    await writeFile(indexFile(), JSON.stringify(stored));
    // A filter without a key reads only what it shows.
    expect(await list('--type', 'none')).toEqual([]);
    expect(historiesRead()).toEqual([]);
    expect(await list('--key', 'msg_2001')).toEqual([ids.webhookId]);
    expect(historiesRead()).toEqual(Object.values(ids).sort());
    expect(await list('--key', 'msg_2001')).toEqual([ids.webhookId]);
    expect(historiesRead()).toEqual([]);
  });

  it('a rebuilt index (its files deleted) finds them from the histories', async () => {
    await rm(indexFile(), { force: true });
    await rm(savedFile(), { force: true });
    expect(await list('--key', 'order-1001', '--source', 'erp_feed')).toEqual([ids.otherSource]);
    expect(await list('--key', 'ik-3001')).toEqual([ids.both]);
    expect(historiesRead()).toContain(ids.both);
  });

  it('refuses a key no request could have sent, saying what it takes', async () => {
    const run = await runMain(['conversations', 'list', '--key', 'two words'], { LOCAL_DATA_DIR: world.dataDir });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/--key takes the Idempotency-Key or webhook-id a source sent .*; got "two words"/);
  });
});
