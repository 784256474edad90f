import { mkdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { runMain } from '../../support/cli.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';
import { withTimeStill } from '../../support/time.ts';

/** Each look at the receiver's lock: its holder touches it, the clock moves on 500 ms (test/support/held-lock.ts). */
const looks = vi.hoisted(() => ({ n: 0, lock: '', touched: true }));
vi.mock('node:fs/promises', async (importOriginal) =>
  (await import('../../support/held-lock.ts')).withHeldLock(await importOriginal(), looks),
);

/**
 * A receiver's lock (`deliveries/endpoints/<type>.json.lock`) held by a writer in another container sharing the data
 * folder, who keeps it fresh: a change waits for it until it is 10 s stale and 1 s more (functions/shared/local-files.ts).
 * The console's Pause waited those 11 s (its live poll gives up after 10 s) and then answered 500 INTERNAL_ERROR with a
 * stack on the operator's console; `endpoints pause` said nothing while it waited, then `Error: …` and exit code 1.
 * Now the console's button waits 5 s at most and gets 503 STORAGE_UNAVAILABLE with Retry-After (docs/contract.md),
 * the command says why it waits and ends with the lock's one line and exit code 75 (try again). Nothing is changed.
 */
let world: TestWorld;
let lock: string;
const theirs = () => `4242@${anotherHost()}.0a0b0c0d`;

beforeAll(async () => {
  world = await startWorld();
  const folder = path.join(world.dataDir, 'deliveries', 'endpoints');
  await mkdir(folder, { recursive: true });
  lock = path.join(folder, 'general.json.lock');
});
afterAll(async () => {
  await world?.close();
});
afterEach(async () => {
  looks.lock = '';
  looks.touched = true;
  vi.restoreAllMocks();
  await rm(lock, { force: true });
});

async function plantLock(): Promise<void> {
  await writeFile(lock, theirs());
  const now = new Date();
  await utimes(lock, now, now);
  looks.n = 0;
  looks.lock = lock;
}

describe('a change of a receiver whose lock another container’s writer keeps', () => {
  it('the console’s Pause: 503 STORAGE_UNAVAILABLE with Retry-After after 5 s at most, its line, nothing changed', async () => {
    await plantLock();
    const errors: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((line: string) => {
      errors.push(line);
    });
    const res = await withTimeStill(() =>
      fetch(`${world.gateway.url}/local/endpoints/general/pause`, { method: 'POST' }),
    );
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('30');
    expect(await res.json()).toEqual({
      success: false,
      error: {
        code: 'STORAGE_UNAVAILABLE',
        message:
          'the local gateway cannot write its data folder (EBUSY: a file of it is locked by another process): send it again once it can',
      },
    });
    // Before: 23 looks (11.5 s of the clock), then 500 INTERNAL_ERROR.
    expect(looks.n).toBe(11);
    expect(errors).toEqual([
      `webhook-gateway: POST "/local/endpoints/general/pause" failed: the data folder ${world.dataDir} refused a write (${lock} is held by another process for more than 5000 ms: nothing was changed; try again); answered 503 STORAGE_UNAVAILABLE until it takes it again`,
    ]);
    expect(await readFile(lock, 'utf8')).toBe(theirs());
    const rows = (await (await fetch(`${world.gateway.url}/local/endpoints`)).json()) as {
      webhook_type: string;
      status: string;
    }[];
    expect(rows.find((r) => r.webhook_type === 'general')?.status).not.toBe('paused');
  });

  it('`endpoints pause`: says why it waits, then the lock’s line and exit code 75; nothing changed', async () => {
    await plantLock();
    const ran = await withTimeStill(() =>
      runMain(['endpoints', 'pause', 'general'], { LOCAL_DATA_DIR: world.dataDir }),
    );
    expect(ran.code, ran.stderr).toBe(75);
    expect(ran.stderr).toBe(
      [
        `webhook-gateway: ${lock} is held by pid 4242 of another pid namespace or host (a container sharing the folder): waiting up to 11 s for it (one left by a killed writer is taken over once 10 s old)`,
        `webhook-gateway: ${lock} is held by another process for more than 11500 ms: nothing was changed; try again`,
        '',
      ].join('\n'),
    );
    expect(await readFile(lock, 'utf8')).toBe(theirs());
  });
});

/**
 * A receiver's lock left by a killed writer of this pid namespace whose pid another process has now (pid 1 after a
 * restart): nobody touches it, but its pid runs. `endpoints pause` gave up after 5 s with exit code 75 and "try
 * again", and so again on each try until the lock was 10 s old. Now it waits until then, says why, and makes the change.
 */
describe('a change of a receiver whose lock names a live process that does not keep it', () => {
  it('`endpoints pause`: says why it waits, takes the lock over once 10 s old, and pauses', async () => {
    const stale = `${process.ppid}.0a0b0c0d`;
    await writeFile(lock, stale);
    const now = new Date();
    await utimes(lock, now, now);
    looks.n = 0;
    looks.lock = lock;
    looks.touched = false;
    try {
      const ran = await withTimeStill(() =>
        runMain(['endpoints', 'pause', 'general'], { LOCAL_DATA_DIR: world.dataDir }),
      );
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stderr).toMatch(
        new RegExp(
          `^webhook-gateway: ${lock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} names pid ${process.ppid}, which runs but does not keep the lock fresh as its holder would \\(its pid reused after a crash or a restart\\): waiting up to \\d+ s, until it is 10 s old and taken over\n`,
        ),
      );
      const rows = (await (await fetch(`${world.gateway.url}/local/endpoints`)).json()) as {
        webhook_type: string;
        status: string;
      }[];
      expect(rows.find((r) => r.webhook_type === 'general')?.status).toBe('paused');
    } finally {
      looks.lock = '';
      expect((await fetch(`${world.gateway.url}/local/endpoints/general/resume`, { method: 'POST' })).status).toBe(200);
    }
  });
});

