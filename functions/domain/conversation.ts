import type { Budget } from './budget.ts';
import type { CaughtError } from './task-error.ts';

/**
 * The conversation record (docs/contract.md#exports-s3): metadata, turns and execution, with `webhook_context`.
 * It travels through the workflow as `$.conversation` and is what the Export stage writes to S3.
 * Every stage returns a new record; nothing here does I/O.
 */
export const WEBHOOK_TYPES = ['deal_analysis', 'data_analysis', 'lead_analysis', 'general'] as const;
export type WebhookType = (typeof WEBHOOK_TYPES)[number];

export type ResponseMode = 'sync' | 'async';
/** The accept workflow's state that starts an accepted conversation's run (statemachine/accept.asl.json). */
export const NOT_STARTED_STAGE = 'StartConversation';

/**
 * `queued`: handed to the redelivery schedule before any attempt (the receiver is failing, paused, disabled or at its
 * rate, or the caller's deadline left no time); `retrying`: attempts failed and the schedule tries again.
 */
export type DeliveryStatus = 'pending' | 'delivered' | 'queued' | 'retrying' | 'failed' | 'not_attempted';
/**
 * `interrupted`: the local gateway stopped (crash, kill) before the conversation ended; it was closed with what was
 * known when the gateway restarted (docs/operations.md, "After a crash").
 */
export type ConversationStatus = 'in_progress' | 'completed' | 'failed' | 'interrupted';

export interface ConversationTurn {
  role: 'user' | 'assistant';
  /**
   * The turn's text. Left out of an assistant turn while the conversation runs: the answer is carried once, as
   * `data`, and its text is the one `answerText` finds there (`turnText`). Exports write it out (`withTurnTexts`).
   */
  content?: string;
  timestamp: string;
  /** The agent's full structured answer, on assistant turns. */
  data?: unknown;
}

export interface DeliveryAttempt {
  attempt: number;
  at: string;
  duration_ms: number;
  /** HTTP status when the receiver answered. */
  status_code?: number;
  /** Short reason when the attempt failed (HTTP status text, network error, timeout). */
  error?: string;
  outcome: 'delivered' | 'retryable' | 'permanent';
  /** The receiver's Retry-After (429/503), in ms, honoured by the schedule. */
  retry_after_ms?: number;
  /**
   * Which mechanism ran it: the in-workflow Retry, the automatic schedule, an operator's redrive (of an undelivered
   * conversation) or resend (of a delivered one).
   */
  via?: 'workflow' | 'schedule' | 'redrive' | 'resend';
  /** The execution whose Deliver made it. From the attempt log: exports and reads only, never in the state. */
  execution_name?: string;
  /** What was sent (URL, headers without the signature). From the attempt log: exports and reads only. */
  request?: { url: string; headers: Record<string, string> };
  /** What the receiver answered (null: nothing, a network error or timeout). From the attempt log: exports and reads only. */
  response?: { status: number; headers: Record<string, string>; body: string; body_truncated: boolean } | null;
}

export interface ExecutionError {
  stage: string;
  error: string;
  message: string;
  at: string;
}

export interface ConversationRecord {
  conversation_id: string;
  metadata: {
    conversation_id: string;
    channel: 'webhook';
    source_system: string;
    source_process: string;
    /** The timestamp the source put in its request, if any. */
    request_timestamp: string | null;
    received_at: string;
    request_id: string;
    source_ip: string;
    user_agent: string | null;
    request_size_bytes: number;
    /** The Idempotency-Key (or inbound webhook-id) the request carried, if any. */
    idempotency_key: string | null;
    /** The request's own `metadata` object, as sent. */
    custom: Record<string, unknown>;
    /**
     * `async`: started with `Prefer: respond-async` (answered 202; its status is kept for GET /conversations/{id});
     * `sync` (or absent, on records from before it was kept): the caller waited for the answer.
     */
    response_mode?: ResponseMode;
    /** The request's thread_id (docs/contract.md#threads); null or absent: not in a thread. */
    thread_id?: string | null;
    /** This conversation's turn in its thread (1 for the first), set when it started; null outside a thread. */
    thread_turn?: number | null;
  };
  webhook_context: {
    source_system: string;
    source_process: string;
    webhook_type: WebhookType | null;
    /** The webhook_type the request asked for, if any (it wins over the classifier). */
    requested_webhook_type: WebhookType | null;
    classification_reason: string | null;
    /** When Classify chose the type (absent on records classified before it was recorded). */
    classified_at?: string;
    delivery_status: DeliveryStatus;
    delivery_id: string;
    delivery_target: string | null;
  };
  conversation: {
    turns: ConversationTurn[];
  };
  execution: {
    status: ConversationStatus;
    started_at: string;
    completed_at: string | null;
    timings: {
      agent_ms: number | null;
      delivery_ms: number | null;
      total_ms: number | null;
    };
    delivery_attempts: DeliveryAttempt[];
    errors: ExecutionError[];
    /** Names of the workflow executions that worked on this conversation (original and redeliveries). */
    executions: string[];
  };
  /**
   * The agent's answer as InvokeManagerAgent received it, until a stage records it as the assistant turn
   * (withPendingAnswer): the workflow's state holds it once, and inside the record, so that whatever carries the
   * record (a failed-delivery envelope too) carries the answer. Never exported.
   */
  pending_answer?: PendingAnswer;
}

