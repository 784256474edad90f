import { errorBody } from '../../functions/domain/gateway-contract.ts';
import { damagedFileKind, damagedFileMessage, fileOfUnreadable, wrongKindInCause } from '../store/damaged-files.ts';

/**
 * The local gateway's data folder refusing a write, or a read (docs/contract.md#errors, `STORAGE_UNAVAILABLE`): full,
 * over its quota, read-only or no longer the owner's, the process out of file descriptors (EMFILE, ENFILE), or a file's
 * lock held by another process past the request's wait (EBUSY). Not a bug of the gateway and not the request's fault:
 * the request is answered 503 (to be sent again once the folder takes it; an `Idempotency-Key` makes that safe), saying
 * which it refused, and the operator is told which file and why, in one line.
 */
const STORAGE_CODES = ['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EMFILE', 'ENFILE', 'EBUSY'] as const;

const WHY: Record<(typeof STORAGE_CODES)[number], string> = {
  ENOSPC: 'no space left on its device',
  EDQUOT: 'over its disk quota',
  EROFS: 'on a read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  // Out of file descriptors (`ulimit -n`, or the whole system's): no file of the folder can be opened until some close.
  EMFILE: 'too many open files in the gateway process',
  ENFILE: 'too many open files on this system',
  // A lock another process (a command, a gateway in another container) held all the while the request would wait
  // (functions/shared/local-files.ts, LockBusyError): nothing was changed.
  EBUSY: 'a file of it is locked by another process',
};

export interface StorageFailure {
  code: (typeof STORAGE_CODES)[number];
  /** The system's message, naming the file when it did (`ENOSPC: no space left on device, write`). */
  message: string;
  /** What was refused, by the system call: a read (`read '<file>'` from the stores' reads), a write, or an open. */
  operation: 'read' | 'write' | 'open';
}

function isStorageCode(code: unknown): code is StorageFailure['code'] {
  return typeof code === 'string' && (STORAGE_CODES as readonly string[]).includes(code);
}

const READS = new Set(['read', 'scandir', 'opendir', 'stat', 'lstat', 'readlink', 'access', 'realpath']);

/**
 * What was refused: a full disk, a quota or a read-only file system only ever refuse writes; too many open files, an
 * open; a permission, by the
 * system call. An `open` says neither (the stores' reads name theirs `read`: functions/shared/local-files.ts,
 * readRefused), so it is told as such rather than called a write.
 */
function operationOf(code: StorageFailure['code'], syscall: string | undefined): StorageFailure['operation'] {
  if (code === 'EMFILE' || code === 'ENFILE') return 'open';
  if (code !== 'EACCES' && code !== 'EPERM') return 'write';
  if (syscall === undefined || syscall === 'open') return 'open';
  return READS.has(syscall) ? 'read' : 'write';
}

/** A thrown error that is a refused read or write of the file system, or null. */
export function storageFailureOf(error: unknown): StorageFailure | null {
  const { code, message, syscall } = (error ?? {}) as { code?: unknown; message?: unknown; syscall?: unknown };
  return isStorageCode(code)
    ? {
        code,
        message: String(message ?? code),
        operation: operationOf(code, typeof syscall === 'string' ? syscall : undefined),
      }
    : null;
}

/**
 * A workflow that failed on such an error in a handler (the cause of its `Error` failure is Node's message, which
 * starts with the code and ends with the system call: `ENOSPC: no space left on device, open '…'`), or null.
 */
export function storageFailureInCause(error: string | undefined, cause: string | undefined): StorageFailure | null {
  if (error !== 'Error' || !cause) return null;
  const code = /^([A-Z]+): /.exec(cause)?.[1];
  const syscall = /, ([a-z]+)(?: '[^']*')*$/.exec(cause)?.[1];
  return isStorageCode(code) ? { code, message: cause, operation: operationOf(code, syscall) } : null;
}

