import { spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { readDataTextKept } from '../../../functions/shared/kept-files.ts';
import {
  appendLine,
  createExclusive,
  readDataFile,
  readDataFileSync,
  readJsonFile,
  removeStaleLock,
  withFileLock,
  writeFileAtomic,
} from '../../../functions/shared/local-files.ts';
import { writerHost } from '../../../functions/shared/writers.ts';
import { meetInProcesses } from '../../support/meeting.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';
import { withTimeStill } from '../../support/time.ts';

/** A disk that fills up: the next append puts down its first `diskFull.bytes` bytes, then fails (ENOSPC). */
const diskFull = { on: false, bytes: 0 };
/** The read calls made (fs.read, fs.readSync); `before`, when set, runs before each (a writer acting meanwhile). */
const readCalls: { n: number; before: (() => void) | null } = { n: 0, before: null };
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const appendFile = ((file: string, data: string, ...rest: unknown[]) => {
    const done = rest.pop() as (error: Error | null) => void;
    if (!diskFull.on) return (fs.appendFile as (...args: unknown[]) => void)(file, data, ...rest, done);
    diskFull.on = false;
    fs.appendFileSync(file, data.slice(0, diskFull.bytes));
    done(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
  }) as typeof fs.appendFile;
  const writeFile = ((file: string, data: string, ...rest: unknown[]) => {
    const done = rest.pop() as (error: Error | null) => void;
    if (!diskFull.on) return (fs.writeFile as (...args: unknown[]) => void)(file, data, ...rest, done);
    diskFull.on = false;
    fs.writeFileSync(file, data.slice(0, diskFull.bytes));
    done(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
  }) as typeof fs.writeFile;
  // Counted: the read calls a file's read takes (readDataFile's and readDataFileSync's).
  const read = Object.assign((...args: unknown[]) => {
    readCalls.n += 1;
    readCalls.before?.();
    return (fs.read as (...a: unknown[]) => void)(...args);
  }, fs.read); // with its promisify marks: promisify(fs.read) resolves { bytesRead, buffer }
  for (const mark of Object.getOwnPropertySymbols(fs.read))
    Object.defineProperty(read, mark, { value: (fs.read as unknown as Record<symbol, unknown>)[mark] });
  const readSync = ((...args: Parameters<typeof fs.readSync>) => {
    readCalls.n += 1;
    readCalls.before?.();
    return fs.readSync(...args);
  }) as typeof fs.readSync;
  const changed = { appendFile, writeFile, read, readSync };
  return { ...fs, ...changed, default: { ...fs, ...changed } };
});

/** Called before each hard link a lock is made with (createExclusive): the moment another process may act. */
const beforeLink: { hook: ((target: string) => Promise<void>) | null } = { hook: null };
vi.mock('node:fs/promises', async (importOriginal) => {
  const fsp = await importOriginal<typeof import('node:fs/promises')>();
  const link = async (existing: string, target: string) => {
    await beforeLink.hook?.(String(target));
    return fsp.link(existing, target);
  };
  return { ...fsp, link, default: { ...fsp, link } };
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'local-files-'));
});
afterEach(async () => {
  beforeLink.hook = null;
  await rm(dir, { recursive: true, force: true });
});

