import { statSync } from 'node:fs';
import path from 'node:path';

/**
 * A file of the data folder that is not what it should hold (an UnreadableFileError: cut short by a full disk or a
 * crash of another tool, edited by hand): what the operator does about it, by the folder it is in
 * (docs/operations.md, "After a crash"). Shared by the commands, the console and the gateway's own lines.
 */
const ADVICE: Record<string, string> = {
  idempotency:
    'the gateway cannot tell whether the request of that key already ran, so it runs none: see whether it did (`conversations list --source <source>`), then delete it: the next retry with the key runs (delivered under the same webhook-id a first run had)',
  status:
    'delete it: GET /conversations/<id> then answers 404 NOT_FOUND; `conversations show <id>` and the export still have the conversation',
  'failed-deliveries':
    'it held what that conversation is still owed (its redelivery state): the schedule and redrives leave it out; put it back, or delete it and `deliveries resend <id>` delivers the conversation again under the same webhook-id',
  endpoints:
    'delete it to start that receiver afresh (its run-time URL, rate, pause and health are forgotten; docs/operations.md)',
};

/** The file an UnreadableFileError's message names (`<file> is not …`): all a workflow that failed on one keeps. */
export function fileOfUnreadable(message: string): string | null {
  const at = message.indexOf(' is not ');
  return at > 0 ? message.slice(0, at) : null;
}

/**
 * A lock (`<file>.lock`) or a claim on one (`<file>.lock.<digits>.0.tmp`): it holds no state, and its message says
 * what to do (functions/shared/local-files.ts, lockText): removing it forgets nothing.
 */
const isLock = (file: string) => /\.lock(\.\d+\.0\.tmp)?$/.test(file);

/** The kind of state a damaged file held, by its folder (`idempotency`, `status`, `endpoints`…), or null. */
export function damagedFileKind(file: string): string | null {
  if (isLock(file)) return null;
  const folder = path.basename(path.dirname(file));
  return Object.hasOwn(ADVICE, folder) ? folder : null;
}

/** The error's message (it names the file) and what to do about that file. */
export function damagedFileMessage(message: string): string {
  const file = fileOfUnreadable(message);
  if (file !== null && isLock(file)) return message;
  const kind = file === null ? null : damagedFileKind(file);
  return `${message}: ${kind === null ? 'mend it or delete it (docs/operations.md, "After a crash")' : ADVICE[kind]}`;
}

/** The first entry on the way to `file` that is there but is no folder (stat: a link to a folder is one), or null. */
function fileInTheWay(file: string): string | null {
  const parts = path.resolve(file).split(path.sep);
  for (let i = 2; i <= parts.length; i++) {
    const entry = parts.slice(0, i).join(path.sep);
    try {
      if (!statSync(entry).isDirectory()) return entry;
    } catch {
      return null;
    }
  }
  return null;
}

/**
 * A path of the data folder that is not the kind the gateway keeps there (a file where it keeps a folder: ENOTDIR,
 * or EEXIST making it; a folder where it keeps a file: EISDIR), said with the entry in the way and what to do; null for any other error.
 */
export function wrongKindMessage(error: unknown): string | null {
  const { code, path: file, message, syscall } = (error ?? {}) as NodeJS.ErrnoException;
  // A folder made (recursively) where a file is: EEXIST.
  if ((code === 'ENOTDIR' || (code === 'EEXIST' && syscall === 'mkdir')) && typeof file === 'string') {
    const entry = fileInTheWay(file) ?? file;
    return `${entry} is a file where the gateway keeps a folder (${message}): move it aside or delete it (a restart of the gateway makes the folder again)`;
  }
  if (code === 'EISDIR')
    return `${typeof file === 'string' ? file : 'a file of the data folder'} is a folder where the gateway keeps a file (${message}): move it aside or delete it`;
  return null;
}

/**
 * A workflow that failed on such an error in a handler (the cause of its `Error` failure is Node's message:
 * `ENOTDIR: not a directory, open '<file>'`): the same message, or null.
 */
export function wrongKindInCause(error: string | undefined, cause: string | undefined): string | null {
  const m = error === 'Error' && cause ? /^(ENOTDIR|EISDIR|EEXIST): .*, ([a-z]+) '([^']+)'/.exec(cause) : null;
  return m ? wrongKindMessage({ code: m[1], syscall: m[2], path: m[3], message: cause }) : null;
}