export interface PendingAnswer {
  /** The agent's payload (its Lambda response, parsed). */
  answer: unknown;
  /** When InvokeManagerAgent was entered (ISO 8601). */
  invoked_at: string;
}

/** Set by whoever starts a redelivery execution (the schedule, an operator's redrive or resend). */
export interface RedeliveryContext {
  via: 'schedule' | 'redrive' | 'resend';
  /** The delivery status to record if this attempt fails: `failed` when no automatic attempt follows. */
  status_if_failed: 'retrying' | 'failed';
  /** Nothing to deliver (already delivered, or the agent failed): only the export is owed. */
  export_only?: boolean;
}

/** The state document that flows between the workflow's states. */
export interface ConversationState {
  conversation: ConversationRecord;
  redelivery?: RedeliveryContext;
  /** Set by Validate for the conversation workflow: the timeouts and deadlines of the later states. */
  budget?: Budget;
  /** Set by Validate: the thread InvokeManagerAgent gives the agent (functions/domain/thread.ts); Classify drops it. */
  thread?: unknown;
  /**
   * Set by the Catch of the accept workflow's StartConversation: the accepted conversation's run could not be
   * started. Exported as failed like an agent failure.
   */
  start_error?: CaughtError;
  /** Set by the Catch of InvokeManagerAgent, or of Classify when it refused the answer. */
  agent_error?: CaughtError;
  /** Set by the Catch of Classify (any other failure): Deliver and Export record and classify the answer instead. */
  classify_error?: CaughtError;
  /** Set by the Catch of Deliver. */
  delivery_error?: CaughtError;
  /**
   * Set by DeliveryFailed (after the Catch of Deliver): when the delivery failed. The conversation is closed at this
   * moment wherever it is closed (Export, the failed-delivery envelope), so every copy of the record is the same.
   */
  delivery_failed?: { at: string };
  /** Set by the Catch of QueueFailedDelivery: the failed-delivery queue refused the envelope. */
  delivery_queue_error?: CaughtError;
  /** Set by the Catch of QueueFailedExport: the queue refused the export-only envelope too (RecordOnlyInLogs). */
  export_queue_error?: CaughtError;
  /** Set by the Catch of Export: S3 stayed unwritable through the retries, the export is queued for later. */
  export_error?: CaughtError;
}

/** `T` with the keys `K` optional. */
type Loose<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;

/**
 * The record as the workflow's state carries it (`$.conversation`): every field that holds its default (null, an
 * empty list, the `webhook` channel, a `sync` response mode, an `in_progress` status) or repeats another
 * (`metadata.conversation_id`, the sources in `webhook_context`, `started_at`, the question's timestamp) left out by
 * `leanRecord`, because Express logs the state in full in nearly every event of the execution history
 * (docs/performance.md §4). Whoever reads a record from the state, the execution history or
 * a failed-delivery envelope reads it through `fullRecord`; a full record (the previous code's) is a StateRecord too.
 */
export interface StateRecord
  extends Omit<ConversationRecord, 'metadata' | 'webhook_context' | 'conversation' | 'execution'> {
  metadata: Loose<
    ConversationRecord['metadata'],
    'conversation_id' | 'channel' | 'request_timestamp' | 'user_agent' | 'idempotency_key' | 'thread_id' | 'thread_turn'
  >;
  webhook_context: Loose<
    ConversationRecord['webhook_context'],
    | 'source_system'
    | 'source_process'
    | 'webhook_type'
    | 'requested_webhook_type'
    | 'classification_reason'
    | 'delivery_target'
  >;
  conversation: { turns: Loose<ConversationTurn, 'timestamp'>[] };
  execution: Loose<
    Omit<ConversationRecord['execution'], 'timings'>,
    'status' | 'started_at' | 'completed_at' | 'delivery_attempts' | 'errors' | 'executions'
  > & { timings?: Partial<ConversationRecord['execution']['timings']> };
}

/** The workflow's state as it travels (ConversationState with its record as a StateRecord). */
export type WorkflowState = Omit<ConversationState, 'conversation'> & { conversation: StateRecord };