/**
 * `endpoints set <type> --url … --secret …` writes the URL, then the secrets under the secrets file's lock. When
 * another container's writer keeps that lock, it said "the change was made (URL …), but its signing secrets were not
 * changed: … nothing was changed; try again" and ended with exit code 1, unlike every other busy lock (75).
 */
describe('a `set --url … --secret` whose secrets file lock another container’s writer keeps', () => {
  it('says what was made and what was not, and ends with exit code 75: the same command again makes the rest', async () => {
    const secretsLock = path.join(world.dataDir, 'delivery-signing-secrets.json.lock');
    const before = await readFile(path.join(world.dataDir, 'delivery-signing-secrets.json'), 'utf8');
    await writeFile(secretsLock, theirs());
    const now = new Date();
    await utimes(secretsLock, now, now);
    looks.n = 0;
    looks.lock = secretsLock;
    const url = 'https://crm.example.com/hooks/general';
    const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    try {
      const ran = await withTimeStill(() =>
        runMain(['endpoints', 'set', 'general', '--url', url, '--secret', secret], { LOCAL_DATA_DIR: world.dataDir }),
      );
      expect(ran.code, ran.stderr).toBe(75);
      expect(ran.stderr.split('\n').at(-2)).toBe(
        `webhook-gateway: general: the change was made (URL https://crm.example.com/…), but its signing secrets were not changed: ${secretsLock} is held by another process for more than 11500 ms; run the same command again to change them`,
      );
      expect(await readFile(path.join(world.dataDir, 'delivery-signing-secrets.json'), 'utf8')).toBe(before);
      const rows = (await (await fetch(`${world.gateway.url}/local/endpoints`)).json()) as {
        webhook_type: string;
        url: string;
      }[];
      expect(rows.find((r) => r.webhook_type === 'general')?.url).toBe('https://crm.example.com/…');
    } finally {
      await rm(secretsLock, { force: true });
    }
  });
});
