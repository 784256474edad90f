import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { NEW_USER_START_ENV, runCli, startCli } from '../../support/cli.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/** Every file and folder under `dir` whose mode is not its owner's alone (files 0600, folders 0700). */
async function openToOthers(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const file = path.join(entry.parentPath, entry.name);
    const info = await lstat(file);
    const mode = info.mode & 0o777;
    if (mode !== (info.isDirectory() ? 0o700 : 0o600)) found.push(`${path.relative(dir, file)} ${mode.toString(8)}`);
  }
  return found.sort();
}

let root: string | undefined;
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

it('leaves every file of the data folder 0600 and every folder 0700 after a run, under umask 000 (docs/security.md)', async () => {
  root = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-modes-'));
  const dataDir = path.join(root, '.data');
  const env = { ...NEW_USER_START_ENV, LOCAL_DATA_DIR: dataDir };
  // The gateway and the commands are children of this process: they inherit its umask.
  const umask = process.umask(0);
  let gateway: Awaited<ReturnType<typeof startCli>> | undefined;
  try {
    gateway = await startCli(env);
    const post = (body: unknown, key: string) =>
      fetch(`${gateway!.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(body),
      });
    expect((await post({ ...SEED_REQUEST, thread_id: 'deals-1' }, 'first')).status).toBe(200);
    expect((await post({ ...SEED_REQUEST, thread_id: 'deals-1' }, 'second')).status).toBe(200);
    // A paused receiver: the delivery is queued (the failed-delivery store and its index), then sent by a redrive.
    expect((await runCli(['endpoints', 'pause', 'deal_analysis'], env)).code).toBe(0);
    expect((await post(SEED_REQUEST, 'third')).status).toBe(200);
    expect((await runCli(['endpoints', 'resume', 'deal_analysis'], env)).code).toBe(0);
    expect((await runCli(['deliveries', 'redrive', '--all'], env)).code).toBe(0);
    // The summary index (a listing by key fills it), the analytics cache (a search builds it), the console's pages.
    expect((await runCli(['conversations', 'list', '--key', 'first'], env)).code).toBe(0);
    expect((await runCli(['conversations', 'search', 'deals'], env)).code).toBe(0);
    for (const page of ['/console', '/console/threads/testing_system/deals-1']) {
      expect((await fetch(`${gateway.url}${page}`)).status).toBe(200);
    }
  } finally {
    if (gateway && gateway.child.exitCode === null) {
      const exited = new Promise((r) => gateway!.child.once('exit', r));
      gateway.child.kill('SIGINT');
      await exited;
    }
    process.umask(umask);
  }
  expect(await openToOthers(root)).toEqual([]);
}, 120_000); // a start, 6 commands via tsx: 24-29 s at load 15, over 60 s at 20-26; the limit only catches a hang