type Fill = (whole: StateRecord) => unknown;
const NULL: Fill = () => null;
const EMPTY: Fill = () => [];
const KEEP = undefined;

/**
 * Each part's keys in the order the record is built (functions/domain/intake.ts; `classified_at` is added last), so
 * that a filled record serializes byte for byte as the record it was made from (the exports). A key with a Fill is
 * left out of the state when it holds what the Fill gives; KEEP: never left out.
 */
const METADATA: [string, Fill | undefined][] = [
  ['conversation_id', (r) => r.conversation_id],
  ['channel', () => 'webhook'],
  ['source_system', KEEP],
  ['source_process', KEEP],
  ['request_timestamp', NULL],
  ['received_at', KEEP],
  ['request_id', KEEP],
  ['source_ip', KEEP],
  ['user_agent', NULL],
  ['request_size_bytes', KEEP],
  ['idempotency_key', NULL],
  ['custom', KEEP], // InvokeManagerAgent's Parameters read it
  ['response_mode', () => 'sync'],
  ['thread_id', NULL],
  ['thread_turn', NULL],
];
const WEBHOOK_CONTEXT: [string, Fill | undefined][] = [
  ['source_system', (r) => r.metadata.source_system],
  ['source_process', (r) => r.metadata.source_process],
  ['webhook_type', NULL],
  ['requested_webhook_type', NULL],
  ['classification_reason', NULL],
  ['delivery_status', KEEP], // the workflow's choices read it
  ['delivery_id', KEEP],
  ['delivery_target', NULL],
  ['classified_at', KEEP],
];
const EXECUTION: [string, Fill | undefined][] = [
  ['status', () => 'in_progress'],
  ['started_at', (r) => r.metadata.received_at],
  ['completed_at', NULL],
  ['timings', () => ({ agent_ms: null, delivery_ms: null, total_ms: null })],
  ['delivery_attempts', EMPTY],
  ['errors', EMPTY],
  ['executions', EMPTY],
];
const TIMINGS: [string, Fill | undefined][] = [
  ['agent_ms', NULL],
  ['delivery_ms', NULL],
  ['total_ms', NULL],
];
/** The question's timestamp: the request's own, else when it was received (intake.ts). */
const QUESTION_TURN: [string, Fill | undefined][] = [
  ['role', KEEP],
  ['content', KEEP],
  ['timestamp', (r) => r.metadata.request_timestamp ?? r.metadata.received_at],
];

/** Equal as JSON (the values here are JSON: strings, numbers, null, plain lists and objects). */
function sameJson(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

function without(part: object, keys: [string, Fill | undefined][], whole: StateRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(part)) {
    const fill = keys.find(([k]) => k === key)?.[1];
    if (!fill || !sameJson(value, fill(whole))) out[key] = value;
  }
  return out;
}

function filled(part: object, keys: [string, Fill | undefined][], whole: StateRecord): Record<string, unknown> {
  const given = part as Record<string, unknown>;
  if (keys.every(([key, fill]) => !fill || key in given)) return given;
  const out: Record<string, unknown> = {};
  for (const [key, fill] of keys) {
    if (key in given) out[key] = given[key];
    else if (fill) out[key] = fill(whole);
  }
  for (const key of Object.keys(given)) if (!(key in out)) out[key] = given[key];
  return out;
}

