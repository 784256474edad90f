import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ObjectStore } from '../../../local/store/object-store.ts';

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

/** Each process waits for the same instant, then migrates (as `npm start` and a command on the old folder would). */
function migrateInProcesses(count: number): Promise<string[]> {
  const module = path.resolve('local/store/s3rver-migration.ts');
  const store = path.resolve('local/store/object-store.ts');
  const code = `const { migrateS3rverLayout } = await import(${JSON.stringify(module)});
    const { ObjectStore } = await import(${JSON.stringify(store)});
    const go = Number(process.argv[1]); while (Date.now() < go) {}
    const store = new ObjectStore(${JSON.stringify(root)});
    try { await store.open(); console.log('moved ' + await migrateS3rverLayout(store)); }
    catch (error) { console.log('failed ' + error.message); }`;
  const go = Date.now() + 2_500;
  return Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<string>((resolve) => {
          const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code, String(go)]);
          let out = '';
          child.stdout.on('data', (d) => (out += d));
          child.on('close', () => resolve(out.trim()));
        }),
    ),
  );
}

describe('the s3rver layout migration', () => {
  it('run by several processes at once: one moves every object once, the others find it done', async () => {
    // Before: the processes moved the same objects at once; some failed (ENOENT: one the other had just moved) and
    // others moved an object again without its metadata (its content type became binary/octet-stream).
    await s3rverLayout();
    const outcomes = (await migrateInProcesses(3)).sort();
    expect(outcomes).toEqual(['moved 0', 'moved 0', `moved ${OBJECTS}`]);
    const store = new ObjectStore(root);
    for (let n = 0; n < OBJECTS; n++) {
      const got = await store.get(BUCKET, `conversation-history/2026/11/29/webhook_${n}/conversation.json`, true);
      expect(got?.info).toMatchObject({ contentType: 'application/json', metadata: { origin: 's3rver' } });
    }
    expect(JSON.parse(await readFile(path.join(root, '.layout.json'), 'utf8'))).toMatchObject({
      moved_from_s3rver: OBJECTS,
    });
    expect((await readdir(root)).filter((name) => name.startsWith('.layout'))).toEqual(['.layout.json']);
  }, 30_000);
});