describe('readDataFile: a regular file of the data folder, capped; nothing else is read', () => {
  /** What each reader says of `file`: its bytes as text, or its error's name, code and message. */
  const outcomes = async (file: string, maxBytes?: number) => {
    const said = (error: unknown) => {
      const e = error as NodeJS.ErrnoException;
      return `${e.name} ${e.code ?? ''} ${e.message}`;
    };
    const read = await readDataFile(file, { maxBytes }).then((b) => b?.toString('utf8') ?? null, said);
    let sync: string | null;
    try {
      sync = readDataFileSync(file, { maxBytes })?.toString('utf8') ?? null;
    } catch (error) {
      sync = said(error);
    }
    return { read, sync };
  };

  it('reads a regular file whole, and none when there is none', async () => {
    await writeFile(path.join(dir, 'a.json'), '{"a":1}');
    expect(await outcomes(path.join(dir, 'a.json'))).toEqual({ read: '{"a":1}', sync: '{"a":1}' });
    expect(await outcomes(path.join(dir, 'missing.json'))).toEqual({ read: null, sync: null });
  });

  it('a file that did not grow is read in one read call, not a second one to find its end (each conversation reads two)', async () => {
    for (const text of ['{"a":1}', '', 'x'.repeat(70_000)]) {
      await writeFile(path.join(dir, 'a.json'), text);
      readCalls.n = 0;
      expect(await outcomes(path.join(dir, 'a.json'))).toEqual({ read: text, sync: text });
      expect(readCalls.n).toBe(2); // one for readDataFile, one for readDataFileSync
    }
  });

  it('a file that grows after its fstat is read to its end as it is then; past its cap, refused', async () => {
    const file = path.join(dir, 'a.log');
    const grows = (by: string) => () => {
      if (readCalls.n === 1) appendFileSync(file, by); // before the first read, after the fstat
    };
    try {
      for (const by of ['b', 'b'.repeat(5_000)]) {
        await writeFile(file, 'a');
        readCalls.n = 0;
        readCalls.before = grows(by);
        expect((await readDataFile(file))?.toString()).toBe(`a${by}`);
        await writeFile(file, 'a');
        readCalls.n = 0;
        expect(readDataFileSync(file)?.toString()).toBe(`a${by}`);
      }
      await writeFile(file, 'a');
      readCalls.n = 0;
      readCalls.before = grows('b'.repeat(100));
      await expect(readDataFile(file, { maxBytes: 50 })).rejects.toThrow(`${file} is not a file of at most`);
    } finally {
      readCalls.before = null;
    }
  });

  it.each([
    ['/dev/zero', 'a character device'],
    ['/dev/full', 'a character device'],
    ['/dev/urandom', 'a character device'],
  ])(
    'a link to %s: refused as a link at once, naming the file (before: read until a RangeError at 512 MB)',
    async (device) => {
      const file = path.join(dir, 'endpoint.json');
      await symlink(device, file);
      const { read, sync } = await outcomes(file);
      expect(read).toBe(sync);
      expect(read).toBe(
        `UnreadableFileError  ${file} is not a regular file (it is a symbolic link, which the gateway never makes)`,
      );
      // Followed where a link is expected (the delivery secrets file): refused as what it leads to.
      await expect(readDataFile(file, { followLinks: true })).rejects.toThrow(
        `${file} is not a regular file (it is a character device (such as /dev/zero, /dev/full or /dev/urandom))`,
      );
    },
  );

  it('a FIFO: refused at once, not waited on for a writer', async () => {
    const file = path.join(dir, 'claim.json');
    expect(spawnSync('mkfifo', [file]).status).toBe(0);
    const { read, sync } = await outcomes(file);
    expect(read).toBe(`UnreadableFileError  ${file} is not a regular file (it is a FIFO (a named pipe))`);
    expect(sync).toBe(read);
  });

  it('a folder: EISDIR as a read of that file (what the stores say of a folder where a file should be)', async () => {
    const file = path.join(dir, 'status.json');
    await mkdir(file);
    const { read, sync } = await outcomes(file);
    expect(read).toBe(`Error EISDIR EISDIR: illegal operation on a directory, read '${file}'`);
    expect(sync).toBe(read);
  });

  it('a file larger than its cap: refused, saying its size and the cap; readJsonFile passes the refusal on', async () => {
    const file = path.join(dir, 'big.json');
    await writeFile(file, 'x'.repeat(3 * 1024 * 1024));
    const { read, sync } = await outcomes(file, 2 * 1024 * 1024);
    expect(read).toBe(
      `UnreadableFileError  ${file} is not a file of at most 2 MB (it holds ${3 * 1024 * 1024} bytes or more)`,
    );
    expect(sync).toBe(read);
    await expect(readJsonFile(file, { maxBytes: 1024 })).rejects.toThrow(`${file} is not a file of at most 1024 bytes`);
  });
});

