import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { writerHost } from '../../../functions/shared/writers.ts';
import { PROJECT_ROOT } from '../../../local/paths.ts';
import { DataDirInUseError, lockDataDir } from '../../../local/store/data-dir-lock.ts';
import { meetInProcesses } from '../../support/meeting.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';
import { withTimeStill } from '../../support/time.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'data-dir-lock-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});
const pidFile = () => path.join(dir, 'gateway.pid');
/** The pid the file names (it is followed by its writer's start time where /proc has it). */
const holder = async () => Number.parseInt(await readFile(pidFile(), 'utf8'), 10);
/** A process's start in clock ticks after boot (/proc/<pid>/stat). */
const startTicks = async (pid: number) => {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ')[19];
};

describe('one gateway per LOCAL_DATA_DIR', () => {
  it('a live gateway holds it: a second start is refused with its pid', async () => {
    // A live process that is not this one nor its ancestor, running when the file was written (as its writer was).
    const gateway = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
    try {
      await writeFile(pidFile(), String(gateway.pid));
      await expect(lockDataDir(dir)).rejects.toThrow(DataDirInUseError);
      await expect(lockDataDir(dir)).rejects.toThrow(`another gateway (pid ${gateway.pid}) is using ${dir}`);
    } finally {
      gateway.kill();
    }
  });

  it("one whose pid a restart gave to this start's own parent (npm, sh) is taken over, and the line says so", async () => {
    // Before: refused ('another gateway (pid …) is using …') until the file was deleted by hand.
    await writeFile(pidFile(), String(process.ppid));
    const lock = await lockDataDir(dir);
    expect(await holder()).toBe(process.pid);
    expect(lock.tookOver).toContain(`named pid ${process.ppid}, which is now this start's own parent process`);
    expect(lock.tookOver).toContain(`not a gateway: taking over ${dir}`);
    await lock.release();
  });

  it.runIf(existsSync('/proc/self/stat'))(
    'one whose pid a restart gave to a process started after the file was written is taken over',
    async () => {
      const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
      try {
        await writeFile(pidFile(), String(other.pid));
        const written = new Date(Date.now() - 3_600_000); // the killed gateway wrote it an hour ago
        await utimes(pidFile(), written, written);
        const lock = await lockDataDir(dir);
        expect(await holder()).toBe(process.pid);
        expect(lock.tookOver).toContain(`named pid ${other.pid}, which is now a process started after the file`);
        await lock.release();
      } finally {
        other.kill();
      }
    },
  );

  it.runIf(existsSync('/proc/self/stat'))(
    'a live gateway is known by its start, whatever the clocks say: refused even with its file older than it',
    async () => {
      // Before, a file an hour older than its live holder (the wall clock stepped forward while it ran) and another
      // command line read as a reused pid: a second gateway took over a folder the first still used.
      const gateway = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
      try {
        await writeFile(pidFile(), `${gateway.pid} ${await startTicks(gateway.pid!)}`);
        const written = new Date(Date.now() - 3_600_000);
        await utimes(pidFile(), written, written);
        await expect(lockDataDir(dir)).rejects.toThrow(`another gateway (pid ${gateway.pid}) is using ${dir}`);
      } finally {
        gateway.kill();
      }
    },
  );

  it.runIf(existsSync('/proc/self/stat'))(
    'a file naming a pid with another start is taken over (a restart reused the pid), and the line says so',
    async () => {
      const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
      try {
        await writeFile(pidFile(), `${other.pid} ${Number(await startTicks(other.pid!)) + 1}`);
        const lock = await lockDataDir(dir);
        expect(await holder()).toBe(process.pid);
        // `<pid>@<host> <start ticks>`: its host tag too (functions/shared/writers.ts).
        expect(await readFile(pidFile(), 'utf8')).toBe(
          `${process.pid}@${writerHost()} ${await startTicks(process.pid)}`,
        );
        expect(lock.tookOver).toContain(`named pid ${other.pid}, which is now a process started after the gateway`);
        await lock.release();
        expect(existsSync(pidFile())).toBe(false);
      } finally {
        other.kill();
      }
    },
  );

  it('one left by a killed gateway is taken over (the journal recovers what it left); released on stop', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    await writeFile(pidFile(), String(dead));
    const lock = await lockDataDir(dir);
    expect(await holder()).toBe(process.pid);
    // Its crash's leftovers are looked for at recovery (the cut history writes the journal does not point at).
    expect(lock.stale).toBe(true);
    await lock.release();
    await expect(stat(pidFile())).rejects.toThrow(/ENOENT/);
    // A folder its last gateway left cleanly: nothing to look for.
    const again = await lockDataDir(dir);
    expect(again.stale).toBe(false);
    await again.release();
  });

  it('a FIFO put in place of the pid file while the gateway ran: the stop is not kept waiting, and leaves it', async () => {
    const lock = await lockDataDir(dir);
    await rm(pidFile());
    expect(spawnSync('mkfifo', [pidFile()]).status).toBe(0);
    // Before: the release read it until a writer came: the stop hung for good.
    await lock.release();
    expect((await stat(pidFile())).isFIFO()).toBe(true);
  });

  it('several starts at once on a folder a killed gateway left: exactly one takes it over, the others are refused', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    await writeFile(pidFile(), String(dead));
    const module = path.resolve('local/store/data-dir-lock.ts');
    const tries = `${dir}.tries`;
    // All start at once (meetInProcesses), each saying so in `tries` first: the one that takes the folder holds it, as
    // a running gateway would, until every start has said how it went (a start a loaded machine runs late must still
    // find it held).
    const starts = await meetInProcesses(
      6,
      `const { lockDataDir } = await import(${JSON.stringify(module)});
      const { appendFileSync } = await import('node:fs');`,
      `appendFileSync(${JSON.stringify(tries)}, 'try\\n');
      try {
        await lockDataDir(${JSON.stringify(dir)});
        appendFileSync(${JSON.stringify(tries)}, 'held\\n');
        console.log('held');
        setInterval(() => {}, 1000);
      } catch (error) { console.log(error.constructor.name); }`,
    );
    try {
      const outcomes = (await Promise.all(starts.map((start) => start.line))).sort();
      expect(outcomes).toEqual([
        'DataDirInUseError',
        'DataDirInUseError',
        'DataDirInUseError',
        'DataDirInUseError',
        'DataDirInUseError',
        'held',
      ]);
      // They met: others had begun before one held the folder (one at a time, all but the first would be refused
      // without a takeover to contend with, and the test would pass whatever the takeover did).
      const log = (await readFile(tries, 'utf8')).trim().split('\n');
      expect(log.indexOf('held')).toBeGreaterThan(1);
    } finally {
      for (const start of starts) start.kill();
      await Promise.all(starts.map((start) => start.closed));
      await rm(tries, { force: true });
    }
    expect((await readdir(dir)).sort()).toEqual(['gateway.pid']); // no takeover left behind
  }, 120_000); // 6 processes importing through tsx took over 20 s at load 12: the limit only catches a hang

  it('a start killed while it created the pid file leaves none, or a full one: the next start is not kept waiting', async () => {
    // This version writes its pid aside and links it into place: killed in between, it leaves only the file aside.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    await writeFile(path.join(dir, `gateway.pid.${dead}.0a1b2c3d4e5f.tmp`), String(dead));
    const lock = await lockDataDir(dir);
    expect(await holder()).toBe(process.pid);
    expect((await readdir(dir)).filter((n) => n.startsWith('gateway.pid.') && n.includes(`.${process.pid}.`))).toEqual(
      [],
    ); // nothing of its own left aside
    await lock.release();
    // An empty pid file, as an earlier version's start killed between creating the file and writing its pid left it
    // (before: the next start waited until it was 10 s old), is taken over at once.
    await writeFile(pidFile(), '');
    const again = await withTimeStill(() => lockDataDir(dir));
    expect(await holder()).toBe(process.pid);
    await again.release();
  });

  it('a start killed in the middle of its takeover keeps the next start waiting for nothing', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const killed = spawnSync(process.execPath, ['-e', '0']).pid!;
    // What an earlier version's start left, killed while it took over the dead gateway's file: its takeover folder.
    // Before: the next start waited until that folder was 10 s old.
    await writeFile(pidFile(), String(dead));
    await mkdir(path.join(dir, 'gateway.pid.takeover'));
    let lock = await withTimeStill(() => lockDataDir(dir));
    expect(await holder()).toBe(process.pid);
    expect(await readdir(dir)).toEqual(['gateway.pid']);
    await lock.release();
    // What this version's start leaves, killed in the same place: its claim on the dead gateway's file.
    await writeFile(pidFile(), String(dead));
    await writeFile(path.join(dir, `gateway.pid.${dead}.0.tmp`), String(killed));
    lock = await withTimeStill(() => lockDataDir(dir));
    expect(await readdir(dir)).toEqual(['gateway.pid']);
    await lock.release();
  });
});

