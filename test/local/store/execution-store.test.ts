import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writerHost } from '../../../functions/shared/writers.ts';
import type { ExecutionRecord } from '../../../local/engine/engine.ts';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';

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

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'executions-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('a damaged execution history is left out and named, never a crash of the listing', () => {
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

describe('what a crash cut of a history write: this process’s own writes only are kept, whatever the pid namespace', () => {
  it("removes another namespace's write of this process's pid (a container restarted as pid 1), keeps its own", async () => {
    const store = new ExecutionStore(dataDir);
    await store.save(ID, RECORD);
    const folder = path.join(dataDir, 'executions', ID);
    const history = '20261202T113903000Z_req-2.json';
    const other = anotherHost();
    const before = `${history}.${process.pid}.${other}0a1b2c3d4e5f.tmp`; // the gateway of before the restart
    const mine = `${history}.${process.pid}.${writerHost()}0f0e0d0c0b0a.tmp`; // this gateway's, under way
    for (const name of [before, mine]) await writeFile(path.join(folder, name), '{"events":');
    // Before: both were read as this process's own (its pid) and kept until the conversation's folder was swept.
    expect(await store.removeCutWrites(ID)).toBe(1);
    expect((await readdir(folder)).filter((name) => name.endsWith('.tmp'))).toEqual([mine]);
    expect(await store.removeOrphanedCutWrites(new Set())).toBe(0); // its own, written since it started
  });
});