describe('readDataTextKept: a file read at every use, kept while it stays the same file', () => {
  /** Read 5 s later on the clock (faked): its last change is then older than a second. */
  const readLater = async (file: string, options?: { followLinks?: boolean }) => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 5_000);
    try {
      return await readDataTextKept(file, options);
    } finally {
      vi.useRealTimers();
    }
  };

  it('an unchanged file is read once (then one lstat a use); a file changed in any way is read again', async () => {
    const file = path.join(dir, 'deal_analysis.json');
    await writeFile(file, '{"v":1}');
    expect(await readLater(file)).toBe('{"v":1}');
    readCalls.n = 0;
    expect(await readLater(file)).toBe('{"v":1}');
    expect(await readLater(file)).toBe('{"v":1}');
    expect(readCalls.n).toBe(0);
    // Replaced (as the stores write: another file renamed into place), then rewritten in place to the same size with
    // its times put back.
    await writeFile(`${file}.tmp`, '{"v":2}');
    await rename(`${file}.tmp`, file);
    expect(await readLater(file)).toBe('{"v":2}');
    const { atime, mtime } = await stat(file);
    await writeFile(file, '{"v":3}');
    await utimes(file, atime, mtime);
    expect(await readLater(file)).toBe('{"v":3}');
    expect(await readLater(file)).toBe('{"v":3}');
    expect(readCalls.n).toBe(2);
  });

  it('a file changed within the last second is read at each use, until a read finds it older', async () => {
    const file = path.join(dir, 'thread.json');
    await writeFile(file, '[]');
    const reads = [];
    for (const read of [readDataTextKept, readDataTextKept, readLater, readLater, readDataTextKept]) {
      readCalls.n = 0;
      expect(await read(file)).toBe('[]');
      reads.push(readCalls.n);
    }
    expect(reads).toEqual([1, 1, 1, 0, 0]);
  });

  it('a link or a FIFO put in its place is refused as readDataFile refuses it; a file that is gone is none', async () => {
    const file = path.join(dir, 'deal_analysis.json');
    await writeFile(file, '{"v":1}');
    await writeFile(path.join(dir, 'other.json'), '{"v":1}');
    expect(await readLater(file)).toBe('{"v":1}');
    await rm(file);
    await symlink(path.join(dir, 'other.json'), file);
    await expect(readLater(file)).rejects.toThrow(
      `${file} is not a regular file (it is a symbolic link, which the gateway never makes)`,
    );
    await rm(file);
    expect(spawnSync('mkfifo', [file]).status).toBe(0);
    await expect(readLater(file)).rejects.toThrow(`${file} is not a regular file (it is a FIFO`);
    await rm(file);
    expect(await readLater(file)).toBeNull();
    // Followed where links are (the delivery secrets file): what it leads to is read.
    await symlink(path.join(dir, 'other.json'), file);
    expect(await readLater(file, { followLinks: true })).toBe('{"v":1}');
  });
});

describe('appendLine', () => {
  it('creates the missing folder (with its mode) and the file (with its), then appends to them', async () => {
    const file = path.join(dir, 'attempts', 'log.jsonl');
    await appendLine(file, '{"n":1}\n', 0o600, 0o700);
    await appendLine(file, '{"n":2}\n', 0o600, 0o700);
    expect(await readFile(file, 'utf8')).toBe('{"n":1}\n{"n":2}\n');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
  });

  it('makes the folder again when it was removed while running', async () => {
    const file = path.join(dir, 'receiver', 'deal_analysis.jsonl');
    await appendLine(file, 'a\n');
    await rm(path.dirname(file), { recursive: true });
    await appendLine(file, 'b\n');
    expect(await readFile(file, 'utf8')).toBe('b\n');
  });

  it('keeps every line of many appends at once whole (one write each)', async () => {
    const file = path.join(dir, 'new', 'many.jsonl');
    const lines = Array.from({ length: 200 }, (_, i) => `${JSON.stringify({ i, pad: 'x'.repeat(i * 20) })}\n`);
    await Promise.all(lines.map((line) => appendLine(file, line)));
    const written = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
    expect(written.map((line) => (JSON.parse(line) as { i: number }).i).sort((a, b) => a - b)).toEqual(
      lines.map((_, i) => i),
    );
  });

  it('after an append a full disk cut, the next line begins a line of its own', async () => {
    const file = path.join(dir, 'attempts', 'log.jsonl');
    await appendLine(file, '{"n":1}\n', 0o600, 0o700);
    Object.assign(diskFull, { on: true, bytes: 6 });
    await expect(appendLine(file, '{"n":2,"pad":"xxxx"}\n', 0o600, 0o700)).rejects.toMatchObject({ code: 'ENOSPC' });
    await appendLine(file, '{"n":3}\n', 0o600, 0o700);
    await appendLine(file, '{"n":4}\n', 0o600, 0o700);
    // Before: '{"n":2{"n":3}' — the line after the cut one was unreadable too.
    expect((await readFile(file, 'utf8')).split('\n')).toEqual(['{"n":1}', '{"n":2', '{"n":3}', '{"n":4}', '']);
  });

  it('reports a folder it cannot create (a file is in the way)', async () => {
    await writeFile(path.join(dir, 'blocker'), 'x');
    await expect(appendLine(path.join(dir, 'blocker', 'log.jsonl'), 'x\n')).rejects.toMatchObject({
      code: expect.stringMatching(/ENOTDIR|EEXIST/),
    });
  });
});