/**
 * The storage failure a conversation workflow met on its way to ConversationUnanswered, or null: once the data folder
 * refuses writes after the agent answered, each later step fails on the journal (Catch goes on to the next), and the
 * workflow ends on that fallback, whose own error says nothing of the folder. The last such failure among its events.
 */
export function storageFailureBefore(
  error: string | undefined,
  events: readonly { error?: string; cause?: unknown }[],
): StorageFailure | null {
  if (error !== 'ConversationUnanswered') return null;
  for (const event of [...events].reverse()) {
    const failure = typeof event.cause === 'string' ? storageFailureInCause(event.error, event.cause) : null;
    if (failure) return failure;
  }
  return null;
}

const REFUSED = { read: 'read', write: 'write', open: 'open a file of' } as const;

/**
 * Retry-After of a request the data folder refused (docs/contract.md#errors): longer than on AWS (2 s, FAILURE_HEADERS
 * of functions/domain/gateway-contract.ts), on purpose. There a refusal is a throttled or stalled store call that passes
 * in seconds; here a full disk, a quota, a read-only mount or a permission waits for the operator, and callers
 * retrying every 2 s until then would only add to the console's lines.
 */
export const STORAGE_RETRY_AFTER_SECONDS = 30;

/** What the data folder refused, said to a client: `cannot write its data folder (ENOSPC: …)`, never a path. */
export const storageRefusal = (failure: StorageFailure) =>
  `cannot ${REFUSED[failure.operation]} its data folder (${failure.code}: ${WHY[failure.code]})`;

/** The 503 answer: what failed (a read or a write), never a path of the data folder (the operator's line names it). */
export function storageUnavailableBody(failure: StorageFailure) {
  return errorBody('STORAGE_UNAVAILABLE', `the local gateway ${storageRefusal(failure)}: send it again once it can`);
}

/** The operator's line: the folder and the system's message (naming the file), no stack. */
export function storageFailureLine(
  dataDir: string,
  failure: StorageFailure,
  what: string,
  answered = 'STORAGE_UNAVAILABLE',
): string {
  const refused = failure.operation === 'open' ? 'an open' : `a ${failure.operation}`;
  return `webhook-gateway: ${what}: the data folder ${dataDir} refused ${refused} (${failure.message}); answered 503 ${answered} until it takes it again`;
}

/**
 * A workflow that failed on a file of the data folder that is not what it should hold (UnreadableFileError, whose
 * message — the failure's cause — names it), or on a file where a folder should be (ENOTDIR) or the other way round:
 * the operator's line, the message with what to do about that file; or null.
 */
export function damagedFileInCause(error: string | undefined, cause: string | undefined): string | null {
  return error === 'UnreadableFileError' && cause ? damagedFileMessage(cause) : wrongKindInCause(error, cause);
}

/** What a damaged file of each kind (damaged-files.ts) means to the request that needed it. */
const DAMAGED: Record<string, string> = {
  idempotency:
    "its record of this request's Idempotency-Key is damaged, so it cannot tell whether the request already ran: nothing was run",
  status: 'its status record of this conversation is damaged (the conversation is not unknown)',
};

/**
 * The answer to a request that needs a damaged file (docs/contract.md#errors, `STATE_UNREADABLE`): never run as if
 * the file were not there, and never a path of the data folder (the operator's line names it). A damaged
 * idempotency record is said so: the gateway cannot tell whether the request already ran. `operatorDetail`: the
 * answer to the local operator (the commands, the console), who is told the file and what to do.
 */
export function stateUnreadableBody(cause: string | undefined, operatorDetail?: string) {
  const file = cause ? fileOfUnreadable(cause) : null;
  const what =
    (file !== null && DAMAGED[damagedFileKind(file) ?? '']) ||
    'a file of its data folder this request needs is damaged';
  if (operatorDetail) return errorBody('STATE_UNREADABLE', operatorDetail);
  return errorBody(
    'STATE_UNREADABLE',
    `the local gateway cannot read its stored state: ${what}. Its console names the file and what to do; send the request again once the operator has mended or deleted it`,
  );
}
