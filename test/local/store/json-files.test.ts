import { execFileSync } from 'node:child_process';
import { watch } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writerHost } from '../../../functions/shared/writers.ts';
import { PROJECT_ROOT } from '../../../local/paths.ts';
import { removeCopiesOfGoneWriters, stringifyRedacted, writeTextAtomic } from '../../../local/store/json-files.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';

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

/** Node running `code` (TypeScript, as the tests are), in a pid namespace of its own when `ownPidNamespace`: its stdout. */
function runNode(code: string, ownPidNamespace: boolean): string {
  const node = [process.execPath, '--import', 'tsx', '--input-type=module', '-e', code];
  const [command, ...args] = ownPidNamespace ? ['unshare', '-Urpf', '--mount-proc', ...node] : node;
  return execFileSync(command!, args, { cwd: PROJECT_ROOT, encoding: 'utf8' }).trim();
}

const canUnshare = (() => {
  try {
    return execFileSync('unshare', ['-Urpf', '--mount-proc', 'true']) !== undefined;
  } catch {
    return false;
  }
})();

describe('removeCopiesOfGoneWriters', () => {
  const TAG_OF = `import { writerHost } from './functions/shared/writers.ts'; console.log(process.pid, writerHost());`;
  const GONE = 99_999_999; // above any pid_max: no process of this namespace has it

  it.skipIf(!canUnshare)(
    "keeps and names a copy whose writer's pid is of another pid namespace (a container sharing the folder), once; removes this namespace's gone writers'",
    async () => {
      const [, here] = runNode(TAG_OF, false).split(' ');
      const [containerPid, there] = runNode(TAG_OF, true).split(' ');
      // Another process of this namespace has this one's tag; one in a namespace of its own (pid 1 there) does not.
      expect(here).toBe(writerHost());
      expect(containerPid).toBe('1');
      expect(there).toMatch(/^[0-9a-f]{8}$/);
      expect(there).not.toBe(here);
      const rand = '0a1b2c3d4e5f';
      const files = {
        goneHere: `doc.json.${GONE}.${here}${rand}.tmp`,
        goneBefore: `doc.json.${GONE}.${rand}.tmp`, // written by a version before the host tag: the pid alone
        mine: `doc.json.${process.pid}.${here}${rand}.tmp`,
        // The container's writer, whatever it is doing: its pid means nothing here (before: this one was removed,
        // its pid not alive in this namespace, while the container's process may still be writing it).
        container: `doc.json.${GONE}.${there}${rand}.tmp`,
        containerInit: `doc.json.1.${there}${rand}.tmp`,
      };
      for (const name of Object.values(files)) await writeTextAtomic(path.join(dir, name), '{"secret":');
      const warned: string[] = [];
      expect(await removeCopiesOfGoneWriters(dir, undefined, (line) => warned.push(line))).toBe(2);
      expect((await readdir(dir)).sort()).toEqual([files.container, files.containerInit, files.mine].sort());
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatch(
        /^webhook-gateway: kept 2 cut write\(s\) of a process on another host or in another pid namespace/,
      );
      expect(warned[0]).toContain(path.join(dir, files.container));
      expect(warned[0]).toContain(path.join(dir, files.containerInit));
      // Named once per process, not at every sweep.
      expect(await removeCopiesOfGoneWriters(dir, undefined, (line) => warned.push(line))).toBe(0);
      expect(warned).toHaveLength(1);
    },
  );

  it('keeps a copy of another host tag whatever its pid says, and names it (without unshare too)', async () => {
    const other = anotherHost();
    const gone = `doc.json.${GONE}.${other}0a1b2c3d4e5f.tmp`;
    const goneHere = `doc.json.${GONE}.${writerHost()}0a1b2c3d4e5f.tmp`;
    for (const name of [gone, goneHere]) await writeTextAtomic(path.join(dir, name), '{}');
    const warned: string[] = [];
    expect(await removeCopiesOfGoneWriters(dir, ['doc.json'], (line) => warned.push(line))).toBe(1);
    expect(await readdir(dir)).toEqual([gone]);
    expect(warned).toEqual([expect.stringContaining(`kept 1 cut write(s) of a process on another host`)]);
    expect(warned[0]).toContain(path.join(dir, gone));
  });

  it('removes a copy of another host tag once a day old (its writer gone long since), without naming it', async () => {
    const other = anotherHost();
    const old = `doc.json.${process.pid}.${other}0a1b2c3d4e5f.tmp`; // this container before its restart: pid 1 again
    const fresh = `doc.json.${process.pid}.${other}0f0e0d0c0b0a.tmp`;
    for (const name of [old, fresh]) await writeTextAtomic(path.join(dir, name), '{}');
    const dayAgo = new Date(Date.now() - 86_400_001);
    await utimes(path.join(dir, old), dayAgo, dayAgo);
    const warned: string[] = [];
    // Before: kept for good wherever the retention sweep does not look (DELIVERY_SIGNING_SECRETS_FILE's folder).
    expect(await removeCopiesOfGoneWriters(dir, ['doc.json'], (line) => warned.push(line))).toBe(1);
    expect(await readdir(dir)).toEqual([fresh]);
    expect(warned).toEqual([expect.stringContaining(path.join(dir, fresh))]);
    expect(warned[0]).not.toContain(old);
  });

  it('names the copy it writes aside with its pid and its host tag', async () => {
    let sawAside: (name: string) => void = () => {};
    const aside = new Promise<string>((resolve) => {
      sawAside = resolve;
    });
    const watcher = watch(dir, (_event, name) => {
      if (name?.endsWith('.tmp')) sawAside(name);
    });
    try {
      await writeTextAtomic(path.join(dir, 'doc.json'), '{}');
      expect(await aside).toMatch(new RegExp(`^doc\\.json\\.${process.pid}\\.${writerHost()}[0-9a-f]{12}\\.tmp$`));
    } finally {
      watcher.close();
    }
  });
});

describe('stringifyRedacted (the journal lines, the execution history)', () => {
  it('redacts every webhook-signature field at any depth, and is JSON.stringify otherwise', () => {
    const signed = {
      accept: { headers: { 'webhook-signature': 'v1,abc=', 'webhook-id': 'm-1' } },
      list: [{ 'webhook-signature': 'v1,def=' }],
    };
    expect(JSON.parse(stringifyRedacted(signed))).toEqual({
      accept: { headers: { 'webhook-signature': '[redacted]', 'webhook-id': 'm-1' } },
      list: [{ 'webhook-signature': '[redacted]' }],
    });
    // The name inside a string is no field: kept as it is, as JSON.stringify writes it.
    const quoted = { note: 'a "webhook-signature": header', n: 1, nested: { ok: true } };
    expect(stringifyRedacted(quoted)).toBe(JSON.stringify(quoted));
    expect(stringifyRedacted(undefined)).toBeUndefined();
  });
});
