import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LoggedAttempt } from '../../../functions/domain/attempt-log.ts';

/** How often an attempt file's bytes were read (open, fstat, read, close), the rest as it is. */
const reads = vi.hoisted(() => ({ count: 0 }));
vi.mock(import('../../../functions/shared/local-files.ts'), async (original) => {
  const actual = await original();
  return {
    ...actual,
    readDataText: async (...args: Parameters<typeof actual.readDataText>) => {
      reads.count++;
      return actual.readDataText(...args);
    },
  };
});
const { FileAttemptLog } = await import('../../../functions/shared/attempt-log.ts');

/**
 * Export lists the attempts Deliver appended a moment before in the same process: the local log answers from what it
 * appended while the file's stamp is unchanged (one stat instead of open, fstat, read and close: docs/performance.md),
 * and reads the file once anything else changed it.
 */
const entry = (id: string, attempt: number): LoggedAttempt => ({
  conversation_id: id,
  delivery_id: 'd-1',
  webhook_type: 'deal_analysis',
  attempt,
  at: `2026-11-29T12:00:0${attempt}.000Z`,
  duration_ms: 40,
  status_code: 500,
  outcome: 'retryable',
  error: 'HTTP 500',
  via: 'workflow',
  request: { url: 'https://crm.example/hook', headers: { 'webhook-id': 'd-1' } },
  response: { status: 500, headers: {}, body: 'database down', body_truncated: false },
});

let dir: string;
let n = 0;
let id: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'attempt-log-kept-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  reads.count = 0;
  id = `webhook_20261129_120000_testing_phase3valid_kept${String(++n).padStart(2, '0')}`;
});

describe('the local attempt log, read back by the process that appended', () => {
  it('answers from what it appended, each attempt in order, without reading the file', async () => {
    const log = new FileAttemptLog(dir);
    await log.append(entry(id, 1));
    await log.append(entry(id, 2));
    expect((await log.list(id)).map((e) => e.attempt)).toEqual([1, 2]);
    expect(reads.count).toBe(0);
  });

  it('parses each line it holds, and nothing for the empty text after the last newline', async () => {
    const log = new FileAttemptLog(dir);
    await log.append(entry(id, 1));
    await log.append(entry(id, 2));
    const parse = vi.spyOn(JSON, 'parse');
    try {
      expect((await log.list(id)).map((e) => e.attempt)).toEqual([1, 2]);
      // Before: JSON.parse('') too, its SyntaxError built (a stack captured) and caught, at every list.
      expect(parse.mock.calls.map(([text]) => text)).toEqual([
        JSON.stringify(entry(id, 1)),
        JSON.stringify(entry(id, 2)),
      ]);
    } finally {
      parse.mockRestore();
    }
  });

  it("reads the file once another process appended to it, or it was removed, or this one's append was not alone", async () => {
    const log = new FileAttemptLog(dir);
    await log.append(entry(id, 1));
    // Another process's attempt (a resend), after this one's.
    await writeFile(log.file(id), `${JSON.stringify(entry(id, 2))}\n`, { flag: 'a' });
    expect((await log.list(id)).map((e) => e.attempt)).toEqual([1, 2]);
    expect(reads.count).toBe(1);
    // This process's next append follows one it did not make: not kept, read.
    await log.append(entry(id, 3));
    expect((await log.list(id)).map((e) => e.attempt)).toEqual([1, 2, 3]);
    expect(reads.count).toBe(2);
    // Removed (the retention sweep): none.
    await unlink(log.file(id));
    expect(await log.list(id)).toEqual([]);
  });

  it('a file that held lines before this process appended is read, not taken for its one line', async () => {
    const log = new FileAttemptLog(dir);
    await mkdir(log.dir, { recursive: true });
    await writeFile(log.file(id), `${JSON.stringify(entry(id, 1))}\n`, { mode: 0o600 });
    await log.append(entry(id, 2));
    expect((await log.list(id)).map((e) => e.attempt)).toEqual([1, 2]);
    expect(reads.count).toBe(1);
  });
});
