import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SET_ASIDE_DIR, setAsideWarning, stillSetAside } from '../../../local/engine/set-aside.ts';

let journalDir: string;
beforeEach(async () => {
  journalDir = await mkdtemp(path.join(tmpdir(), 'set-aside-'));
  await mkdir(path.join(journalDir, SET_ASIDE_DIR));
});
afterEach(async () => {
  await rm(journalDir, { recursive: true, force: true });
});

describe('what is still set aside, said at the start', () => {
  it('a FIFO in place of an execution’s why: the start is not kept waiting, and its line names the FIFO', async () => {
    const dir = path.join(journalDir, SET_ASIDE_DIR);
    await writeFile(path.join(dir, 'exec-a.jsonl'), '{}\n');
    await writeFile(path.join(dir, 'exec-a.jsonl.why.txt'), 'the Deliver stage failed\nmore\n');
    await writeFile(path.join(dir, 'exec-b.jsonl'), '{}\n');
    const why = path.join(dir, 'exec-b.jsonl.why.txt');
    expect(spawnSync('mkfifo', [why]).status).toBe(0);
    // Before: the why was read until a writer came: the start hung for good.
    const kept = await stillSetAside(journalDir);
    expect(kept.map((k) => [k.execution, k.why])).toEqual([
      ['exec-a', 'the Deliver stage failed'],
      ['exec-b', `${why} is not a regular file (it is a FIFO (a named pipe))`],
    ]);
    expect(setAsideWarning(journalDir, kept)).toContain(
      `exec-b (${why} is not a regular file (it is a FIFO (a named pipe)))`,
    );
  });
});
