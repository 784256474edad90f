import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { ExecutionJournal } from '../../../local/engine/journal.ts';

/** A disk that fills up: each write then puts down its first `diskFull.bytes` bytes at most, and fails (ENOSPC). */
const diskFull = { on: false, bytes: 0 };
/** The journal's folder no longer the gateway's to change (its permissions, a read-only remount): unlink refused. */
const unlinkRefused = { on: false };
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const unlinkSync = ((file: string) => {
    if (unlinkRefused.on)
      throw Object.assign(new Error(`EACCES: permission denied, unlink '${file}'`), { code: 'EACCES' });
    return fs.unlinkSync(file);
  }) as typeof fs.unlinkSync;
  const writeSync = ((fd: number, buffer: Buffer, offset: number, length?: number, position?: number) => {
    // Bytes written over bytes the file has already (a write at a position inside it) take no new space.
    if (typeof position === 'number' && position + (length ?? 0) <= fs.fstatSync(fd).size)
      return fs.writeSync(fd, buffer, offset, length, position);
    if (!diskFull.on) return fs.writeSync(fd, buffer, offset);
    if (diskFull.bytes > 0) fs.writeSync(fd, buffer, offset, Math.min(diskFull.bytes, buffer.length - offset));
    diskFull.bytes = 0;
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  }) as typeof fs.writeSync;
  return { ...fs, writeSync, unlinkSync, default: { ...fs, writeSync, unlinkSync } };
});

/**
 * The crash journal of the local gateway (local/engine/journal.ts; docs/configuration.md: `journal/`, the
 * conversations in flight, empty at rest): what it keeps while executions run, and that nothing — no request body —
 * is left once they have all ended.
 */
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'journal-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const input = (n: number) => ({ body: JSON.stringify({ query: `question ${n}`, source_system: 'crm' }) });

