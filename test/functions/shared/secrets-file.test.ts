import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { deliverySecrets } from '../../../functions/shared/secrets.ts';

/**
 * The local delivery secrets file (DELIVERY_SIGNING_SECRETS_FILE): read again whenever it changed, and only then. File
 * times are coarse, so an in-place edit to the same size within one tick keeps the file's stamp: a file changed within
 * the second before it was read is read again until it has settled. The clock is the test's (only Date is faked); the
 * file's times are set with utimes, so nothing depends on the file system's tick.
 */
/** The file's opens for a read (functions/shared/local-files.ts, readDataFile): one per read. */
const opened: string[] = [];
vi.mock('node:fs', async (original) => {
  const real = await original<typeof import('node:fs')>();
  const open = ((file: string, ...rest: unknown[]) => {
    opened.push(String(file));
    return (real.open as (...args: unknown[]) => void)(file, ...rest);
  }) as typeof real.open;
  return { ...real, open, default: { ...real, open } };
});
const reads = () => opened.filter((file) => file === secretsFile).length;

const A = 'whsec_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const B = 'whsec_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
let dir: string;
let secretsFile: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(tmpdir(), 'webhook-gateway-secrets-file-'));
  secretsFile = path.join(dir, 'delivery-secrets.json');
  process.env.DELIVERY_SIGNING_SECRETS_FILE = secretsFile;
});
afterAll(async () => {
  delete process.env.DELIVERY_SIGNING_SECRETS_FILE;
  await fs.rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Write the file in place (same inode) with its modification time set to `at`. */
async function writeInPlace(secret: string, at: Date): Promise<void> {
  const handle = await fs.open(secretsFile, 'w');
  try {
    await handle.writeFile(JSON.stringify({ general: secret }));
    await handle.utimes(at, at);
  } finally {
    await handle.close();
  }
}

describe('DELIVERY_SIGNING_SECRETS_FILE', () => {
  it('an in-place edit to the same size within the same tick is seen at the next delivery', async () => {
    const now = new Date();
    vi.useFakeTimers({ toFake: ['Date'], now });
    await writeInPlace(A, now);
    expect(await deliverySecrets('general')).toEqual([A]);
    // The same size, the same modification time, the same inode: only the content tells them apart.
    await writeInPlace(B, now);
    expect(await deliverySecrets('general')).toEqual([B]);
  });

  it('once the file has settled (unchanged for a second before a read), a delivery costs a stat, not a read', async () => {
    const changed = new Date();
    vi.useFakeTimers({ toFake: ['Date'], now: changed });
    await writeInPlace(A, changed);
    expect(await deliverySecrets('general')).toEqual([A]);
    vi.setSystemTime(changed.getTime() + 5_000);
    const before = reads();
    expect(await deliverySecrets('general')).toEqual([A]); // read again: it had not settled at the last read
    expect(await deliverySecrets('general')).toEqual([A]);
    expect(await deliverySecrets('general')).toEqual([A]);
    expect(reads() - before).toBe(1);
  });

  it.each([
    ['a FIFO', () => void expect(spawnSync('mkfifo', [secretsFile]).status).toBe(0), 'a FIFO (a named pipe)'],
    ['a folder', () => fs.mkdir(secretsFile), 'a folder'],
  ])('%s at its path: one wording, naming the file, what it is and what to do', async (_, put, what) => {
    await fs.rm(secretsFile, { force: true });
    await put();
    try {
      // Before: a FIFO said "not a regular file", a folder "a folder, not a file".
      await expect(deliverySecrets('general')).rejects.toThrow(
        `the delivery secrets file ${secretsFile} cannot be used (it is ${what}, not a regular file; remove it): restore it`,
      );
    } finally {
      await fs.rm(secretsFile, { recursive: true, force: true });
    }
  });
});
