import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendLineNamed, stopFileWriter, writeTextAtomicInThread } from '../../../local/store/file-writer.ts';
import { type ObjectInfo, ObjectStore } from '../../../local/store/object-store.ts';

/** The embedded S3's writes go through one writer thread (local/store/file-writer.ts, docs/performance.md). */
let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'file-writer-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const info = (size: number): ObjectInfo => ({
  size,
  etag: 'e',
  modified: '2026-12-03T06:00:00.000Z',
  contentType: 'application/json',
});

describe('the embedded S3 file writer', () => {
  it('a writer thread that dies fails the writes under way with its error, leaves no temporary file, and the next write starts another', async () => {
    const store = new ObjectStore(root);
    await store.open();
    await store.createBucket('b');
    const body = Buffer.alloc(64 * 1024, 'x');
    const writes = Array.from({ length: 200 }, (_, n) =>
      store.put('b', `c${n % 50}/f${n}.json`, info(body.length), body),
    );
    await writes[0]; // the thread is at work, the other writes queued for it
    await stopFileWriter();
    const outcomes = await Promise.allSettled(writes);
    const failed = outcomes.filter((o) => o.status === 'rejected');
    expect(failed.length).toBeGreaterThan(0);
    for (const f of failed) expect(String(f.reason)).toMatch(/the embedded S3's file writer stopped/);
    expect(await readdir(path.join(root, '.tmp'))).toEqual([]);
    // Every write that succeeded is whole; the next write works.
    for (const [n, o] of outcomes.entries()) {
      if (o.status !== 'fulfilled') continue;
      const stored = await store.get('b', `c${n % 50}/f${n}.json`);
      expect((stored!.body() as Buffer).equals(body)).toBe(true);
    }
    await store.put('b', 'after/f.json', info(2), Buffer.from('{}'));
    const after = await store.get('b', 'after/f.json');
    expect(after!.info.size).toBe(2);
    expect(String(after!.body())).toBe('{}');
  });

  it('keeps the process alive while a write is under way, and not once it is done', () => {
    const code = `const { ObjectStore } = await import(${JSON.stringify(path.resolve('local/store/object-store.ts'))});
      const store = new ObjectStore(${JSON.stringify(root)});
      await store.open();
      await store.createBucket('b');
      await store.put('b', 'k/one.json', { size: 2, etag: 'e', modified: new Date().toISOString(), contentType: 'application/json' }, Buffer.from('{}'));
      console.log('written');`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    // Before the thread was held while writing, an await on it alone ended the process (exit 13, nothing written);
    // were it held when idle, the process would not end at all (killed by the timeout: status null).
    expect({ status: child.status, stdout: child.stdout }).toEqual({ status: 0, stdout: 'written\n' });
  });

  it('writes a document whole through a file of its own, makes its missing folder owner-only, and leaves nothing aside when it fails', async () => {
    const file = path.join(root, 'executions', 'webhook_x', 'history.json');
    await writeTextAtomicInThread(file, '{"a":1}\n', 0o600);
    expect(await readFile(file, 'utf8')).toBe('{"a":1}\n');
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    // A folder where the file should be: the system's error, named, and no copy left beside it.
    const blocked = path.join(root, 'executions', 'webhook_y', 'history.json');
    await mkdir(blocked, { recursive: true });
    await expect(writeTextAtomicInThread(blocked, '{}\n')).rejects.toMatchObject({ code: 'EISDIR', syscall: 'rename' });
    expect(await readdir(path.dirname(blocked))).toEqual(['history.json']);
  });

  it("tells the folder a history went into as a listing would see it: its stamp, its .json names, each one's stamp", async () => {
    const dir = path.join(root, 'executions', 'webhook_folder');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'b.json'), '{}\n');
    await writeFile(path.join(dir, 'notes.txt'), 'x');
    const folder = await writeTextAtomicInThread(path.join(dir, 'a.json'), '{"a":1}\n', 0o600, '.json');
    const now = await stat(dir, { bigint: true });
    const files = await Promise.all(['a.json', 'b.json'].map((n) => stat(path.join(dir, n))));
    expect(folder).toEqual({
      stamp: `${now.ino}:${now.mtimeNs}`,
      names: ['a.json', 'b.json'],
      files: files.map(({ ino, mtimeMs, size }) => ({ ino, mtimeMs, size })),
    });
    // Not asked: none.
    expect(await writeTextAtomicInThread(path.join(dir, 'c.json'), '{}\n')).toBeUndefined();
  });

  it('tells a folder it made for the history (a new conversation) as holding that history alone', async () => {
    const file = path.join(root, 'executions', 'webhook_new', 'a.json');
    const folder = await writeTextAtomicInThread(file, '{"a":1}\n', 0o600, '.json');
    const now = await stat(path.dirname(file), { bigint: true });
    const { ino, mtimeMs, size } = await stat(file);
    expect(folder).toEqual({ stamp: `${now.ino}:${now.mtimeNs}`, names: ['a.json'], files: [{ ino, mtimeMs, size }] });
    expect(await readdir(path.dirname(file))).toEqual(['a.json']);
    // Written again into that folder, now there: read as a listing would.
    await writeFile(path.join(path.dirname(file), 'b.json'), '{}\n');
    expect((await writeTextAtomicInThread(file, '{"a":2}\n', 0o600, '.json'))?.names).toEqual(['a.json', 'b.json']);
  });

  it('appends a line to a file of that name, owner-only, its folder made; after a line cut short, on a line of its own', async () => {
    const file = path.join(root, 'summaries', 'saved.jsonl');
    await appendLineNamed(file, '{"a":1}\n');
    expect(await readFile(file, 'utf8')).toBe('{"a":1}\n');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    // A file another process left ending in a cut line, first appended to by this thread.
    const cut = path.join(root, 'summaries', 'cut.jsonl');
    await writeFile(cut, '{"a":1}\n{"b":');
    await appendLineNamed(cut, '{"c":3}\n');
    await appendLineNamed(cut, '{"d":4}\n');
    expect(await readFile(cut, 'utf8')).toBe('{"a":1}\n{"b":\n{"c":3}\n{"d":4}\n');
    // The system's refusal is thrown (a folder where the file should be).
    await mkdir(path.join(root, 'summaries', 'dir.jsonl'));
    await expect(appendLineNamed(path.join(root, 'summaries', 'dir.jsonl'), 'x\n')).rejects.toMatchObject({
      code: 'EISDIR',
    });
  });
});
