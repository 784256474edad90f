/**
 * The idempotency store: one port, two adapters chosen by configuration.
 * - IDEMPOTENCY_TABLE_NAME: DynamoDB, a conditional write claims a key (AWS);
 * - IDEMPOTENCY_DIR: one file per key, linked into place only where none is (local);
 * - neither: idempotency is off.
 */
import { randomBytes } from 'node:crypto';
import { renameSync, rmSync } from 'node:fs';
import { link, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import {
  claimedBySameRequest,
  expiresAt,
  type IdempotencyRecord,
  IN_PROGRESS_TTL_SECONDS,
  isExpired,
  notIdempotencyRecord,
} from '../domain/idempotency.ts';
import { IDEMPOTENCY_KEY_LOST_EVENT } from '../domain/observability.ts';
import { conditionFailed, dynamoDb } from './clients/dynamodb.ts';
import { readDataFileSync, UnreadableFileError } from './local-files.ts';
import { logger } from './powertools.ts';
import { settings } from './settings.ts';

/** What a claim holds the key for. */
export interface Claim {
  /** The conversation the request starts, unless the key turns out to be this request's claim already. */
  conversationId: string;
  /** requestIdentity of the request: tells a retry of one Validate task from another request. */
  requestId: string;
  /** What the request asks (requestFingerprint), kept so a reuse for another request is told apart. */
  fingerprint?: string;
  /** `async` when the request asked for `Prefer: respond-async`. */
  responseMode?: 'async';
}

/**
 * `claimed`: the key is this request's, for `conversation_id` — the one asked for, or the one an earlier attempt of
 * the same request claimed it for; otherwise the claim of another request that holds it.
 */
export type ClaimResult = { claimed: true; conversation_id: string } | { claimed: false; existing: IdempotencyRecord };

/**
 * What completing or freeing a conversation's key did: `settled`, or nothing because the key is no longer that
 * conversation's claim: another request holds it (`heldBy`, its conversation), or it is gone (`heldBy` null: it
 * expired; completing never writes a key back). From settleKey, `heldBy` the conversation itself: the caller's
 * deadline cut the write, and the key stays its in-progress claim until that lapses.
 */
export type SettleResult = { settled: true } | { settled: false; heldBy: string | null };

export interface IdempotencyStore {
  claim(pk: string, claim: Claim, now: Date, signal?: AbortSignal): Promise<ClaimResult>;
  /**
   * Keep the answer for 24 h, if the key is still `conversationId`'s claim. `signal`, here and in `release`: the
   * caller's deadline (Export's budgetSignal) ends the DynamoDB call with an AbortError; the files ignore it.
   */
  complete(
    pk: string,
    conversationId: string,
    response: unknown,
    now: Date,
    signal?: AbortSignal,
  ): Promise<SettleResult>;
  /** Free the key, if it is still `conversationId`'s claim (a key already gone counts as freed). */
  release(pk: string, conversationId: string, signal?: AbortSignal): Promise<SettleResult>;
  /**
   * Free a key only while it is still in progress (a completed one keeps its answer). After a restart of the local
   * gateway no execution of the old process runs any more, so its in-progress claims are freed at once instead of
   * lapsing after IN_PROGRESS_TTL_SECONDS. Returns whether a claim was freed. `requestId` (its requestIdentity): only
   * that request's claim, for a gateway still running other executions (an execution the data folder cut).
   */
  releaseInProgress(pk: string, requestId?: string): Promise<boolean>;
  /**
   * Local only (none on AWS, where nothing starts a run again): the in-progress claim of `conversationId` made fresh
   * (IN_PROGRESS_TTL_SECONDS from `now`) as the local gateway's recovery starts its run again, even when it lapsed
   * while the gateway was down: the run then settles it as it ends. Returns whether it was this conversation's claim.
   */
  renewInProgress?(pk: string, conversationId: string, now: Date): Promise<boolean>;
}

const ttl = () => settings().idempotencyTtlSeconds;

class DynamoIdempotencyStore implements IdempotencyStore {
  constructor(private readonly table: string) {}

  /**
   * One conditional write: the key is free, or its claim lapsed. When the condition fails, DynamoDB returns the item
   * that failed it (ALL_OLD), as it was then, so no second read can miss a key freed in between: a claim of another
   * request, or this request's own from an earlier attempt (the workflow's Retry of Validate, or the SDK's retry of a
   * write that had succeeded). The latter is the same claim; it is not written again (that would replace the id the
   * earlier attempt chose with this attempt's new one), and its conversation goes on. A failed condition without an
   * item (it should always have one) is tried once more.
   */
  async claim(pk: string, claim: Claim, now: Date, signal?: AbortSignal): Promise<ClaimResult> {
    const { sdk, db } = await dynamoDb();
    const nowS = Math.floor(now.getTime() / 1000);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await db.send(
          new sdk.PutItemCommand({
            TableName: this.table,
            Item: {
              pk: { S: pk },
              status: { S: 'in_progress' },
              conversation_id: { S: claim.conversationId },
              request_id: { S: claim.requestId },
              created_at: { S: now.toISOString() },
              expires_at: { N: String(expiresAt(now, IN_PROGRESS_TTL_SECONDS)) },
              ...(claim.fingerprint ? { request_fingerprint: { S: claim.fingerprint } } : {}),
              ...(claim.responseMode ? { response_mode: { S: claim.responseMode } } : {}),
            },
            ConditionExpression: 'attribute_not_exists(pk) OR expires_at <= :now',
            ExpressionAttributeValues: { ':now': { N: String(nowS) } },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
          { abortSignal: signal },
        );
        return { claimed: true, conversation_id: claim.conversationId };
      } catch (error) {
        const item = conditionFailedItem(error);
        if (item === undefined) continue;
        const existing = recordOf(pk, item);
        return claimedBySameRequest(existing, claim.requestId)
          ? { claimed: true, conversation_id: existing.conversation_id }
          : { claimed: false, existing };
      }
    }
    throw new Error('could not claim the idempotency key: its condition failed twice without an item');
  }

  async complete(
    pk: string,
    conversationId: string,
    response: unknown,
    now: Date,
    signal?: AbortSignal,
  ): Promise<SettleResult> {
    const { sdk, db } = await dynamoDb();
    try {
      await db.send(
        new sdk.UpdateItemCommand({
          TableName: this.table,
          Key: { pk: { S: pk } },
          UpdateExpression: 'SET #s = :completed, #r = :response, expires_at = :expires',
          // Never on another request's claim, nor on a key gone (an update would write it back without its claim),
          // nor over the answer already kept (firstAnswerKept).
          ConditionExpression: 'conversation_id = :cid AND #s = :in_progress',
          ExpressionAttributeNames: { '#s': 'status', '#r': 'response' },
          ExpressionAttributeValues: {
            ':completed': { S: 'completed' },
            ':in_progress': { S: 'in_progress' },
            ':response': { S: JSON.stringify(response) },
            ':expires': { N: String(expiresAt(now, ttl())) },
            ':cid': { S: conversationId },
          },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
        { abortSignal: signal },
      );
      return { settled: true };
    } catch (error) {
      const item = conditionFailedItem(error);
      const held = { conversation_id: item?.conversation_id?.S ?? null, status: item?.status?.S };
      return firstAnswerKept(held, conversationId)
        ? { settled: true }
        : { settled: false, heldBy: held.conversation_id };
    }
  }

  async release(pk: string, conversationId: string, signal?: AbortSignal): Promise<SettleResult> {
    const { sdk, db } = await dynamoDb();
    return settledUnlessHeld(
      db.send(
        new sdk.DeleteItemCommand({
          TableName: this.table,
          Key: { pk: { S: pk } },
          ConditionExpression: 'attribute_not_exists(pk) OR conversation_id = :cid',
          ExpressionAttributeValues: { ':cid': { S: conversationId } },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
        { abortSignal: signal },
      ),
    );
  }

  async releaseInProgress(pk: string, requestId?: string): Promise<boolean> {
    const { sdk, db } = await dynamoDb();
    try {
      await db.send(
        new sdk.DeleteItemCommand({
          TableName: this.table,
          Key: { pk: { S: pk } },
          ConditionExpression: `#s = :in_progress${requestId === undefined ? '' : ' AND request_id = :request'}`,
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: {
            ':in_progress': { S: 'in_progress' },
            ...(requestId === undefined ? {} : { ':request': { S: requestId } }),
          },
        }),
      );
      return true;
    } catch (error) {
      if (conditionFailed(error)) return false;
      throw error;
    }
  }
}

/**
 * The key already keeps this conversation's answer: a second run of it (an asynchronous start is at-least-once on
 * AWS: Step Functions may run the same conversation twice, docs/deploy.md) or a second Export of one run (its
 * CloseWithoutExport after Export completed the key). The first answer stays, as the status record keeps its first
 * end: a retry with the key is answered what the first run answered, never one answer, then another.
 */
function firstAnswerKept(held: { conversation_id: string | null; status?: string }, conversationId: string): boolean {
  return held.conversation_id === conversationId && held.status === 'completed';
}

/**
 * A write conditional on the key being `conversationId`'s claim: settled, or not because the condition failed — the
 * item it returned (ALL_OLD) names the conversation that holds the key, none when the key is gone.
 */
async function settledUnlessHeld(write: Promise<unknown>): Promise<SettleResult> {
  try {
    await write;
    return { settled: true };
  } catch (error) {
    return { settled: false, heldBy: conditionFailedItem(error)?.conversation_id?.S ?? null };
  }
}

/**
 * The item a failed condition returned (ReturnValuesOnConditionCheckFailure: ALL_OLD), if one came back; any error
 * other than ConditionalCheckFailedException is thrown on.
 */
function conditionFailedItem(error: unknown): Record<string, AttributeValue> | undefined {
  if (!conditionFailed(error)) throw error;
  return (error as { Item?: Record<string, AttributeValue> }).Item;
}

function recordOf(pk: string, item: Record<string, AttributeValue>): IdempotencyRecord {
  return {
    pk,
    status: item.status?.S === 'completed' ? 'completed' : 'in_progress',
    conversation_id: item.conversation_id?.S ?? '',
    ...(item.request_id?.S ? { request_id: item.request_id.S } : {}),
    ...(item.request_fingerprint?.S ? { request_fingerprint: item.request_fingerprint.S } : {}),
    ...(item.response_mode?.S === 'async' ? { response_mode: 'async' as const } : {}),
    response: item.response?.S,
    created_at: item.created_at?.S ?? '',
    expires_at: Number(item.expires_at?.N ?? 0),
  };
}

/**
 * One file per key. Each operation decides on the record it finds and acts on that decision in one synchronous step
 * (read, then rename or unlink), as a DynamoDB condition and its write are one step: no other operation of this
 * process (the gateway's other conversations, the retention sweep) comes in between. A new claim is linked into place
 * asynchronously, by libuv's threads, at any moment: it only ever lands where no record is, so a step that found no
 * record never removes one (the link may just have landed), and a step that found one acts on that one.
 */
const RECORD = 'an idempotency record';

class FileIdempotencyStore implements IdempotencyStore {
  constructor(private readonly dir: string) {}

  private file(pk: string): string {
    if (!/^[0-9a-f]{64}$/.test(pk)) throw new Error('bad idempotency key hash');
    return path.join(this.dir, `${pk}.json`);
  }

  /**
   * The record as it is now: null when there is none, `damaged` when its file is not a record (not JSON, or JSON of
   * another shape: cut short by a full disk, edited by hand), with the error that names it.
   */
  private found(pk: string): IdempotencyRecord | { damaged: UnreadableFileError } | null {
    const file = this.file(pk);
    let value: unknown;
    try {
      // Capped, and only a regular file (a link to /dev/zero was read until the process died): local-files.ts.
      const bytes = readDataFileSync(file);
      if (bytes === null) return null;
      value = JSON.parse(bytes.toString('utf8'));
    } catch (error) {
      if (error instanceof UnreadableFileError) return { damaged: error };
      if (error instanceof SyntaxError) return { damaged: new UnreadableFileError(file, error.message) };
      throw error;
    }
    const wrong = notIdempotencyRecord(value);
    return wrong === null ? (value as IdempotencyRecord) : { damaged: new UnreadableFileError(file, wrong, RECORD) };
  }

  /**
   * The record as it is now, if there is one that can be read. A damaged one is no conversation's claim: completing
   * or freeing a key leaves it as it is (a claim of it is refused: `claim`).
   */
  private current(pk: string): IdempotencyRecord | null {
    const found = this.found(pk);
    return found === null || 'damaged' in found ? null : found;
  }

  /**
   * Write `record` aside, then let `commit` put it into place (link it for a claim, rename it over the old one for a
   * change): a reader never meets a record half-written — which it would take for a lapsed claim and free — not while
   * it is being written, nor after a crash in the middle of the write. What is left aside is removed.
   */
  private async writeAside<T>(record: IdempotencyRecord, commit: (aside: string, file: string) => Promise<T> | T) {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = this.file(record.pk);
    const aside = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(aside, JSON.stringify(record), { mode: 0o600 }); // it keeps the answer
      return await commit(aside, file);
    } finally {
      await rm(aside, { force: true });
    }
  }

  /** As the DynamoDB adapter: a key already this request's claim is not written again; its conversation goes on. */
  async claim(pk: string, claim: Claim, now: Date): Promise<ClaimResult> {
    const record: IdempotencyRecord = {
      pk,
      status: 'in_progress',
      conversation_id: claim.conversationId,
      request_id: claim.requestId,
      ...(claim.fingerprint ? { request_fingerprint: claim.fingerprint } : {}),
      ...(claim.responseMode ? { response_mode: claim.responseMode } : {}),
      created_at: now.toISOString(),
      expires_at: expiresAt(now, IN_PROGRESS_TTL_SECONDS),
    };
    const linked = (aside: string, file: string) =>
      link(aside, file).then(
        () => true,
        (error: NodeJS.ErrnoException) => {
          if (error.code === 'EEXIST') return false;
          throw error;
        },
      );
    for (let tries = 0; tries < 5; tries++) {
      if (await this.writeAside(record, linked)) return { claimed: true, conversation_id: claim.conversationId };
      const existing = this.found(pk);
      if (existing === null) continue; // freed since: claim again
      // A damaged record may have been this key's answer or a claim still running: taken for a free key, it would
      // run the request a second time. Refused, naming the file (docs/operations.md, "After a crash").
      if ('damaged' in existing) throw existing.damaged;
      if (!isExpired(existing, now)) {
        return claimedBySameRequest(existing, claim.requestId)
          ? { claimed: true, conversation_id: existing.conversation_id }
          : { claimed: false, existing };
      }
      rmSync(this.file(pk), { force: true }); // lapsed, in the step that read it: free it, claim again
    }
    throw new Error('could not claim the idempotency key');
  }

  /**
   * As the DynamoDB adapter: only the conversation's own claim is completed, once (firstAnswerKept); a key gone is not
   * written back.
   */
  async complete(pk: string, conversationId: string, response: unknown, now: Date): Promise<SettleResult> {
    const existing = this.current(pk);
    if (existing && firstAnswerKept(existing, conversationId)) return { settled: true };
    if (existing?.conversation_id !== conversationId)
      return { settled: false, heldBy: existing?.conversation_id ?? null };
    const completed = { ...existing, status: 'completed' as const, response: JSON.stringify(response) };
    return this.writeAside({ ...completed, expires_at: expiresAt(now, ttl()) }, (aside, file): SettleResult => {
      const holder = this.current(pk); // still this conversation's claim, as it is renamed over
      if (holder && firstAnswerKept(holder, conversationId)) return { settled: true };
      if (holder?.conversation_id !== conversationId)
        return { settled: false, heldBy: holder?.conversation_id ?? null };
      renameSync(aside, file);
      return { settled: true };
    });
  }

  /** As the DynamoDB adapter: only the conversation's own claim is freed. */
  async release(pk: string, conversationId: string): Promise<SettleResult> {
    const existing = this.current(pk);
    if (!existing) return { settled: true }; // nothing to free (and a claim linked just now is not this one)
    if (existing.conversation_id !== conversationId) return { settled: false, heldBy: existing.conversation_id };
    rmSync(this.file(pk), { force: true });
    return { settled: true };
  }

  async renewInProgress(pk: string, conversationId: string, now: Date): Promise<boolean> {
    const mine = (record: IdempotencyRecord | null) =>
      record?.status === 'in_progress' && record.conversation_id === conversationId;
    const existing = this.current(pk);
    if (!existing || !mine(existing)) return false;
    const renewed = { ...existing, expires_at: expiresAt(now, IN_PROGRESS_TTL_SECONDS) };
    return this.writeAside(renewed, (aside, file) => {
      if (!mine(this.current(pk))) return false; // settled or claimed meanwhile: left as it is
      renameSync(aside, file);
      return true;
    });
  }

  async releaseInProgress(pk: string, requestId?: string): Promise<boolean> {
    const current = this.current(pk);
    if (current?.status !== 'in_progress' || (requestId !== undefined && current.request_id !== requestId))
      return false;
    rmSync(this.file(pk), { force: true });
    return true;
  }
}

/**
 * Settle a conversation's key as its workflow ends: keep its answer (`response`), or free the key (`null`) for a
 * retry to run again. A key that is no longer the conversation's claim is left as it is and logged
 * (WEBHOOK_IDEMPOTENCY_KEY_LOST): the conversation itself goes on. So does one whose write the caller's deadline
 * cut (`signal`, docs/deploy.md "Timeouts"): the caller is answered, and the key stays in progress until its claim
 * lapses (reason `deadline`). Any other failure is thrown.
 */
export async function settleKey(
  store: IdempotencyStore,
  pk: string,
  conversationId: string,
  response: unknown,
  now: Date,
  signal?: AbortSignal,
): Promise<SettleResult> {
  const action = response !== null ? 'complete' : 'release';
  let outcome: SettleResult;
  try {
    outcome = await (response !== null
      ? store.complete(pk, conversationId, response, now, signal)
      : store.release(pk, conversationId, signal));
  } catch (error) {
    if (!signal?.aborted) throw error;
    logger.warn("Idempotency key left in progress: the caller's deadline cut its write", {
      event_type: IDEMPOTENCY_KEY_LOST_EVENT,
      conversation_id: conversationId,
      action,
      reason: 'deadline',
      error: `${(error as Error).name}: ${(error as Error).message}`,
    });
    return { settled: false, heldBy: conversationId };
  }
  if (!outcome.settled) {
    logger.warn("Idempotency key left as it is: it is no longer this conversation's claim", {
      event_type: IDEMPOTENCY_KEY_LOST_EVENT,
      conversation_id: conversationId,
      action,
      ...(outcome.heldBy !== null ? { reason: 'claimed_by_another', held_by: outcome.heldBy } : { reason: 'expired' }),
    });
  }
  return outcome;
}

export function idempotencyStore(): IdempotencyStore | null {
  const { idempotencyTableName, idempotencyDir } = settings();
  if (idempotencyTableName) return new DynamoIdempotencyStore(idempotencyTableName);
  if (idempotencyDir) return new FileIdempotencyStore(idempotencyDir);
  return null;
}
