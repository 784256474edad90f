import { createHash } from 'node:crypto';
import { agentTurn, type ConversationRecord, turnText, userQuery } from './conversation.ts';

/**
 * Threads (docs/contract.md#threads): conversations a source groups under one client-chosen `thread_id`. Each
 * conversation of a thread takes the next turn number when it starts; once answered, its question and answer are
 * kept as that turn (functions/shared/thread-store.ts); the agent of a later turn receives the earlier turns, newest
 * first and within bounds, and the thread's session id. A thread belongs to its source: the same thread_id sent by
 * another source is another thread.
 */

/**
 * A claim of a turn by the request that made the thread's last claim is that claim again: an attempt of its Validate
 * task (retried by the workflow after a Lambda service error, or its write retried by the SDK after a try that had in
 * fact succeeded) gets the turn the earlier attempt took instead of a new one, so no number is left unused. A request
 * is named by requestIdentity (functions/domain/idempotency.ts), as its idempotency claim is. Only the last claim is
 * remembered: a retry after another conversation of the thread claimed in between takes a new turn.
 */
export function turnClaimedBySameRequest(lastRequest: string | undefined, requestId: string): boolean {
  return requestId !== '' && lastRequest === requestId;
}

/** Like the other ids a request names (source_system): letters, digits, '_', '-', '.', starting with a letter or digit. */
export const THREAD_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
export const MAX_THREAD_ID_LENGTH = 128;

/**
 * What the agent is given of the earlier turns. The workflow's state carries them to InvokeManagerAgent beside the
 * request (question ≤ 60 KB, metadata ≤ 16 KB) and then the answer (≤ 64 KB), under Step Functions' 256 KB: 32 KB of
 * history keeps that state well under the cap. Classify drops the history once the agent has answered.
 */
export const MAX_THREAD_HISTORY_TURNS = 10;
export const MAX_THREAD_HISTORY_BYTES = 32 * 1024;

/** One answered conversation of a thread, as kept by the thread store and given to the agent of a later turn. */
export interface ThreadTurn {
  turn: number;
  conversation_id: string;
  query: string;
  /** The text of the agent's answer (its structured data is in the conversation's export). */
  answer: string;
  asked_at: string;
  answered_at: string;
  /** Set when query/answer were cut to fit MAX_THREAD_HISTORY_BYTES. */
  truncated?: true;
}

/** Why a stored value is not turn `turn` of a thread (a damaged file of the local store), or null when it is. */
export function notThreadTurn(value: unknown, turn: number): string | null {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'not an object';
  const t = value as Partial<Record<keyof ThreadTurn, unknown>>;
  if (t.turn !== turn) return `not turn ${turn}`;
  for (const field of ['conversation_id', 'query', 'answer', 'asked_at', 'answered_at'] as const)
    if (typeof t[field] !== 'string') return `no ${field}`;
  return null;
}

/** What InvokeManagerAgent's payload carries as `thread` (null for a conversation outside any thread). */
export interface AgentThread {
  thread_id: string;
  /** Stable for the thread (and its source): pass it to agents that continue a session by id (Bedrock Agents). */
  session_id: string;
  /** This conversation's turn: 1 for the first. */
  turn: number;
  /** Earlier answered turns, newest first, at most MAX_THREAD_HISTORY_TURNS and MAX_THREAD_HISTORY_BYTES. */
  earlier_turns: ThreadTurn[];
  /**
   * Of the newest MAX_THREAD_HISTORY_TURNS earlier turns (all the store reads), those left out: for the bytes bound,
   * or because the store could not read them (a damaged file).
   */
  omitted_turns: number;
  /** Set when the thread store could not be read (an asynchronous run goes on without the earlier turns). */
  history_unavailable?: true;
}

/**
 * The session id of a source's thread: a digest of both (at most 100 characters of `[0-9a-zA-Z._:-]`, as Bedrock
 * Agents' sessionId requires), so it neither reveals nor collides with another source's thread of the same name.
 */
export function threadSessionId(sourceSystem: string, threadId: string): string {
  return `thread-${createHash('sha256').update(`${sourceSystem}\n${threadId}`).digest('hex').slice(0, 40)}`;
}

const bytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value));

/** `text` cut to at most `maxBytes` of UTF-8 (never inside a character). */
function cut(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let end = Math.max(0, maxBytes);
  const buf = Buffer.from(text);
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}

/**
 * A turn shrunk to at most `maxBytes` as JSON: the question takes at most half the room, the answer what the
 * question leaves (a short question leaves the answer nearly all of it; a long one and a long answer get half each).
 */
function shrunk(turn: ThreadTurn, maxBytes: number): ThreadTurn {
  const room = Math.max(0, maxBytes - bytes({ ...turn, query: '', answer: '', truncated: true }));
  const query = cut(turn.query, Math.floor(room / 2));
  let result: ThreadTurn = {
    ...turn,
    query,
    answer: cut(turn.answer, room - Buffer.byteLength(query)),
    truncated: true,
  };
  // JSON escapes (quotes, control characters) take more than their UTF-8 bytes: halve until it fits.
  while (bytes(result) > maxBytes && (result.query || result.answer)) {
    result = {
      ...result,
      query: cut(result.query, Math.floor(Buffer.byteLength(result.query) / 2)),
      answer: cut(result.answer, Math.floor(Buffer.byteLength(result.answer) / 2)),
    };
  }
  return result;
}

/**
 * The thread the agent is given: the earlier answered turns (any order in, newest first out), as many as fit the
 * bounds; the newest one is shrunk rather than left out if it alone is too large. Never fails: of `earlier` (the
 * store reads only the newest MAX_THREAD_HISTORY_TURNS), what is beyond the bounds is left out and counted in
 * `omitted_turns`, as are the `unreadable` turns the store found among them but could not give; older turns the
 * store did not read are not counted.
 */
export function agentThread(
  ref: { thread_id: string; session_id: string; turn: number },
  earlier: readonly ThreadTurn[],
  limits = { turns: MAX_THREAD_HISTORY_TURNS, bytes: MAX_THREAD_HISTORY_BYTES },
  unreadable = 0,
): AgentThread {
  const newestFirst = earlier.filter((t) => t.turn < ref.turn).sort((a, b) => b.turn - a.turn);
  const kept: ThreadTurn[] = [];
  let used = 2; // the array's brackets
  for (const turn of newestFirst.slice(0, limits.turns)) {
    const size = bytes(turn) + (kept.length > 0 ? 1 : 0);
    if (used + size <= limits.bytes) {
      kept.push(turn);
      used += size;
      continue;
    }
    if (kept.length === 0) kept.push(shrunk(turn, limits.bytes - used));
    break;
  }
  return { ...ref, earlier_turns: kept, omitted_turns: newestFirst.length - kept.length + unreadable };
}

/** The turn a closed conversation of a thread adds to it: null outside a thread or without an answer. */
export function threadTurnOf(record: ConversationRecord): ThreadTurn | null {
  const { thread_id: threadId, thread_turn: turn } = record.metadata;
  const answer = agentTurn(record);
  if (!threadId || !turn || !answer) return null;
  const question = record.conversation.turns.find((t) => t.role === 'user');
  return {
    turn,
    conversation_id: record.conversation_id,
    query: userQuery(record),
    answer: turnText(answer),
    asked_at: question?.timestamp ?? record.metadata.received_at,
    answered_at: answer.timestamp,
  };
}
