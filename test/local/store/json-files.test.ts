import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeTextAtomic } from '../../../local/store/json-files.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'json-files-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeTextAtomic', () => {
  for (const [size, text] of [
    ['a small document', `${JSON.stringify({ a: 'x'.repeat(1000) })}\n`],
    ['a large document (1 MB)', `${JSON.stringify({ a: 'é'.repeat(512 * 1024) })}\n`],
  ] as const) {
    it(`writes ${size} into a folder it creates, whole, with the mode from the first byte, and leaves no temporary file`, async () => {
      const file = path.join(dir, 'missing', 'folder', 'doc.json');
      await writeTextAtomic(file, text, 0o600);
      expect(await readFile(file, 'utf8')).toBe(text);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect(await readdir(path.dirname(file))).toEqual(['doc.json']);
      await writeTextAtomic(file, '{"replaced":true}\n');
      expect(await readFile(file, 'utf8')).toBe('{"replaced":true}\n');
    });
  }

  it('reports a folder it cannot create (a file is in the way) and writes nothing', async () => {
    await writeTextAtomic(path.join(dir, 'blocker'), 'x');
    await expect(writeTextAtomic(path.join(dir, 'blocker', 'doc.json'), '{}')).rejects.toMatchObject({
      code: expect.stringMatching(/ENOTDIR|EEXIST/),
    });
    expect(await readdir(dir)).toEqual(['blocker']);
  });
});
