import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ExecutionRecord } from '../../../local/engine/engine.ts';
import { ExecutionStore } from '../../../local/store/execution-store.ts';

const ID = 'webhook_20261202_113902_crm_p_79eec5jp3s';
const RECORD: ExecutionRecord = {
  execution_name: 'req-1',
  state_machine: 'conversation',
  status: 'SUCCEEDED',
  started_at: '2026-12-02T11:39:02.324Z',
  stopped_at: '2026-12-02T11:39:02.500Z',
  input: {},
  events: [],
};

describe('a damaged execution history is left out and named, never a crash of the listing', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'executions-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it.each([
    ['an array', '[]'],
    ['an empty object', '{}'],
    ['events that are not a list', JSON.stringify({ ...RECORD, events: {} })],
    ['a null event', JSON.stringify({ ...RECORD, events: [null] })],
    ['a bare null', 'null'],
  ])('a history file holding %s: the other executions are read, onUnreadable names it', async (_what, text) => {
    const unreadable: string[] = [];
    const store = new ExecutionStore(dataDir, { onUnreadable: (file) => unreadable.push(file) });
    await store.save(ID, RECORD);
    const damaged = path.join(dataDir, 'executions', ID, '20261202T113903000Z_req-2.json');
    await mkdir(path.dirname(damaged), { recursive: true });
    await writeFile(damaged, text);
    expect((await store.executions(ID)).map((r) => r.execution_name)).toEqual(['req-1']);
    expect(unreadable).toEqual([damaged]);
  });

  it('a folder where a history file belongs: the other executions are read, onUnreadable names it', async () => {
    const unreadable: string[] = [];
    const store = new ExecutionStore(dataDir, {
      onUnreadable: (file, reason) => unreadable.push(`${file}: ${reason}`),
    });
    await store.save(ID, RECORD);
    const folder = path.join(dataDir, 'executions', ID, '20261202T113903000Z_req-2.json');
    await mkdir(folder);
    expect((await store.executions(ID)).map((r) => r.execution_name)).toEqual(['req-1']);
    expect(unreadable).toEqual([`${folder}: it is a folder, not a file (EISDIR)`]);
  });
});
