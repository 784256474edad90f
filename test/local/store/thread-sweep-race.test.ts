import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileThreadStore } from '../../../functions/shared/thread-store.ts';
import { sweepLocalHistory } from '../../../local/store/retention.ts';

/**
 * The file system as the thread store and the sweep see it, with a hook where the sweep has looked at a thread's
 * folder (found it unused) and not yet acted: there a new turn of that thread is claimed.
 */
const hooks = vi.hoisted(() => ({
  afterStat: null as null | ((file: string) => Promise<void>),
  made: [] as string[],
}));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const stat = (async (file: string, ...rest: unknown[]) => {
    const s = await (fs.stat as (...args: unknown[]) => Promise<unknown>)(file, ...rest);
    const hook = hooks.afterStat;
    if (hook) await hook(String(file));
    return s;
  }) as typeof fs.stat;
  const mkdir = (async (dir: string, ...rest: unknown[]) => {
    hooks.made.push(String(dir));
    return (fs.mkdir as (...args: unknown[]) => Promise<unknown>)(dir, ...rest);
  }) as typeof fs.mkdir;
  return { ...fs, default: { ...fs, stat, mkdir }, stat, mkdir };
});

const NOW = new Date('2026-12-01T10:00:00Z');
let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'thread-sweep-'));
});
afterEach(async () => {
  hooks.afterStat = null;
  await rm(dataDir, { recursive: true, force: true });
});

describe('the thread sweep and a turn claimed at the same moment', () => {
  it('never removes a turn claimed while it looks at the thread: the claim is there after the sweep', async () => {
    // Before: the sweep found the folder unused, the claim took turn 1 again (and made the folder new), then the sweep
    // removed the folder with the new claim in it: the turn's claim was lost.
    const threadDir = path.join(dataDir, 'threads');
    const store = new FileThreadStore(threadDir, 30);
    const folder = path.join(threadDir, 'crm', 'q3-review');
    const longAgo = new Date(NOW.getTime() - 40 * 86_400_000);
    expect(await store.claimTurn('crm', 'q3-review', 'req-1', longAgo)).toBe(1);
    await writeFile(path.join(folder, '1.json'), '{}');
    await utimes(path.join(folder, '1.json'), longAgo, longAgo);
    await utimes(folder, longAgo, longAgo);

    let claim: Promise<number> | null = null;
    hooks.afterStat = async (file) => {
      if (file !== folder || claim) return;
      hooks.made = [];
      claim = store.claimTurn('crm', 'q3-review', 'req-2', NOW);
      await new Promise((resolve) => setImmediate(resolve));
      // The claim runs beside the sweep (it made its folder): let it end before the sweep goes on. Not begun: it
      // waits for the sweep.
      if (hooks.made.includes(folder)) await claim;
    };
    await sweepLocalHistory({ dataDir, idempotencyDir: null, threadDir, threadTtlDays: 30 }, 0, NOW);
    hooks.afterStat = null;
    expect(claim).not.toBeNull();
    const turn = await claim!;
    expect(await readFile(path.join(folder, `${turn}.claim`), 'utf8')).toBe('req-2');
  });
});
