import { chmod, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dataDirModeWarning, ownerOnlyDataDir } from '../../../local/store/data-dir-mode.ts';
import { NEW_USER_START_ENV, runMain, startCli } from '../../support/cli.ts';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'data-dir-mode-'));
});
afterEach(async () => {
  await chmod(root, 0o700);
  await rm(root, { recursive: true, force: true });
});

const modeOf = async (file: string) => (await stat(file)).mode & 0o7777;
const SECRET = 'whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=';

describe("the data folder is its owner's (docs/security.md, Local state is its owner's)", () => {
  it('a missing folder is made 0700', async () => {
    const dir = path.join(root, 'a', '.data');
    expect(await ownerOnlyDataDir(dir)).toEqual({ state: 'private' });
    expect(await modeOf(dir)).toBe(0o700);
  });

  it('one found readable by others (0755: an older version, mkdir with the usual umask) is put back to 0700, and says so', async () => {
    const dir = path.join(root, '.data');
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    const result = await ownerOnlyDataDir(dir);
    expect(result).toEqual({ state: 'fixed', mode: '0755' });
    expect(await modeOf(dir)).toBe(0o700);
    expect(dataDirModeWarning(dir, result)).toBe(
      `webhook-gateway: ${dir} was readable by others (mode 0755); it is now 0700 (owner only)`,
    );
    expect(await ownerOnlyDataDir(dir)).toEqual({ state: 'private' });
  });

  it('a shared folder (sticky, like /tmp) is left as it is, with a warning', async () => {
    await chmod(root, 0o1777);
    const result = await ownerOnlyDataDir(root);
    expect(result).toEqual({ state: 'shared', mode: '1777' });
    expect(await modeOf(root)).toBe(0o1777);
    expect(dataDirModeWarning(root, result)).toMatch(/is open to other users \(mode 1777\).*LOCAL_DATA_DIR/);
  });

  it('`endpoints set <type> --secret` run before the first start makes the folder 0700, not 0755', async () => {
    const dir = path.join(root, '.data');
    const run = await runMain(['endpoints', 'set', 'general', '--secret', SECRET], { LOCAL_DATA_DIR: dir });
    expect(run.code, run.stderr).toBe(0);
    expect(await modeOf(dir)).toBe(0o700);
    expect(await modeOf(path.join(dir, 'delivery-signing-secrets.json'))).toBe(0o600);
  });

  it('`webhook-gateway start` on a folder readable by others closes it and says so', async () => {
    const dir = path.join(root, '.data');
    await mkdir(dir);
    await chmod(dir, 0o755);
    const gateway = await startCli({ ...NEW_USER_START_ENV, LOCAL_DATA_DIR: dir });
    try {
      expect(await modeOf(dir)).toBe(0o700);
      // Said on stderr before the banner (stdout): the two pipes are read in no set order, so it may come after.
      await expect
        .poll(() => gateway.output())
        .toContain(`${dir} was readable by others (mode 0755); it is now 0700 (owner only)`);
    } finally {
      const exited = new Promise((r) => gateway.child.once('exit', r));
      gateway.child.kill('SIGINT');
      await exited;
    }
  });
});
