import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';

/**
 * What a gateway answers once another gateway took its data folder over (it stood still for more than 30 s, a paused
 * container, and a start in another container took the folder: docs/operations.md, "Processes in other containers").
 * The command stops at once (test/local/cli/data-dir-lost.test.ts); here, in the process, what a request gets in the
 * moment before it does. Before: POST /webhook got 503 STOPPING "send it again once it is back" (it is not coming back),
 * and the console's pages and buttons went on reading and writing the other gateway's folder (a Pause changed its
 * receiver). Now every request is refused, saying why, and nothing is written.
 */
let world: TestWorld;
let intervalsBefore = 0;
const errors: string[] = [];
const theirs = `1@${anotherHost()} 4242`;
const pidFile = () => path.join(world.dataDir, 'gateway.pid');

beforeAll(async () => {
  // gateway.pid is looked at every 10 s (an interval timer): moved on by hand here.
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  // The redelivery schedule on (every second): its timer, the hourly sweep's and gateway.pid's heartbeat.
  world = await startWorld({ REDELIVERY_POLL_MS: '1000' });
  intervalsBefore = vi.getTimerCount();
  vi.spyOn(console, 'error').mockImplementation((line: string) => {
    errors.push(line);
  });
  // While it stood still, a start in another container took the folder over.
  await writeFile(pidFile(), theirs);
  vi.advanceTimersByTime(10_000);
  await world.gateway.dataDirLost;
});
afterAll(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await world?.close();
});

describe('a gateway whose data folder another gateway took over', () => {
  it('says so once, naming the file and the other gateway', () => {
    expect(errors).toEqual([
      `webhook-gateway: ${pidFile()} now names another gateway (1@${anotherHost()}): it took ${world.dataDir} over while this one stood still for more than 30 s; stop this gateway`,
    ]);
  });

  it('POST /webhook: 503 STOPPING, saying why, with Retry-After; no conversation', async () => {
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toEqual({
      success: false,
      error: {
        code: 'STOPPING',
        message:
          'the gateway is stopping: another gateway took its data folder over; send it again once that one serves it',
      },
    });
    expect(world.agent.invocations).toHaveLength(0);
    expect(existsSync(path.join(world.dataDir, 'executions'))).toBe(false);
  });

  it('a console page: 503, its own page saying why, no Retry-After (this gateway is not coming back)', async () => {
    const res = await fetch(`${world.gateway.url}/console`);
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('retry-after')).toBeNull();
    const html = await res.text();
    expect(html).toContain(
      `This gateway no longer serves its data folder: ${pidFile()} now names another gateway (1@${anotherHost()}): it took ${world.dataDir} over while this one stood still for more than 30 s. It stops at once;`,
    );
  });

  it('a console button (Pause): 503 STOPPING, the receiver’s file not written', async () => {
    const res = await fetch(`${world.gateway.url}/local/endpoints/general/pause`, { method: 'POST' });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('STOPPING');
    expect(existsSync(path.join(world.dataDir, 'deliveries', 'endpoints', 'general.json'))).toBe(false);
  });

  it('stops what writes the folder by itself: the redelivery schedule and the sweep (their timers cleared)', async () => {
    expect(intervalsBefore).toBe(3);
    // Before: both went on (a redelivery run, a sweep into the other gateway's folder) until the process exited.
    await vi.waitFor(() => expect(vi.getTimerCount()).toBe(1), { interval: 1 }); // gateway.pid's own look, left
  });

  it('leaves the other gateway’s gateway.pid as it is; nothing more is said', async () => {
    expect(await readFile(pidFile(), 'utf8')).toBe(theirs);
    expect(errors).toHaveLength(1);
  });
});
