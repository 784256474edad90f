import { errorBody } from '../../functions/domain/gateway-contract.ts';
import { damagedFileKind, damagedFileMessage, fileOfUnreadable } from '../store/damaged-files.ts';

/**
 * The local gateway's data folder refusing a write (docs/contract.md#errors, `STORAGE_UNAVAILABLE`): full, over its
 * quota, read-only or no longer the owner's. Not a bug of the gateway and not the request's fault: the request is
 * answered 503 (to be sent again once the folder takes writes; an `Idempotency-Key` makes that safe) and the operator
 * is told which folder and why, in one line.
 */
const STORAGE_CODES = ['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM'] as const;

const WHY: Record<(typeof STORAGE_CODES)[number], string> = {
  ENOSPC: 'no space left on its device',
  EDQUOT: 'over its disk quota',
  EROFS: 'on a read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
};

export interface StorageFailure {
  code: (typeof STORAGE_CODES)[number];
  /** The system's message, naming the file when it did (`ENOSPC: no space left on device, write`). */
  message: string;
}

function isStorageCode(code: unknown): code is StorageFailure['code'] {
  return typeof code === 'string' && (STORAGE_CODES as readonly string[]).includes(code);
}

/** A thrown error that is a refused write of the file system, or null. */
export function storageFailureOf(error: unknown): StorageFailure | null {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return isStorageCode(code) ? { code, message: String(message ?? code) } : null;
}

/**
 * A workflow that failed on such an error in a handler (the cause of its `Error` failure is Node's message, which
 * starts with the code: `ENOSPC: no space left on device, open '…'`), or null.
 */
export function storageFailureInCause(error: string | undefined, cause: string | undefined): StorageFailure | null {
  if (error !== 'Error' || !cause) return null;
  const code = /^([A-Z]+): /.exec(cause)?.[1];
  return isStorageCode(code) ? { code, message: cause } : null;
}

export const STORAGE_RETRY_AFTER_SECONDS = 30;

/** The 503 answer: what failed, never a path of the data folder (the operator's line names it). */
export function storageUnavailableBody(failure: StorageFailure) {
  return errorBody(
    'STORAGE_UNAVAILABLE',
    `the local gateway cannot write its data folder (${failure.code}: ${WHY[failure.code]}): send it again once it can`,
  );
}

/** The operator's line: the folder and the system's message, no stack. */
export function storageFailureLine(dataDir: string, failure: StorageFailure, what: string): string {
  return `webhook-gateway: ${what}: the data folder ${dataDir} refused a write (${failure.message}); answered 503 STORAGE_UNAVAILABLE until it takes writes again`;
}

/**
 * A workflow that failed on a file of the data folder that is not what it should hold (UnreadableFileError, whose
 * message — the failure's cause — names it): the operator's line, the message with what to do about that file; or
 * null.
 */
export function damagedFileInCause(error: string | undefined, cause: string | undefined): string | null {
  return error === 'UnreadableFileError' && cause ? damagedFileMessage(cause) : null;
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