describe('the execution journal', () => {
  it('keeps nothing at rest: once nothing has run for 5 s the segment goes, and the next execution begins a new one', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const journal = await ExecutionJournal.open(dir);
      const first = journal.begin('conv-1', input(1));
      first.enter('Validate', undefined);
      first.end();
      vi.advanceTimersByTime(4_000);
      // An execution within the 5 s: the same segment, and the wait starts again when it ends.
      const second = journal.begin('conv-2', input(2));
      second.end();
      vi.advanceTimersByTime(4_000);
      expect(await readdir(dir)).toHaveLength(1);
      vi.advanceTimersByTime(1_000);
      expect(await readdir(dir)).toEqual([]);
      const third = journal.begin('conv-3', input(3));
      const [file] = await readdir(dir);
      expect(await readFile(path.join(dir, file!), 'utf8')).not.toContain('question 1');
      // Running for longer than that keeps it.
      vi.advanceTimersByTime(60_000);
      expect(await readdir(dir)).toHaveLength(1);
      third.end();
      vi.advanceTimersByTime(5_000);
      expect(await readdir(dir)).toEqual([]);
      journal.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a segment it cannot remove at rest (deleted by hand, or its folder refused) does not stop the gateway', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const journal = await ExecutionJournal.open(dir);
      journal.begin('conv-1', input(1)).end();
      // `rm .data/journal/*` while the gateway runs: before, the rest timer's unlink threw ENOENT uncaught, and
      // the gateway process died, every conversation in flight with it.
      for (const name of await readdir(dir)) await rm(path.join(dir, name));
      expect(() => vi.advanceTimersByTime(5_000)).not.toThrow();
      expect(printed).not.toHaveBeenCalled();
      // The folder no longer the gateway's to change: the segment stays, said once, and holds nothing to recover.
      journal.begin('conv-2', input(2)).end();
      unlinkRefused.on = true;
      expect(() => vi.advanceTimersByTime(5_000)).not.toThrow();
      unlinkRefused.on = false;
      expect(printed).toHaveBeenCalledTimes(1);
      expect(String(printed.mock.calls[0]![0])).toContain('EACCES: permission denied');
      journal.close();
      const next = await ExecutionJournal.open(dir);
      expect(next.leftoverFiles).toHaveLength(1);
      expect((await next.interrupted()).size).toBe(0);
      await next.forgetLeftovers();
      expect(await readdir(dir)).toEqual([]);
    } finally {
      unlinkRefused.on = false;
      printed.mockRestore();
      vi.useRealTimers();
    }
  });

  it('its folder removed while the gateway runs (at rest it holds nothing) is made again by the next execution', async () => {
    const journal = await ExecutionJournal.open(dir);
    journal.begin('conv-1', input(1)).end();
    journal.close();
    const next = await ExecutionJournal.open(dir);
    await rm(dir, { recursive: true });
    // Before: ENOENT at every begin, and each request answered 500 until the gateway was restarted.
    const run = next.begin('conv-2', input(2));
    const [file] = await readdir(dir);
    expect(await readFile(path.join(dir, file!), 'utf8')).toContain('"conv-2"');
    run.end();
    next.close();
    expect(await readdir(dir)).toEqual([]);
  });

  it("keeps no inbound signature: neither in the input it begins with nor in a state's input or output", async () => {
    const signed = {
      ...input(1),
      headers: {
        'webhook-id': 'msg_1',
        'webhook-timestamp': '1',
        'webhook-signature': 'v1,c2lnbmF0dXJlLW9uLXRoZS13aXJl',
      },
    };
    const journal = await ExecutionJournal.open(dir);
    const run = journal.begin('conv-signed', signed);
    // The accept workflow's Validate gets the request as `{accept: <input>}`, its StartConversation the input again.
    run.enter('Validate', { accept: signed });
    await run.exit('Validate', { accepted: signed });
    run.enter('StartConversation', { Input: signed });
    run.fail('StartConversation', new Error('x'));
    const [file] = await readdir(dir);
    const text = await readFile(path.join(dir, file!), 'utf8');
    expect(text).toContain('question 1');
    expect(text).not.toContain('c2lnbmF0dXJlLW9uLXRoZS13aXJl');
    expect(text.match(/"webhook-signature":"\[redacted\]"/g)).toHaveLength(4);
    run.end();
    journal.close();
  });

  it('keeps a segment while any execution written to it runs; a crash then leaves exactly the unfinished ones', async () => {
    const journal = await ExecutionJournal.open(dir);
    const a = journal.begin('conv-a', input(1));
    const b = journal.begin('conv-b', input(2));
    a.end();
    expect(await readdir(dir)).toHaveLength(1);
    // The process dies here: the next start finds conv-b unfinished, conv-a not.
    const next = await ExecutionJournal.open(dir);
    expect([...(await next.interrupted()).keys()]).toEqual(['conv-b']);
    b.end();
    journal.close();
  });

  it('lines damaged between good ones (not JSON, NULs, another shape) are skipped and said in one line at the start; a cut last line is not', async () => {
    const journal = await ExecutionJournal.open(dir);
    const a = journal.begin('conv-a', input(1));
    a.enter('InvokeManagerAgent', undefined);
    const b = journal.begin('conv-b', input(2));
    b.enter('Validate', undefined);
    await a.exit('InvokeManagerAgent', { Payload: { answer: 'yes' } });
    // The process dies; then the segment is damaged between its lines (a hand edit, a disk fault), and its last line cut.
    const [name] = await readdir(dir);
    const file = path.join(dir, name!);
    const lines = (await readFile(file, 'utf8')).split('\n');
    const good = lines.filter((l) => l.trim() !== '');
    const damagedText = [
      lines[0], // the reserve's spaces
      good[0],
      '{"e":"conv-a","t":1,"k":"in"', // cut, its execution noted refused nowhere
      good[1],
      '\u0000'.repeat(40),
      good[2],
      '{"x":1}',
      good[3],
      good[4],
      '{"e":"conv-b","t":2,"k":"out","s":"Vali', // the last line, cut by the crash
    ].join('\n');
    await writeFile(file, damagedText);
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    onTestFinished(() => printed.mockRestore());
    const interrupted = await (await ExecutionJournal.open(dir)).interrupted();
    // Recovery comes out of the good lines as it would have without the damage.
    expect(interrupted.get('conv-a')!.map((e) => [e.k, e.s ?? ''])).toEqual([
      ['begin', ''],
      ['in', 'InvokeManagerAgent'],
      ['out', 'InvokeManagerAgent'],
    ]);
    expect(interrupted.get('conv-b')!.map((e) => [e.k, e.s ?? ''])).toEqual([
      ['begin', ''],
      ['in', 'Validate'],
    ]);
    // Before: nothing said. One line, naming the segment and how many lines were skipped (not the cut last one).
    expect(printed.mock.calls.map((c) => String(c[0]))).toEqual([
      expect.stringContaining(`webhook-gateway: the journal segment ${file} has 3 damaged line(s) between its others`),
    ]);
    a.end();
    b.end();
    journal.close();
  });

  it('a run started again under the same name (recovery.ts) is read from its last begin; the run it replaced ends nothing', async () => {
    // One millisecond for all of it, as a fast machine gives: the cut run's note must still not be read as the new run's.
    const clock = vi.spyOn(Date, 'now').mockReturnValue(Date.UTC(2026, 11, 3, 12));
    onTestFinished(() => clock.mockRestore());
    const journal = await ExecutionJournal.open(dir);
    const cut = journal.begin('conv-r', input(1));
    cut.enter('InvokeManagerAgent', undefined);
    diskFull.on = true;
    await expect(cut.exit('InvokeManagerAgent', { Payload: {} })).rejects.toThrow(/ENOSPC/);
    diskFull.on = false;
    // Started again once the folder takes writes (its begin journaled first), then the cut run handed over.
    const restart = {
      restart: 1,
      of: 3,
      earlier_started_at: new Date().toISOString(),
      earlier_cut_at: new Date().toISOString(),
      earlier_cut_by: 'the data folder',
    };
    const again = journal.begin('conv-r', input(1), restart);
    cut.handOver();
    const read = async () => (await (await ExecutionJournal.open(dir)).interrupted()).get('conv-r');
    // Killed now: the new run alone, without the cut run's lines or its refusal note (an `end` of the cut run, as
    // before, would have read as the new run's: a second cut lost it).
    expect((await read())!.map((e) => [e.k, e.s ?? '', e.r, e.c])).toEqual([['begin', '', 1, restart]]);
    again.enter('InvokeManagerAgent', undefined);
    expect((await read())!.map((e) => [e.k, e.s ?? ''])).toEqual([
      ['begin', ''],
      ['in', 'InvokeManagerAgent'],
    ]);
    again.end();
    expect(await read()).toBeUndefined();
    journal.close();
    expect(await readdir(dir)).toEqual([]);
  });

  it('a test hold (LOCAL_TEST_HOLDS) stands as a kill there would leave it: what a state timeout runs next is neither run nor journaled', async () => {
    const holds: string[] = [];
    const journal = await ExecutionJournal.open(dir, {
      holds: (point, execution) => holds.push(`${execution} ${point}`),
    });
    const run = journal.begin('conv-h', { body: JSON.stringify({ query: 'chaos [hold:before:Classify]' }) });
    const settled = (promise: Promise<void> | void) =>
      Promise.race([Promise.resolve(promise).then(() => 'went on'), new Promise((r) => setImmediate(() => r('held')))]);
    run.enter('InvokeManagerAgent', undefined);
    await run.exit('InvokeManagerAgent', { Payload: {} });
    expect(await settled(run.enter('Classify', undefined))).toBe('held');
    expect(holds).toEqual(['conv-h before:Classify']);
    // Classify's TimeoutSeconds (2 s) cut it and its Catch went on: before, Deliver ran and was journaled, and the
    // execution could end (the chaos test, on a loaded machine: completed/delivered, its caller answered 200).
    expect(await settled(run.enter('Deliver', undefined))).toBe('held');
    run.fail('Classify', Object.assign(new Error('timed out'), { name: 'States.Timeout' }));
    run.end();
    const entries = (await (await ExecutionJournal.open(dir)).interrupted()).get('conv-h');
    expect(entries!.map((e) => [e.k, e.s ?? ''])).toEqual([
      ['begin', ''],
      ['in', 'InvokeManagerAgent'],
      ['out', 'InvokeManagerAgent'],
      ['in', 'Classify'],
    ]);
    expect(holds).toHaveLength(1);
    journal.close();
  });

  it('names the segments in the order written, uniquely, however fast they follow each other', async () => {
    const journal = await ExecutionJournal.open(dir, { maxSegmentBytes: 1 });
    const runs = Array.from({ length: 50 }, (_, n) => journal.begin(`conv-${n}`, input(n)));
    const names = await readdir(dir);
    expect(names).toHaveLength(50); // every begin filled its segment: a new file each time, none appended to another
    const next = await ExecutionJournal.open(dir);
    expect([...(await next.interrupted()).keys()]).toEqual(runs.map((_, n) => `conv-${n}`));
    for (const run of runs) run.end();
    expect(await readdir(dir)).toHaveLength(1); // the current one, until the gateway rests or stops
    journal.close();
    expect(await readdir(dir)).toEqual([]);
  });

  it('a step a full disk refused is noted once the folder takes writes again: the next start knows the storage cut it', async () => {
    const journal = await ExecutionJournal.open(dir);
    const run = journal.begin('conv-cut', input(1));
    run.enter('Deliver', undefined);
    diskFull.on = true;
    await expect(run.exit('Deliver', { delivered: true })).rejects.toThrow(/ENOSPC/);
    diskFull.on = false;
    // Its history could not be saved either (the disk is full): it never ends. The next line written (another
    // conversation, once there is space) carries the note first.
    const other = journal.begin('conv-other', input(2));
    other.end();
    const next = await ExecutionJournal.open(dir);
    // Before: [begin, in], read at the next start as cut by a crash or a kill during Deliver.
    expect((await next.interrupted()).get('conv-cut')!.map((e) => [e.k, e.s ?? ''])).toEqual([
      ['begin', ''],
      ['in', 'Deliver'],
      ['refused', 'Deliver'],
    ]);
    expect((await next.interrupted()).get('conv-cut')!.at(-1)!.d).toEqual({
      code: 'ENOSPC',
      message: 'ENOSPC: no space left on device, write',
    });
    journal.close();
  });

  it('a step a full disk refused, then the gateway killed before the folder takes writes again: the next start still knows the storage cut it', async () => {
    const journal = await ExecutionJournal.open(dir);
    const run = journal.begin('conv-cut', input(1));
    run.enter('Deliver', undefined);
    diskFull.on = true;
    await expect(run.exit('Deliver', { delivered: true })).rejects.toThrow(/ENOSPC/);
    // Killed now (no other line, no close), the disk still full; the next start reads the journal.
    const next = await ExecutionJournal.open(dir);
    diskFull.on = false;
    const entries = (await next.interrupted()).get('conv-cut')!;
    // Before: [begin, in], read at the next start as cut by a crash or a kill during Deliver.
    expect(entries.map((e) => [e.k, e.s ?? ''])).toEqual([
      ['begin', ''],
      ['in', 'Deliver'],
      ['refused', 'Deliver'],
    ]);
    expect(entries.at(-1)!.d).toEqual({ code: 'ENOSPC', message: 'ENOSPC: no space left on device, write' });
  });

  it('a full disk: the write that failed is refused to its caller, the line it cut costs no other line, nothing lingers', async () => {
    const journal = await ExecutionJournal.open(dir);
    const before = journal.begin('conv-before', input(1));
    // The disk fills up as a conversation begins: part of its first line is written, then ENOSPC.
    Object.assign(diskFull, { on: true, bytes: 20 });
    expect(() => journal.begin('conv-refused', input(2))).toThrow(/ENOSPC/);
    // A step of a conversation already under way is refused too; its end is not (the conversation has ended).
    expect(() => before.enter('Validate', undefined)).toThrow(/ENOSPC/);
    before.end();
    diskFull.on = false;
    // Space again: the next conversation's lines are whole, and a crash now leaves exactly it to recover.
    const after = journal.begin('conv-after', input(3));
    after.enter('Validate', undefined);
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    onTestFinished(() => printed.mockRestore());
    const next = await ExecutionJournal.open(dir);
    const interrupted = await next.interrupted();
    // The line the full disk cut is no damage to tell of: its segment noted the refusal.
    expect(printed).not.toHaveBeenCalled();
    expect([...interrupted.keys()]).toEqual(['conv-before', 'conv-after']); // conv-before's end was refused
    expect(interrupted.get('conv-after')!.map((e) => e.k)).toEqual(['begin', 'in']);
    // Once it ends, nothing runs: the refused conversation holds no segment open, so the journal empties at rest.
    after.end();
    journal.close();
    expect(await readdir(dir)).toEqual([]);
  });
});
