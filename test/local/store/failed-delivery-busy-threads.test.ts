import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { JournalEntry } from '../../../local/engine/journal.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * A delivery owed (its receiver paused) while every one of libuv's file threads is taken, as a loaded machine keeps
 * them (each call waits for a thread, then for the process's turn): here four reads of FIFOs with no writer yet, taken
 * as Deliver ends. QueueFailedDelivery's 1 s (statemachine/conversation.asl.json) is a real timer. Before, the local
 * store's envelope write went through those threads, the state timed out and the conversation was answered and
 * exported `failed` (unqueued, `deliveries resend` printed), while the write landed once the threads were free, so the
 * schedule would deliver it too (an accessibility test's paused receiver answered `failed` at load 20).
 */
const THREADS = Number(process.env.UV_THREADPOOL_SIZE) || 4;
const fifos = mkdtempSync(path.join(tmpdir(), 'busy-threads-'));
let world: TestWorld;
let taking: Promise<FileHandle>[] = [];
let take = false;

beforeAll(async () => {
  for (let n = 0; n < THREADS; n++) expect(spawnSync('mkfifo', [path.join(fifos, `${n}`)]).status).toBe(0);
  const { handler: deliver } = await import('../../../functions/deliver/handler.ts');
  world = await startWorld(
    {},
    {
      stageOverrides: {
        deliver: async (input) => {
          try {
            return await deliver(input as never);
          } finally {
            // Each open waits on its own thread until a writer comes (the test, once the queue's state has ended).
            if (take) taking = Array.from({ length: THREADS }, (_, n) => open(path.join(fifos, `${n}`), 'r'));
            take = false;
          }
        },
      },
    },
  );
});
afterAll(async () => {
  await world?.close();
  rmSync(fifos, { recursive: true, force: true });
});

/** The journal's lines, read without the file threads (readdirSync, readFileSync). */
function journal(): JournalEntry[] {
  const dir = path.join(world.dataDir, 'journal');
  return readdirSync(dir)
    .sort()
    .flatMap((name) => readFileSync(path.join(dir, name), 'utf8').split('\n'))
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as JournalEntry);
}

it('the envelope of a delivery owed is stored within QueueFailedDelivery’s second while the file threads are all busy', async () => {
  const paused = await fetch(`${world.gateway.url}/local/endpoints/deal_analysis/pause`, { method: 'POST' });
  expect(paused.status).toBe(200);
  // One first, with the threads free: every module of the path is loaded (a load would wait for a thread too).
  expect((await world.post(SEED_REQUEST)).body.tracking.delivery_status).toBe('queued');
  const before = journal().length;
  take = true;
  const answered = world.post(SEED_REQUEST);
  // The queue's state has ended (its 'out' line), or the workflow went on past it (Export entered: it timed out).
  await expect
    .poll(() =>
      journal()
        .slice(before)
        .some((e) => (e.s === 'QueueFailedDelivery' && e.k === 'out') || e.s === 'Export'),
    )
    .toBe(true);
  expect(taking).toHaveLength(THREADS);
  // The file threads let go: a writer for each FIFO.
  for (let n = 0; n < THREADS; n++) closeSync(openSync(path.join(fifos, `${n}`), 'w'));
  for (const handle of await Promise.all(taking)) await handle.close();

  const { body } = await answered;
  expect(body.tracking, JSON.stringify(body)).toMatchObject({ delivery_status: 'queued' });
  const id = body.conversation_id as string;
  expect((await world.gateway.failedDeliveries.get(id))?.conversation_id).toBe(id);
  const record = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
  expect(record.webhook_context.delivery_status).toBe('queued');
  expect(record.execution.errors.map((e: { stage: string }) => e.stage)).not.toContain('QueueFailedDelivery');
});
