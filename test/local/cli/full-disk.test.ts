import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NEW_USER_START_ENV, runCli } from '../../support/cli.ts';

/**
 * A command, or a start, whose data folder refuses writes (a full disk; docs/operations.md, "After a crash"). The
 * full disk is made in the command's own process by a module loaded first: each file write under the folder fails as
 * the system fails it (ENOSPC, naming no file).
 */
let root: string;
let fullDisk: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-full-disk-'));
  fullDisk = path.join(root, 'full-disk.mjs');
  await writeFile(
    fullDisk,
    `import fs from 'node:fs';
const writeFile = fs.writeFile;
fs.writeFile = function (file, ...rest) {
  if (!String(file).startsWith(process.env.FULL_DISK_UNDER)) return writeFile.call(this, file, ...rest);
  const done = rest.pop();
  process.nextTick(done, process.env.FULL_DISK_CODE === 'EMFILE'
    ? Object.assign(new Error("EMFILE: too many open files, open '" + file + "'"), { code: 'EMFILE', errno: -24, syscall: 'open', path: String(file) })
    : Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' }));
};
`,
  );
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const onFullDisk = (dataDir: string) => ({
  ...NEW_USER_START_ENV,
  LOCAL_DATA_DIR: dataDir,
  FULL_DISK_UNDER: dataDir,
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(fullDisk).href}`.trim(),
});

describe('a data folder on a full disk', () => {
  it('endpoints pause says the data folder refused the write and what to do, not a bare ENOSPC', async () => {
    const dataDir = path.join(root, 'data-pause');
    const result = await runCli(['endpoints', 'pause', 'general'], onFullDisk(dataDir));
    expect(result.code).toBe(1);
    // Before: 'webhook-gateway: Error: ENOSPC: no space left on device, write', naming no folder.
    expect(result.stderr).toBe(
      `webhook-gateway: the data folder ${dataDir} refused a write (ENOSPC: no space left on device, write): free some space on its disk, then run the command again\n`,
    );
  });

  it('out of file descriptors (EMFILE): endpoints pause says the open was refused and what to do, not to fix permissions', async () => {
    const dataDir = path.join(root, 'data-fds');
    const result = await runCli(['endpoints', 'pause', 'general'], {
      ...onFullDisk(dataDir),
      FULL_DISK_CODE: 'EMFILE',
    });
    expect(result.code).toBe(1);
    // Before: 'webhook-gateway: Error: EMFILE: too many open files, open …', nothing said of what to do.
    expect(result.stderr).toMatch(
      new RegExp(
        `^webhook-gateway: the data folder ${dataDir} refused an open \\(EMFILE: too many open files, open '${dataDir}/[^']+'\\): the process is out of file descriptors: raise the limit \\(ulimit -n\\) or close what holds them, then run the command again\n$`,
      ),
    );
  });

  it('a start says so too', async () => {
    const dataDir = path.join(root, 'data-start');
    const result = await runCli(['start'], onFullDisk(dataDir));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `webhook-gateway: the data folder ${dataDir} refused a write (ENOSPC: no space left on device, write): free some space on its disk, then run the command again`,
    );
  });
});
