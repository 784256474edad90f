import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runningStatus } from '../../../functions/domain/conversation-status.ts';
import { conversationStatusStore } from '../../../functions/shared/conversation-status-store.ts';

const NOW = new Date('2026-12-01T10:00:00Z');
const ID = 'webhook_20261201_100000_crm_p_status1';

describe('the local conversation status store (STATUS_DIR)', () => {
  let dir: string;
  const saved = { STATUS_DIR: process.env.STATUS_DIR, STATUS_TABLE_NAME: process.env.STATUS_TABLE_NAME };
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'status-'));
    process.env.STATUS_DIR = dir;
    delete process.env.STATUS_TABLE_NAME;
  });
  afterAll(async () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps a record written several times at once whole: each write has a temporary file of its own', async () => {
    const store = conversationStatusStore()!;
    const writes = Array.from({ length: 12 }, (_, i) =>
      store.accept({ ...runningStatus(ID, 'crm', NOW), accepted_at: new Date(NOW.getTime() + i).toISOString() }),
    );
    await expect(Promise.all(writes)).resolves.toBeDefined();
    expect(await store.get(ID)).toMatchObject({ conversation_id: ID, status: 'running', source_system: 'crm' });
    expect(await readdir(dir)).toEqual([`${ID}.json`]);
    expect(await store.finish(ID, { status: 'completed', completed_at: NOW.toISOString(), body: '{}' })).toBe(true);
    expect(await store.get(ID)).toMatchObject({ status: 'completed', body: '{}' });
  });
});