describe('writeFileAtomic', () => {
  it('a write a full disk cut leaves the file as it was and nothing aside', async () => {
    const file = path.join(dir, 'status.json');
    await writeFileAtomic(file, '{"v":1}\n', 0o600);
    Object.assign(diskFull, { on: true, bytes: 4 });
    await expect(writeFileAtomic(file, '{"v":2,"answer":"…"}\n', 0o600)).rejects.toMatchObject({ code: 'ENOSPC' });
    // Before: the cut copy stayed beside it (status.json.<pid>.<hex>.tmp), one more at each retry, for a day.
    expect(await readdir(dir)).toEqual(['status.json']);
    expect(await readFile(file, 'utf8')).toBe('{"v":1}\n');
  });

  it('a write refused at its rename (a folder where the file should be) leaves no copy aside', async () => {
    const file = path.join(dir, 'deal_analysis.json');
    await mkdir(file);
    await expect(writeFileAtomic(file, '{"url":"https://crm.example/hook"}\n', 0o600)).rejects.toMatchObject({
      code: expect.stringMatching(/EISDIR|ENOTEMPTY|EEXIST|EPERM/),
    });
    expect(await readdir(dir)).toEqual(['deal_analysis.json']);
  });
});

describe('withFileLock', () => {
  it('holds its lock under its process id and removes it after; a lock left by a killed process is taken over at once', async () => {
    const file = path.join(dir, 'deal_analysis.json');
    const seen = await withFileLock(file, async () => readFile(`${file}.lock`, 'utf8'));
    // Its process id and host tag (functions/shared/writers.ts), then a tag of its own.
    expect(seen).toMatch(new RegExp(`^${process.pid}@${writerHost()}\\.[0-9a-f]{8}$`));
    expect(await readdir(dir)).toEqual([]);
    // A gateway killed (kill -9) while it changed the file: its lock stays, naming a process that is gone. The next
    // gateway, started at once, does not wait for the lock to age (before: 5 s, then the change was refused).
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    await writeFile(`${file}.lock`, gone.stdout);
    expect(await withTimeStill(() => withFileLock(file, async () => 'changed'))).toBe('changed');
    expect(await readdir(dir)).toEqual([]);
  });

  it('a lock is never empty while held; an empty one (a process killed after creating it, before) is taken over at once', async () => {
    const file = path.join(dir, 'data_analysis.json');
    // Before: an empty lock was "not known to be gone" until 10 s old, and a change waited 5 s, then was refused.
    await writeFile(`${file}.lock`, '');
    expect(await withTimeStill(() => withFileLock(file, async () => readFile(`${file}.lock`, 'utf8')))).toMatch(
      new RegExp(`^${process.pid}@`),
    );
    expect(await readdir(dir)).toEqual([]); // nothing left aside
  });

  it('leaves the lock another process took over while it held it (past STALE_MS): only its own is removed', async () => {
    const file = path.join(dir, 'general.json');
    const lock = `${file}.lock`;
    // Another process (alive: this test's parent) found this holder's lock stale and took it over, as acquire does.
    const other = String(process.ppid);
    await withFileLock(file, async () => {
      expect(await removeStaleLock(lock, await readFile(lock, 'utf8'))).toBe(true);
      expect(await createExclusive(lock, other, 0o600)).toBe(true);
    });
    // Before: the first holder's release removed it with rm, and a third process could take it while the second
    // still changed the file.
    expect(await readFile(lock, 'utf8')).toBe(other);
    expect((await readdir(dir)).sort()).toEqual(['general.json.lock']); // no claim left aside
  });

  it('a takeover judged on an earlier holder of this process never removes a later holder’s lock', async () => {
    const file = path.join(dir, 'deal_analysis.json');
    const lock = `${file}.lock`;
    // Another process read the first holder's lock as stale, then was slow to act on it.
    const first = await withFileLock(file, async () => readFile(lock, 'utf8'));
    await withFileLock(file, async () => {
      const held = await readFile(lock, 'utf8');
      expect(await removeStaleLock(lock, first)).toBe(true); // done: the lock it read is gone
      // Before: both held the process id alone, and the late takeover removed the second holder's lock.
      expect(await readFile(lock, 'utf8')).toBe(held);
    });
    expect(await readdir(dir)).toEqual([]);
  });

  it('a holder still working past STALE_MS keeps its lock fresh, so no other process takes it over; no timer is left', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] });
    try {
      const file = path.join(dir, 'general.json');
      const lock = `${file}.lock`;
      const staleMs = 10_000;
      /** How old the lock looks to another process (acquire takes over one older than STALE_MS). */
      const age = async () => Date.now() - (await stat(lock)).mtimeMs;
      await withFileLock(file, async () => {
        // A slow disk: the read-modify-write goes on for 12 s.
        for (let held = 0; held < 12_000; held += 1_000) {
          await vi.advanceTimersByTimeAsync(1_000);
          // Before: the lock aged from its creation, and another process took it over at 10 s while this one wrote.
          await vi.waitFor(async () => expect(await age()).toBeLessThanOrEqual(staleMs / 2), { interval: 1 });
        }
      });
      expect(vi.getTimerCount()).toBe(0);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a live holder stuck past STALE_MS that touches its lock between another’s look and its claim keeps it', async () => {
    const file = path.join(dir, 'data_analysis.json');
    const lock = `${file}.lock`;
    // The holder: a live process (this test's parent), stuck for 11 s: its lock looks stale by its age.
    const holder = `${process.ppid}.0a0b0c0d`;
    await writeFile(lock, holder);
    const stuckSince = new Date(Date.now() - 11_000);
    await utimes(lock, stuckSince, stuckSince);
    let touched = false;
    let triesSinceTouch = 0;
    let holderDone = false;
    beforeLink.hook = async (target) => {
      if (target.endsWith('.0.tmp') && !touched) {
        // Between this process's look at the lock and its claim on it, the holder wakes up and touches it.
        touched = true;
        const now = new Date();
        await utimes(lock, now, now);
      } else if (target === lock && touched && ++triesSinceTouch === 2) {
        // The holder finishes its work, and gives the lock back, only after this process has tried it once more.
        await rm(lock);
        holderDone = true;
      }
    };
    // Before: the takeover removed the lock all the same (its text unchanged), and both changed the file at once.
    await expect(withFileLock(file, async () => holderDone)).resolves.toBe(true);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a lock a live process holds past GIVE_UP_MS: the change is refused, naming the lock (the clock moved, never waited on)', async () => {
    const file = path.join(dir, 'general.json');
    const lock = `${file}.lock`;
    // A live holder (this test's parent) whose lock stays fresh: each try finds it held, and the clock moves on 1 s.
    await writeFile(lock, `${process.ppid}.0a0b0c0d`);
    let tries = 0;
    beforeLink.hook = async (target) => {
      if (target !== lock) return;
      tries += 1;
      vi.setSystemTime(Date.now() + 1_000);
      const now = new Date();
      await utimes(lock, now, now);
    };
    await expect(withTimeStill(() => withFileLock(file, async () => 'changed'))).rejects.toThrow(
      `${lock} is held by another process for more than 5000 ms`,
    );
    expect(tries).toBe(6); // given up after 5 s, not before
    expect((await readdir(dir)).sort()).toEqual(['general.json.lock']); // the holder's lock left, nothing aside
  });

  it('a lock naming a live process here that does not touch it (its pid reused after a restart): waited on until it is 10 s old, then taken over', async () => {
    const file = path.join(dir, 'general.json');
    const lock = `${file}.lock`;
    // A killed holder's lock whose pid a live process now has (this test's parent): nobody touches it; each try
    // moves the clock 1 s.
    await writeFile(lock, `${process.ppid}.0a0b0c0d`);
    const takenAt = new Date();
    await utimes(lock, takenAt, takenAt);
    let tries = 0;
    beforeLink.hook = async (target) => {
      if (target !== lock) return;
      tries += 1;
      vi.setSystemTime(Date.now() + 1_000);
    };
    const notices: [number, number, string][] = [];
    // Before: refused after 5 s ("try again"), and so again on each try until the lock was 10 s old.
    await expect(
      withTimeStill(() =>
        withFileLock(file, async () => 'changed', {
          notice: (_lock, pid, waitMs, kind) => notices.push([pid, waitMs, kind]),
        }),
      ),
    ).resolves.toBe('changed');
    expect(notices).toEqual([[process.ppid, expect.any(Number), 'untouched']]);
    expect(notices[0]![1]).toBeLessThanOrEqual(11_000 - 4_000);
    expect(tries).toBeGreaterThanOrEqual(10);
    expect(tries).toBeLessThanOrEqual(12);
    expect(await readdir(dir)).toEqual([]);
  });

  describe('a lock taken in another pid namespace (a container sharing the data folder): judged by its age alone', () => {
    const GONE = 99_999_999; // above any pid_max: no process of this namespace has it
    const other = () => anotherHost();
    it.each([
      ['a pid no process here has', () => GONE],
      ["this process's own pid (a container restarted: pids reused from 1)", () => process.pid],
      ['a live process here', () => process.ppid],
    ])('naming %s: not broken while its holder keeps it fresh; taken over once stale', async (_, pid) => {
      const file = path.join(dir, 'endpoints.json');
      const lock = `${file}.lock`;
      const theirs = `${pid()}@${other()}.0a0b0c0d`;
      await writeFile(lock, theirs);
      // Its holder, alive in its container, keeps it fresh: each try finds it touched, and the clock moves on 1 s.
      beforeLink.hook = async (target) => {
        if (target !== lock) return;
        vi.setSystemTime(Date.now() + 1_000);
        const now = new Date();
        await utimes(lock, now, now);
      };
      let changed = false;
      // Before: a pid not alive here (or this process's) was taken for a holder that is gone: the lock was removed
      // at once, and two processes changed endpoints.json at once (a lost update).
      await expect(
        withTimeStill(() =>
          withFileLock(file, async () => {
            changed = true;
          }),
        ),
      ).rejects.toThrow(`${lock} is held by another process for more than 12000 ms`);
      expect(changed).toBe(false);
      expect(await readFile(lock, 'utf8')).toBe(theirs);
      // Its container stopped: nobody touches it any more; once older than STALE_MS (10 s) it is taken over.
      beforeLink.hook = null;
      const stoppedAt = new Date(Date.now() - 10_001);
      await utimes(lock, stoppedAt, stoppedAt);
      await withTimeStill(() =>
        withFileLock(file, async () => {
          changed = true;
        }),
      );
      expect(changed).toBe(true);
      expect(await readdir(dir)).toEqual([]);
    });

    it('its holder killed while holding it: a change made meanwhile waits until the lock is stale, takes it over and is made (not refused after 5 s)', async () => {
      const file = path.join(dir, 'endpoints.json');
      const lock = `${file}.lock`;
      // Just taken by a writer of another container that was then killed: nobody touches it any more.
      await writeFile(lock, `${GONE}@${other()}.0a0b0c0d`);
      let tries = 0;
      beforeLink.hook = async (target) => {
        if (target !== lock) return;
        // Taken 0.5 s before the first try, on the test's still clock: its age at each look does not depend on when
        // writeFile ran (its mtime, in fractions of a ms, could fall after a still clock's whole ms: then 12 tries).
        if (tries === 0) {
          const takenAt = new Date(Date.now() - 500);
          await utimes(lock, takenAt, takenAt);
        }
        tries += 1;
        vi.setSystemTime(Date.now() + 1_000);
      };
      // Before: refused after 5 s ('held by another process for more than 5000 ms'), though the lock was taken over
      // at 10 s: a delivery's endpoint state, a secret or a setting changed then was lost.
      expect(await withTimeStill(() => withFileLock(file, async () => 'changed'))).toBe('changed');
      expect(tries).toBe(11); // taken over at the look that finds it 11 s old, not refused at 5 s
      expect(await readdir(dir)).toEqual([]);
    });

    it('the caller’s deadline (a delivery’s) ends the wait for it: the change is not made, the lock left', async () => {
      const file = path.join(dir, 'endpoints.json');
      const lock = `${file}.lock`;
      const theirs = `${GONE}@${other()}.0a0b0c0d`;
      await writeFile(lock, theirs);
      const deadline = new AbortController();
      let tries = 0;
      beforeLink.hook = async (target) => {
        if (target !== lock) return;
        tries += 1;
        vi.setSystemTime(Date.now() + 1_000);
        if (tries === 2) deadline.abort(new Error('the delivery’s deadline passed'));
      };
      // Before: the wait went on past the delivery's deadline (its Lambda's budget), up to 11 s.
      await expect(
        withTimeStill(() => withFileLock(file, async () => 'changed', { signal: deadline.signal })),
      ).rejects.toThrow('the delivery’s deadline passed');
      expect(tries).toBe(2);
      expect(await readFile(lock, 'utf8')).toBe(theirs);
    });

    it('a change refused while a holder of another container keeps its lock fresh says what to do', async () => {
      const file = path.join(dir, 'endpoints.json');
      const lock = `${file}.lock`;
      await writeFile(lock, `${GONE}@${other()}.0a0b0c0d`);
      beforeLink.hook = async (target) => {
        if (target !== lock) return;
        vi.setSystemTime(Date.now() + 1_000);
        const now = new Date();
        await utimes(lock, now, now);
      };
      await expect(withTimeStill(() => withFileLock(file, async () => 'changed'))).rejects.toThrow(
        `${lock} is held by another process for more than 12000 ms: nothing was changed; try again`,
      );
    });

    it('an old lock text (its pid alone, or pid.tag) is still judged by its pid: a gone holder’s taken over at once', async () => {
      const file = path.join(dir, 'endpoints.json');
      for (const text of [String(GONE), `${GONE}.0a0b0c0d`, `${GONE}@${writerHost()}.0a0b0c0d`]) {
        await writeFile(`${file}.lock`, text);
        expect(await withTimeStill(() => withFileLock(file, async () => 'changed'))).toBe('changed');
        expect(await readdir(dir)).toEqual([]);
      }
    });
  });

  it.each([
    [
      'a FIFO',
      async (lock: string) => void expect(spawnSync('mkfifo', [lock]).status).toBe(0),
      'it is a FIFO (a named pipe)',
    ],
    [
      'a link to /dev/zero',
      (lock: string) => symlink('/dev/zero', lock),
      'it is a symbolic link, which the gateway never makes',
    ],
    ['a folder', (lock: string) => mkdir(lock), 'it is a folder'],
    ['a file of 2 KB', (lock: string) => writeFile(lock, '1'.repeat(2048)), 'it holds 2048 bytes or more'],
  ])(
    '%s where the lock should be: the change is refused at once, naming the lock and what to do',
    async (_, put, why) => {
      const file = path.join(dir, 'conversations.json');
      const lock = `${file}.lock`;
      await put(lock);
      let changed = false;
      // Before: a FIFO was read until a writer came (the change hung for good, holding one of libuv's file threads), a
      // link to /dev/zero until memory ran out; the rest waited 5 s for a holder that is not there (with the clock still,
      // for ever: the test times out).
      await expect(
        withTimeStill(() =>
          withFileLock(file, async () => {
            changed = true;
          }),
        ),
      ).rejects.toThrow(`${lock} is not a lock the gateway made (${why}; remove it, then try again)`);
      expect(changed).toBe(false);
      await rm(lock, { recursive: true });
      await withFileLock(file, async () => {
        changed = true;
      });
      expect(changed).toBe(true);
      expect(await readdir(dir)).toEqual([]);
    },
  );

  it('a FIFO where a claim on a stale lock should be: the takeover is refused at once, naming the claim', async () => {
    const file = path.join(dir, 'conversations.json');
    const lock = `${file}.lock`;
    await writeFile(lock, '');
    const claim = `${lock}.0.0.tmp`;
    expect(spawnSync('mkfifo', [claim]).status).toBe(0);
    // Before: the claim was read until a writer came: the takeover, and every change of the file, hung for good.
    await expect(withTimeStill(() => withFileLock(file, async () => 'changed'))).rejects.toThrow(
      `${claim} is not a lock the gateway made (it is a FIFO (a named pipe); remove it, then try again)`,
    );
  });

  it('a FIFO put where the claim of its release goes: the change made stands, the lock is left to age', async () => {
    const file = path.join(dir, 'conversations.json');
    const lock = `${file}.lock`;
    let claim = '';
    // Before: the release read the FIFO until a writer came: the change, done, never returned.
    const result = await withFileLock(file, async () => {
      claim = `${lock}.${(await readFile(lock, 'utf8')).replace(/\D/g, '').slice(0, 12)}.0.tmp`;
      expect(spawnSync('mkfifo', [claim]).status).toBe(0);
      return 'changed';
    });
    expect(result).toBe('changed');
    expect((await readdir(dir)).sort()).toEqual([path.basename(lock), path.basename(claim)].sort());
  });

  it('several processes finding a stale lock at once: one takes it over at a time, never two', async () => {
    const file = path.join(dir, 'lead_analysis.json');
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    await writeFile(`${file}.lock`, gone.stdout);
    const log = path.join(dir, 'holders.log');
    const module = path.resolve('functions/shared/local-files.ts');
    // All at once (meetInProcesses), each says 'try' in the log and waits until all eight have, then changes the file
    // under its lock, holding it a moment. Without that wait, at load 8 on 2 cores the first process scheduled took the
    // lock and wrote 'in' before the others had said 'try' (the meeting below failed, the lock code not at fault).
    const processes = await meetInProcesses(
      8,
      `const { appendLine, withFileLock } = await import(${JSON.stringify(module)});
      const { readFile } = await import('node:fs/promises');`,
      `await appendLine(${JSON.stringify(log)}, 'try\\n');
      const tries = async () => (await readFile(${JSON.stringify(log)}, 'utf8')).split('\\n').filter((l) => l === 'try').length;
      while ((await tries()) < 8) await new Promise((resolve) => setTimeout(resolve, 5));
      await withFileLock(${JSON.stringify(file)}, async () => {
        await appendLine(${JSON.stringify(log)}, 'in\\n');
        await new Promise((resolve) => setTimeout(resolve, 50));
        await appendLine(${JSON.stringify(log)}, 'out\\n');
      });`,
    );
    await Promise.all(processes.map((p) => p.closed));
    const lines = (await readFile(log, 'utf8')).trim().split('\n');
    // They met: others had begun before the first held the lock (one after another, only the first would find the stale
    // lock, the others a live holder or none, and the test would pass whatever several takeovers at once did).
    expect(lines.indexOf('in')).toBeGreaterThan(1);
    // Before: each removed the stale lock with rm, the later ones removing the lock an earlier one had just taken.
    expect(lines.filter((line) => line !== 'try')).toEqual(Array.from({ length: 8 }, () => ['in', 'out']).flat());
    expect((await readdir(dir)).sort()).toEqual(['holders.log']); // no lock, nothing left aside
  }, 120_000); // 8 processes importing through tsx took over 20 s at load 12: the limit only catches a hang
});