function isPart(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The record as the workflow's state carries it: its defaults and repeated fields left out (StateRecord). */
export function leanRecord(record: ConversationRecord): StateRecord {
  const [first, ...later] = record.conversation.turns;
  const execution = without(record.execution, EXECUTION, record);
  if ('timings' in execution) execution.timings = without(record.execution.timings, TIMINGS, record);
  return {
    ...record,
    metadata: without(record.metadata, METADATA, record) as StateRecord['metadata'],
    webhook_context: without(record.webhook_context, WEBHOOK_CONTEXT, record) as StateRecord['webhook_context'],
    conversation: {
      ...record.conversation,
      turns:
        first?.role === 'user'
          ? [without(first, QUESTION_TURN, record) as unknown as ConversationTurn, ...later]
          : record.conversation.turns,
    },
    execution: execution as StateRecord['execution'],
  };
}

/**
 * The whole record from the one the state carries (leanRecord), its keys in the order the record is built: what every
 * reader of a record from the state, an execution history or a failed-delivery envelope works on. A whole record is
 * returned as it is.
 */
export function fullRecord(record: StateRecord): ConversationRecord {
  // leanRecord keeps every part; a record without one (a damaged or hand-made envelope) is not one of its records and
  // is returned as it is, for its reader to judge, rather than refused here with a TypeError.
  if (!isPart(record.metadata) || !isPart(record.webhook_context) || !isPart(record.execution)) {
    return record as ConversationRecord;
  }
  if (!Array.isArray(record.conversation?.turns)) return record as ConversationRecord;
  const { turns } = record.conversation;
  const first = turns[0];
  const question = first?.role === 'user' ? filled(first, QUESTION_TURN, record) : first;
  const metadata = filled(record.metadata, METADATA, record);
  const webhookContext = filled(record.webhook_context, WEBHOOK_CONTEXT, record);
  const given = filled(record.execution, EXECUTION, record);
  const timings = isPart(given.timings) ? filled(given.timings, TIMINGS, record) : given.timings;
  const execution = timings === given.timings ? given : { ...given, timings };
  if (
    question === first &&
    metadata === record.metadata &&
    webhookContext === record.webhook_context &&
    execution === record.execution
  )
    return record as ConversationRecord;
  return {
    ...record,
    metadata: metadata as ConversationRecord['metadata'],
    webhook_context: webhookContext as ConversationRecord['webhook_context'],
    conversation: {
      ...record.conversation,
      turns: (question === first ? turns : [question, ...turns.slice(1)]) as ConversationTurn[],
    },
    execution: execution as ConversationRecord['execution'],
  };
}

/** The state with its record as the workflow carries it (what a stage returns). */
export function leanState<S extends { conversation: ConversationRecord }>(
  state: S,
): Omit<S, 'conversation'> & { conversation: StateRecord } {
  return { ...state, conversation: leanRecord(state.conversation) };
}

/** The state with its whole record (what a stage works on). */
export function fullState<S extends { conversation: StateRecord }>(
  state: S,
): Omit<S, 'conversation'> & { conversation: ConversationRecord } {
  return { ...state, conversation: fullRecord(state.conversation) };
}

/** The question: the user's turn. */
export function userQuery(record: Pick<ConversationRecord, 'conversation'>): string {
  return record.conversation.turns.find((t) => t.role === 'user')?.content ?? '';
}

/**
 * The text of an agent payload (docs/contract.md#the-manager-agent): a string, or the first of
 * response/answer/content/body/message/text that is one; any other answer — a number, a boolean, an array — is its
 * JSON text, so the caller's `{content}` and the receiver's carry it rather than an empty string.
 */
export function answerText(payload: unknown): string {
  if (typeof payload === 'string') return payload;
  if (typeof payload === 'number' || typeof payload === 'boolean' || Array.isArray(payload))
    return JSON.stringify(payload);
  return textWithin(payload);
}

/** The first of response/answer/content/body/message/text of an object that is (or holds) a string. */
function textWithin(payload: unknown): string {
  if (payload && typeof payload === 'object') {
    for (const key of ['response', 'answer', 'content', 'body', 'message', 'text']) {
      const value = (payload as Record<string, unknown>)[key];
      if (typeof value === 'string') return value;
      if (value && typeof value === 'object') {
        const nested = textWithin(value);
        if (nested) return nested;
      }
    }
  }
  return '';
}

/**
 * A turn's text: its `content`, or for an assistant turn in the workflow's state the text of its answer. Every
 * state of the Express history logs the record in full, so each copy of the answer kept there costs (docs/performance.md).
 */
export function turnText(turn: ConversationTurn | undefined): string {
  if (!turn) return '';
  return turn.content ?? answerText(turn.data);
}

/** The record with every turn's text written out, as exports and people read it. */
export function withTurnTexts<R extends Pick<ConversationRecord, 'conversation'>>(record: R): R {
  const turns = record.conversation.turns;
  if (turns.every((t) => t.content !== undefined)) return record;
  return {
    ...record,
    conversation: {
      ...record.conversation,
      turns: turns.map((t) =>
        t.content !== undefined
          ? t
          : { role: t.role, content: turnText(t), timestamp: t.timestamp, ...('data' in t ? { data: t.data } : {}) },
      ),
    },
  };
}

/** The agent's latest answer, if there is one yet. */
export function agentTurn(record: Pick<ConversationRecord, 'conversation'>): ConversationTurn | undefined {
  return [...record.conversation.turns].reverse().find((t) => t.role === 'assistant');
}

/** The agent's answer as the JSON object callers and receivers get: its structured payload, or `{content}` for text. */
export function agentResponse(record: ConversationRecord): Record<string, unknown> {
  const answer = agentTurn(record);
  if (answer?.data && typeof answer.data === 'object' && !Array.isArray(answer.data))
    return answer.data as Record<string, unknown>;
  return { content: turnText(answer) };
}

export function elapsedMs(fromIso: string, to: Date): number {
  return Math.max(0, to.getTime() - Date.parse(fromIso));
}
