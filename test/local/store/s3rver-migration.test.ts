import { spawnSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { writerHost } from '../../../functions/shared/writers.ts';
import { ObjectStore } from '../../../local/store/object-store.ts';
import { migrateS3rverLayout } from '../../../local/store/s3rver-migration.ts';
import { meetInProcesses } from '../../support/meeting.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';

const BUCKET = 'revops-conversations';
const OBJECTS = 150;
let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 's3rver-migration-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A data folder an earlier version (s3rver) wrote: each object with its metadata beside it. */
async function s3rverLayout(): Promise<void> {
  for (let n = 0; n < OBJECTS; n++) {
    const folder = path.join(root, BUCKET, 'conversation-history', '2026', '11', '29', `webhook_${n}`);
    await mkdir(folder, { recursive: true });
    const base = path.join(folder, 'conversation.json');
    await writeFile(`${base}._S3rver_object`, JSON.stringify({ n }));
    await writeFile(
      `${base}._S3rver_metadata.json`,
      JSON.stringify({ 'content-type': 'application/json', 'x-amz-meta-origin': 's3rver' }),
    );
  }
}

/**
 * Several processes that migrate at once (as `npm start` and a command on the old folder would), each saying so in
 * `tries` first: its outcome, and the log of when each began and ended.
 */
async function migrateInProcesses(count: number): Promise<{ outcomes: string[]; log: string[] }> {
  const module = path.resolve('local/store/s3rver-migration.ts');
  const store = path.resolve('local/store/object-store.ts');
  const tries = `${root}.tries`;
  try {
    const processes = await meetInProcesses(
      count,
      `const { migrateS3rverLayout } = await import(${JSON.stringify(module)});
      const { ObjectStore } = await import(${JSON.stringify(store)});
      const { appendFileSync } = await import('node:fs');`,
      `appendFileSync(${JSON.stringify(tries)}, 'try\\n');
      const store = new ObjectStore(${JSON.stringify(root)});
      try { await store.open(); console.log('moved ' + await migrateS3rverLayout(store)); }
      catch (error) { console.log('failed ' + error.message); }
      appendFileSync(${JSON.stringify(tries)}, 'done\\n');`,
    );
    const outcomes = await Promise.all(processes.map((p) => p.closed));
    return { outcomes, log: (await readFile(tries, 'utf8')).trim().split('\n') };
  } finally {
    await rm(tries, { force: true });
  }
}

describe('the s3rver layout migration', () => {
  it('run by several processes at once: one moves every object once, the others find it done', async () => {
    // Before: the processes moved the same objects at once; some failed (ENOENT: one the other had just moved) and
    // others moved an object again without its metadata (its content type became binary/octet-stream).
    await s3rverLayout();
    const { outcomes, log } = await migrateInProcesses(3);
    expect(outcomes.sort()).toEqual(['moved 0', 'moved 0', `moved ${OBJECTS}`]);
    // They met: all had begun before the first was done (one after another, the later ones would only find the
    // migration done, and the test would pass whatever a migration under way did to them).
    expect(log.slice(0, 3)).toEqual(['try', 'try', 'try']);
    const store = new ObjectStore(root);
    for (let n = 0; n < OBJECTS; n++) {
      const got = await store.get(BUCKET, `conversation-history/2026/11/29/webhook_${n}/conversation.json`, true);
      expect(got?.info).toMatchObject({ contentType: 'application/json', metadata: { origin: 's3rver' } });
    }
    expect(JSON.parse(await readFile(path.join(root, '.layout.json'), 'utf8'))).toMatchObject({
      moved_from_s3rver: OBJECTS,
    });
    expect((await readdir(root)).filter((name) => name.startsWith('.layout'))).toEqual(['.layout.json']);
  }, 120_000); // 3 processes importing through tsx, as the other tests of several processes: the limit only catches a hang

  it('a FIFO or a link to a device in the old layout: not read, left where it is and named at the start; the rest moved', async () => {
    const folder = path.join(root, BUCKET, 'conversation-history', '2026', '11', '29');
    await mkdir(folder, { recursive: true });
    const object = (name: string) => path.join(folder, `${name}._S3rver_object`);
    const metadata = (name: string) => path.join(folder, `${name}._S3rver_metadata.json`);
    await writeFile(object('kept.json'), '{"kept":true}');
    await writeFile(metadata('kept.json'), JSON.stringify({ 'content-type': 'application/json' }));
    expect(spawnSync('mkfifo', [object('fifo.json')]).status).toBe(0);
    await symlink('/dev/zero', object('zero.json'));
    await writeFile(metadata('zero.json'), '{}');
    await writeFile(object('piped-metadata.json'), '{"n":2}');
    expect(spawnSync('mkfifo', [metadata('piped-metadata.json')]).status).toBe(0);
    const warned: string[] = [];
    const warn = vi.spyOn(console, 'warn').mockImplementation((line: string) => void warned.push(line));
    try {
      const store = new ObjectStore(root);
      await store.open();
      // Before: the FIFO was read until a writer came (the start hung for good), the link until memory ran out.
      expect(await migrateS3rverLayout(store)).toBe(2);
      const key = (name: string) => `conversation-history/2026/11/29/${name}`;
      expect((await store.get(BUCKET, key('kept.json')))?.info.contentType).toBe('application/json');
      expect((await store.get(BUCKET, key('piped-metadata.json')))?.info.contentType).toBe('binary/octet-stream');
      expect(await store.get(BUCKET, key('fifo.json'), true)).toBeNull();
      expect(await store.get(BUCKET, key('zero.json'), true)).toBeNull();
      expect(warned.sort()).toEqual(
        [
          `webhook-gateway: ${object('fifo.json')} is not a regular file (it is a FIFO (a named pipe)): not read by the move of the s3rver layout; left where it is, no object moved from it: remove it`,
          `webhook-gateway: ${object('zero.json')} is not a regular file (it is a symbolic link, which the gateway never makes): not read by the move of the s3rver layout; left where it is, no object moved from it: remove it`,
          `webhook-gateway: ${metadata('piped-metadata.json')} is not a regular file (it is a FIFO (a named pipe)): not read by the move of the s3rver layout; the object ${key('piped-metadata.json')} was moved without it (no content type, no metadata)`,
        ].sort(),
      );
      // Left for their operator to see (the metadata of the link's object with it); the rest of s3rver's files gone.
      expect((await readdir(folder)).filter((name) => name.includes('._S3rver_')).sort()).toEqual(
        [
          'fifo.json._S3rver_object',

          'zero.json._S3rver_metadata.json',
          'zero.json._S3rver_object',
        ].sort(),
      );
      expect((await lstat(object('zero.json'))).isSymbolicLink()).toBe(true);
    } finally {
      warn.mockRestore();
    }
  });

  it('a lock of another pid namespace (a container migrating the shared folder) is waited on while fresh, taken once stale', async () => {
    await s3rverLayout();
    const lock = path.join(root, '.layout.json.lock');
    const other = anotherHost();
    // A container's start migrating: its pid there is this process's own (pids from 1), which says nothing here.
    await writeFile(lock, `${process.pid}@${other}`);
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout'] });
    try {
      const store = new ObjectStore(root);
      await store.open();
      const migrated = migrateS3rverLayout(store);
      // Before: a lock naming this process's pid was taken over at once, and both moved the same objects.
      await vi.waitFor(() => expect(vi.getTimerCount()).toBe(1), { interval: 1 }); // waiting on it
      for (let look = 0; look < 3; look++) {
        await vi.advanceTimersByTimeAsync(20);
        await vi.waitFor(() => expect(vi.getTimerCount()).toBe(1), { interval: 1 });
      }
      expect(await readFile(lock, 'utf8')).toBe(`${process.pid}@${other}`);
      expect(await readdir(root)).not.toContain('.layout.json');
      // Its container was killed: nobody touches its lock; once 30 s old it is taken over and the migration runs.
      const killedAt = new Date(Date.now() - 30_001);
      await utimes(lock, killedAt, killedAt);
      await vi.advanceTimersByTimeAsync(20);
      expect(await migrated).toBe(OBJECTS);
    } finally {
      vi.useRealTimers();
    }
    expect((await readdir(root)).filter((name) => name.startsWith('.layout'))).toEqual(['.layout.json']);
  }, 30_000);

  it('a lock of this pid namespace naming a live process, untouched for 30 s (a killed migrator’s pid reused): taken over', async () => {
    await s3rverLayout();
    const lock = path.join(root, '.layout.json.lock');
    // pid 1 is alive here: the reused pid of a migrator killed a minute ago (its holder touched it every 10 s).
    await writeFile(lock, `1@${writerHost()}.ab12`);
    const minuteAgo = new Date(Date.now() - 60_000);
    await utimes(lock, minuteAgo, minuteAgo);
    const store = new ObjectStore(root);
    await store.open();
    // Before: waited on for good (the start and every command reading the bucket hung).
    expect(await migrateS3rverLayout(store)).toBe(OBJECTS);
    expect(await readdir(root)).toContain('.layout.json');
  });

  it('a FIFO where the migration’s lock should be: the start stops at once, naming it and what to do', async () => {
    await s3rverLayout();
    const lock = path.join(root, '.layout.json.lock');
    expect(spawnSync('mkfifo', [lock]).status).toBe(0);
    const store = new ObjectStore(root);
    await store.open();
    // Before: the lock was read until a writer came: the start hung for good.
    await expect(migrateS3rverLayout(store)).rejects.toThrow(
      `${lock} is not a lock the gateway made (it is a FIFO (a named pipe); remove it, then try again)`,
    );
    await rm(lock);
    expect(await migrateS3rverLayout(store)).toBe(OBJECTS);
  });
});
