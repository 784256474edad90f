import { closeSync, fstatSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { OWNER_DIR, OWNER_FILE } from '../../functions/shared/local-files.ts';

/**
 * For `webhook-gateway start`: the handlers' structured log lines and EMF metric lines (JSON on stdout/stderr, as Lambda
 * would send them to CloudWatch) go to `<dataDir>/logs/handlers.jsonl` so the console stays readable.
 * Set LOCAL_LOG_TO_STDOUT=true to see them inline instead.
 */
/** How often the sink looks whether its file was moved aside (by the retention sweep) and opens a fresh one. */
const REOPEN_CHECK_MS = 1_000;

export function divertHandlerLogs(dataDir: string, now: () => number = Date.now): string {
  const file = path.join(dataDir, 'logs', 'handlers.jsonl');
  if (process.env.LOCAL_LOG_TO_STDOUT?.toLowerCase() === 'true') return '(stdout)'; // a flag, in any case (config.ts)
  // The first thing `start` writes: a new data folder is made its owner's alone here (as startGateway would), and
  // the log (requests and answers) is the owner's too.
  mkdirSync(dataDir, { recursive: true, mode: OWNER_DIR });
  mkdirSync(path.dirname(file), { recursive: true, mode: OWNER_DIR });
  // Opened once and appended to (synchronously), rather than opened and closed again for every line. The lines
  // logged in one run of the code (before it next awaits) go in one write, made in a microtask queued at the first
  // of them: before any continuation that run queued (the next state among them), so a state's lines are in the file
  // before the next state runs, as when each line was written alone (a write each, 12 a conversation before:
  // docs/performance.md §2, perf24). What is left at the process's exit (process.exit() right after a line) is written
  // then.
  let fd = openSync(file, 'a', OWNER_FILE);
  const toStderr = process.stderr.write.bind(process.stderr) as (text: string) => boolean;
  // A log line that cannot be written (the disk full) is dropped, said once on stderr: a handler's log call must not
  // fail its step (after a delivery was made, that failure would send it again), as a Lambda's log never does.
  let dropping = false;
  // The retention sweep moves the file aside once its first line is a day old (local/store/retention.ts): the lines
  // go on into a fresh handlers.jsonl, not into the moved file (which then grew for good, never rotated again, while
  // `.data/logs/handlers.jsonl` was gone). Looked at once a second, not per line.
  let checkedAt = now();
  const followRotation = () => {
    if (now() - checkedAt < REOPEN_CHECK_MS) return;
    checkedAt = now();
    try {
      if (statSync(file, { throwIfNoEntry: false })?.ino === fstatSync(fd).ino) return;
      mkdirSync(path.dirname(file), { recursive: true, mode: OWNER_DIR });
      const fresh = openSync(file, 'a', OWNER_FILE);
      closeSync(fd);
      fd = fresh;
      dropping = false; // a line cut in the moved file is not continued here
    } catch {
      // Not reopened (the disk full, the folder refused): the lines go on into the file already open.
    }
  };
  let pending: string[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const text = pending.length === 1 ? pending[0]! : pending.join('');
    pending = [];
    followRotation();
    try {
      writeSync(fd, dropping ? `\n${text}` : text); // a line the failure may have cut is ended first
      dropping = false;
    } catch (error) {
      if (dropping) return;
      dropping = true;
      toStderr(
        `webhook-gateway: the handlers' log ${file} cannot be written (${(error as Error).message}): its lines are dropped until it can\n`,
      );
    }
  };
  process.once('exit', flush);
  const append = (line: string) => {
    if (pending.length === 0) queueMicrotask(flush);
    pending.push(line);
  };
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : null;
      if (text?.startsWith('{"') && (text.includes('"level":') || text.includes('"_aws":'))) {
        append(text.endsWith('\n') ? text : `${text}\n`);
        return true;
      }
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
  return file;
}
