import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

/** The disk under the handlers' log fills up: the next write puts down `diskFull.bytes` bytes, then each fails. */
const diskFull = { on: false, bytes: 0 };
/** The sink's writes. */
const writes: string[] = [];
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const writeSync = ((fd: number, text: string) => {
    writes.push(text);
    if (!diskFull.on) return fs.writeSync(fd, text);
    if (diskFull.bytes > 0) fs.writeSync(fd, text.slice(0, diskFull.bytes));
    diskFull.bytes = 0; // the disk is now full to the last byte
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  }) as typeof fs.writeSync;
  return { ...fs, writeSync, default: { ...fs, writeSync } };
});
const { divertHandlerLogs } = await import('../../../local/server/log-sink.ts');

/**
 * `npm start` sends the handlers' JSON log lines to `<dataDir>/logs/handlers.jsonl` (local/server/log-sink.ts;
 * docs/operations.md, "The operator log").
 */
let dir: string;
const original = { stdout: process.stdout.write, stderr: process.stderr.write };
const said: string[] = [];
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'log-sink-'));
  said.length = 0;
  writes.length = 0;
  // What reaches the terminal's stderr (the sink writes through the stream it found).
  process.stderr.write = ((chunk: unknown) => {
    said.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
});
afterEach(async () => {
  process.stdout.write = original.stdout;
  process.stderr.write = original.stderr;
  diskFull.on = false;
  await rm(dir, { recursive: true, force: true });
});

const line = (n: number) => JSON.stringify({ level: 'INFO', message: `step ${n}` });
/** What the handlers' logger does with a line (console.log writes it to stdout). */
const log = (n: number) => process.stdout.write(`${line(n)}\n`);
/** The lines logged so far written: what the code that logged them does after its next await. */
const written = () => Promise.resolve();

describe("the handlers' log on a full disk", () => {
  it('drops its lines (said once on stderr) instead of failing the handler that logs; writes again once it can', async () => {
    const file = divertHandlerLogs(dir);
    log(1);
    await written();
    Object.assign(diskFull, { on: true, bytes: 12 });
    // Before: the ENOSPC of the log line was thrown into the handler (Deliver, after it had delivered).
    expect(() => log(2)).not.toThrow();
    await written();
    expect(() => log(3)).not.toThrow();
    await written();
    expect(said).toEqual([
      `webhook-gateway: the handlers' log ${file} cannot be written (ENOSPC: no space left on device, write): its lines are dropped until it can\n`,
    ]);
    diskFull.on = false;
    log(4);
    await written();
    // The line the full disk cut stands alone: every other line is whole.
    const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
    expect(lines).toEqual([line(1), line(2).slice(0, 12), line(4)]);
  });
});

describe("the handlers' log moved aside by the retention sweep", () => {
  it('goes on into a fresh handlers.jsonl, not into the moved file', async () => {
    let now = Date.parse('2026-11-29T12:00:00Z');
    const file = divertHandlerLogs(dir, () => now);
    log(1);
    await written();
    // The hourly sweep, the first line a day old: handlers.jsonl becomes handlers.<day>.<ms>.jsonl.
    const moved = path.join(path.dirname(file), 'handlers.2026-11-28.1795953600000.jsonl');
    await rename(file, moved);
    now += 1_000;
    log(2);
    log(3);
    await written();
    // Before: every later line went on into the moved file (for good: it was never rotated again, and
    // .data/logs/handlers.jsonl, which the runbook reads, stayed gone).
    expect(await readFile(moved, 'utf8')).toBe(`${line(1)}\n`);
    expect(await readFile(file, 'utf8')).toBe(`${line(2)}\n${line(3)}\n`);
    expect((await readdir(path.dirname(file))).sort()).toEqual([path.basename(moved), 'handlers.jsonl']);
  });
});

describe("the handlers' log lines of one run of a state's code", () => {
  it('go in one write, in the file before anything that run queued runs (the next state)', async () => {
    const file = divertHandlerLogs(dir);
    let seen = '';
    // A state logs three lines, then ends: its caller's continuation (the engine's next state) runs after.
    const state = async () => {
      log(1);
      log(2);
      log(3);
    };
    await state().then(() => {
      seen = readFileSync(file, 'utf8');
    });
    expect(seen).toBe(`${line(1)}\n${line(2)}\n${line(3)}\n`);
    // Before: three writes, one per line.
    expect(writes).toEqual([`${line(1)}\n${line(2)}\n${line(3)}\n`]);
    log(4);
    await written();
    expect(writes).toHaveLength(2);
  });

  it('are written at the exit of the process, should it exit in that run', () => {
    const others = process.listeners('exit');
    const file = divertHandlerLogs(dir);
    log(1);
    // What process.exit() runs (the sink's own listener only: the test runner's are left alone).
    for (const listener of process.listeners('exit')) if (!others.includes(listener)) listener.call(process, 0);
    expect(readFileSync(file, 'utf8')).toBe(`${line(1)}\n`);
  });
});