describe('a gateway of another pid namespace (a container sharing the folder): judged by its file’s age alone', () => {
  const GONE = 99_999_999; // above any pid_max: no process of this namespace has it
  const other = () => anotherHost();
  /** The clock moved on `ms` at each wait of the start (never slept on); `also` run first. */
  const waits = (also?: (n: number) => Promise<void>) => {
    let n = 0;
    return async (ms: number) => {
      await also?.(++n);
      vi.setSystemTime(Date.now() + ms);
    };
  };

  it.each([
    ['a pid no process here has', () => GONE],
    ["this start's own pid (a container restarted: pids reused from 1)", () => process.pid],
    ["this start's parent's pid", () => process.ppid],
  ])('naming %s, kept fresh by its gateway: the start is refused', async (_, pid) => {
    const theirs = `${pid()}@${other()} 4242`;
    await writeFile(pidFile(), theirs);
    const notices: string[] = [];
    // Its gateway touches it (every 10 s) while this start watches it.
    const wait = waits(async (n) => {
      if (n === 3) await utimes(pidFile(), new Date(Date.now() + 3_000), new Date(Date.now() + 3_000));
    });
    // Before: a pid not alive here was a killed gateway's (its own pid or its parent's, no gateway): the folder was
    // taken over at once, and two gateways recovered and redelivered each other's conversations.
    const start = withTimeStill(() => lockDataDir(dir, { wait, notice: (line) => notices.push(line) }));
    await expect(start).rejects.toThrow(DataDirInUseError);
    await expect(start).rejects.toThrow(
      `another gateway (pid ${pid()} of another pid namespace or host (a container sharing this folder)) is using ${dir}`,
    );
    expect(await readFile(pidFile(), 'utf8')).toBe(theirs);
    expect(notices).toEqual([
      expect.stringContaining(`${pidFile()} names pid ${pid()} of another pid namespace or host`),
    ]);
    expect(notices[0]).toContain(
      'waiting until it is refreshed (that gateway runs: this start is refused) or 30 s old',
    );
  });

  it('one its gateway stopped refreshing (killed, its container restarted) is taken over once 30 s old', async () => {
    await writeFile(pidFile(), `${GONE}@${other()} 4242`);
    const notices: string[] = [];
    const lock = await withTimeStill(() => lockDataDir(dir, { wait: waits(), notice: (line) => notices.push(line) }));
    expect(await holder()).toBe(process.pid);
    expect(Date.now() - (await stat(pidFile())).mtimeMs).toBeLessThan(5_000); // its own, made now
    expect(lock.stale).toBe(true); // the journal recovers what the killed gateway left
    expect(lock.tookOver).toContain(`named pid ${GONE} of another pid namespace or host, not refreshed for 3`);
    expect(notices).toHaveLength(1); // said once, not at every look
    await lock.release();
    // Already older than that (the container was restarted long after): taken over at once, nothing waited on.
    await writeFile(pidFile(), `1@${other()} 4242`);
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(pidFile(), hourAgo, hourAgo);
    const again = await withTimeStill(() =>
      lockDataDir(dir, {
        wait: async () => {
          throw new Error('waited');
        },
      }),
    );
    expect(again.tookOver).toContain('named pid 1 of another pid namespace or host, not refreshed for 3600 s');
    await again.release();
  });

  it('the running gateway keeps its file fresh, and says so once when another took it over; none is left', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] });
    try {
      const lost: string[] = [];
      const lock = await lockDataDir(dir, { onLost: (line) => lost.push(line) });
      const age = async () => Date.now() - (await stat(pidFile())).mtimeMs;
      for (let ran = 0; ran < 60_000; ran += 10_000) {
        await vi.advanceTimersByTimeAsync(10_000);
        await vi.waitFor(async () => expect(await age()).toBeLessThan(1_000), { interval: 1 });
      }
      // This gateway stood still past 30 s (a paused container): another namespace's start took the folder over.
      await writeFile(pidFile(), `${GONE}@${other()} 4242`);
      await vi.advanceTimersByTimeAsync(10_000);
      await vi.waitFor(() => expect(lost).toHaveLength(1), { interval: 1 });
      expect(lost[0]).toBe(
        `${pidFile()} now names another gateway (${GONE}@${other()}): it took ${dir} over while this one stood still for more than 30 s; stop this gateway`,
      );
      await vi.advanceTimersByTimeAsync(10_000);
      expect(lost).toHaveLength(1);
      await lock.release();
      expect(await readFile(pidFile(), 'utf8')).toBe(`${GONE}@${other()} 4242`); // the other's, left
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('its data folder moved away while it runs: says so once (gateway.pid is gone), and touches nothing', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const lost: string[] = [];
      const lock = await lockDataDir(dir, { onLost: (line) => lost.push(line) });
      await rename(dir, `${dir}-moved`);
      // Before: nothing was said; the gateway went on writing new files where the folder had been.
      await vi.advanceTimersByTimeAsync(10_000);
      await vi.waitFor(() => expect(lost).toHaveLength(1), { interval: 1 });
      expect(lost[0]).toBe(
        `${pidFile()} is gone: ${dir} was moved or deleted while this gateway ran (or the file removed by hand); stop this gateway`,
      );
      expect(lock.held()).toBe(false);
      await lock.release();
      expect(existsSync(dir)).toBe(false);
      await rm(`${dir}-moved`, { recursive: true, force: true });
    } finally {
      vi.useRealTimers();
    }
  });

  it('held(): after a stand-still longer than 20 s, gateway.pid is looked at then and there (no timer waited for)', async () => {
    // Its clock (performance.now) moved on by hand: the stand-still. Its 10 s timer does not run meanwhile.
    vi.useFakeTimers({ toFake: ['performance'] });
    try {
      const lost: string[] = [];
      const lock = await lockDataDir(dir, { onLost: (line) => lost.push(line) });
      expect(lock.held()).toBe(true);
      // Stood still 31 s, the file still its own: held, and touched then (fresh again for a start elsewhere).
      const old = new Date(Date.now() - 31_000);
      await utimes(pidFile(), old, old);
      vi.advanceTimersByTime(31_000);
      expect(lock.held()).toBe(true);
      expect(Date.now() - (await stat(pidFile())).mtimeMs).toBeLessThan(5_000);
      // Another namespace's start took it over: within 20 s of the last look it is trusted, after that looked at.
      await writeFile(pidFile(), `${GONE}@${other()} 4242`);
      expect(lock.held()).toBe(true);
      vi.advanceTimersByTime(21_000);
      // Before: nothing looked before the timer's next turn; what ran first wrote on.
      expect(lock.held()).toBe(false);
      expect(lock.held()).toBe(false);
      expect(lost).toEqual([
        `${pidFile()} now names another gateway (${GONE}@${other()}): it took ${dir} over while this one stood still for more than 30 s; stop this gateway`,
      ]);
      await lock.release();
      expect(await readFile(pidFile(), 'utf8')).toBe(`${GONE}@${other()} 4242`);
    } finally {
      vi.useRealTimers();
    }
  });

  it.skipIf(!canUnshare)(
    'a real gateway in a pid namespace of its own (pid 1 there) holds the folder: a start here does not take it',
    async () => {
      const module = path.resolve('local/store/data-dir-lock.ts');
      const code = `const { lockDataDir } = await import(${JSON.stringify(module)});
        await lockDataDir(${JSON.stringify(dir)}); console.log('held', process.pid); setInterval(() => {}, 1000);`;
      const container = spawn(
        'unshare',
        [
          '-Urpf',
          '--mount-proc',
          '--kill-child',
          process.execPath,
          '--import',
          'tsx',
          '--input-type=module',
          '-e',
          code,
        ],
        { cwd: PROJECT_ROOT },
      );
      try {
        const said = await new Promise<string>((resolve) => {
          let out = '';
          container.stdout.on('data', (d) => {
            out += d;
            if (out.includes('\n')) resolve(out.trim());
          });
        });
        expect(said).toBe('held 1');
        const theirs = await readFile(pidFile(), 'utf8');
        expect(theirs).toMatch(/^1@[0-9a-f]{8} \d+$/);
        const notices: string[] = [];
        let looks = 0;
        // Before: pid 1 is this start's own ancestor here (init): the folder was taken over at once.
        await expect(
          withTimeStill(() =>
            lockDataDir(dir, {
              notice: (line) => notices.push(line),
              wait: async () => {
                if (++looks === 3) throw new Error('still waiting');
              },
            }),
          ),
        ).rejects.toThrow('still waiting');
        expect(await readFile(pidFile(), 'utf8')).toBe(theirs);
        expect(notices).toEqual([expect.stringContaining('names pid 1 of another pid namespace or host')]);
      } finally {
        // SIGKILL: pid 1 of a namespace ignores SIGTERM; --kill-child takes the child with unshare.
        container.kill('SIGKILL');
      }
    },
    120_000, // its process imports through tsx: over 20 s at load 28; the limit only catches a hang
  );
});

const canUnshare = (() => {
  try {
    return spawnSync('unshare', ['-Urpf', '--mount-proc', 'true']).status === 0;
  } catch {
    return false;
  }
})();
