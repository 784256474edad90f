import type { DeliveryStatus } from './conversation.ts';
import { isConversationId } from './conversation-id.ts';
import {
  errorBody,
  type HttpResult,
  INTEGRATION_TIMEOUT_HEADERS,
  NO_STORE,
  STATUS_POLL_SECONDS,
  STATUS_ROUTE_PREFIX,
  TIMED_OUT_STATUS,
} from './gateway-contract.ts';
import { IN_PROGRESS_TTL_SECONDS } from './idempotency.ts';
import { type InboundPolicy, verifyInbound } from './signatures.ts';
import { apiKeyMismatch, canonicalSource, SOURCE_NAME_RULE, sourceNameProblem } from './source-identity.ts';

/**
 * The status of a conversation started with `Prefer: respond-async` (docs/contract.md#get-conversationsid): one small
 * record per conversation, written when it is accepted (`running`) and once more when it ends (`completed` or
 * `failed`, with the body a synchronous call would have returned), then by each redelivery of its answer (the
 * delivery status it left), kept STATUS_TTL_SECONDS. `GET /conversations/{id}` reads it. Pure: the store is
 * functions/shared/conversation-status-store.ts.
 */
export type ConversationStatus = 'running' | 'completed' | 'failed';

export interface ConversationStatusRecord {
  conversation_id: string;
  /** Canonical source_system: only this source may read the record. */
  source_system: string;
  status: ConversationStatus;
  accepted_at: string;
  completed_at?: string;
  /** The body a synchronous call would have returned (JSON text), once the conversation ended. */
  body?: string;
  /**
   * The delivery as a later redelivery (the schedule, a redrive, a resend) left it, when one re-exported the
   * conversation: it replaces the body's `tracking.delivery_status` (statusResult).
   */
  delivery_status?: DeliveryStatus;
  delivery_updated_at?: string;
  /**
   * When the local gateway's crash recovery last started the run again (local/engine/recovery.ts; never on AWS, where
   * an Express execution is not restarted): the run ends within RUN_LOST_AFTER_SECONDS of then, not of accepted_at.
   */
  restarted_at?: string;
  /** Epoch seconds; the DynamoDB TTL attribute. */
  expires_at: number;
}

/** Status records are kept 7 days: long after any poller gave up; the export is the record for good. */
export const STATUS_TTL_SECONDS = 7 * 86_400;

/**
 * The status route's time on AWS: its function's timeout (infra/constructs/conversation-functions.ts), and the margin
 * before it at which the route answers 504 TIMEOUT itself rather than end as API Gateway's 502 for a Lambda that timed
 * out. The local route answers at the same moment (docs/contract.md#get-conversationsid).
 */
export const STATUS_FUNCTION_TIMEOUT_MS = 10_000;
export const STATUS_ANSWER_MARGIN_MS = 1_000;
/**
 * Past this long after it was accepted, a conversation still `running` cannot be: its run is an Express execution
 * (at most 5 minutes) started within the accept's 60 s, the longest an idempotency claim is held in progress for the
 * same reason (IN_PROGRESS_TTL_SECONDS). It ended without writing its outcome — Step Functions failed it with an error
 * no Catch handles (States.DataLimitExceeded: an answer over 256 KB), or it was lost — and the poller is told so.
 */
const RUN_LOST_AFTER_SECONDS = IN_PROGRESS_TTL_SECONDS;

export function runningStatus(conversationId: string, sourceSystem: string, now: Date): ConversationStatusRecord {
  return {
    conversation_id: conversationId,
    source_system: sourceSystem,
    status: 'running',
    accepted_at: now.toISOString(),
    expires_at: Math.floor(now.getTime() / 1000) + STATUS_TTL_SECONDS,
  };
}

/** The end of a conversation as its status record keeps it: completed with its 200 body, or failed with its error. */
export interface StatusOutcome {
  status: 'completed' | 'failed';
  body: string;
  completed_at: string;
}

/** What a later redelivery tells a completed status: the delivery status it left, as of its last attempt. */
export interface StatusDelivery {
  delivery_status: DeliveryStatus;
  /** The redelivery's last attempt: an older report than the one kept is not taken (a late write). */
  at: string;
}

/**
 * What a GET of the status proves and asks: the conversation id (from the path), the source it claims
 * (`?source_system=`), its Standard Webhooks headers, and the id of the API key it sent (if any).
 */
export interface StatusRequest {
  conversation_id: string;
  source_system: string | null;
  headers: Record<string, string>;
  /** `$context.identity.apiKeyId` on AWS, the matched `x-api-key`'s id locally (API_KEYS); null without one. */
  api_key_id: string | null;
}

/**
 * What a source signs to read a status: a GET has no body, so the Standard Webhooks signature is computed over the
 * request target in its place — `id.timestamp.GET /conversations/<id>` — which binds it to this conversation (the
 * query string and any stage prefix of the URL are not part of it).
 */
export function statusSigningPayload(conversationId: string): string {
  return `GET ${STATUS_ROUTE_PREFIX}${conversationId}`;
}

/** No record of this source with that id (or its status expired): the same answer for another source's id. */
const notFound = (conversationId: string, source: string): HttpResult => ({
  statusCode: 404,
  body: errorBody(
    'NOT_FOUND',
    `No asynchronous conversation ${conversationId} of source_system ${source} (statuses are kept ${STATUS_TTL_SECONDS / 86_400} days; the export keeps the record)`,
  ),
});

/**
 * An id of no conversation id's form: no conversation of any source has it, so the answer says what is wrong with the
 * id, and names no source_system (one may not have been sent: it is looked at only after the id). The id is quoted
 * cut to 80 characters, as the logs keep it.
 */
const notAConversationId = (conversationId: string): HttpResult => ({
  statusCode: 404,
  body: errorBody(
    'NOT_FOUND',
    `No conversation ${JSON.stringify(conversationId.slice(0, 80))}: not a conversation id of this gateway (webhook_<YYYYMMDD>_<HHMMSS>_<source>_<process>_<suffix>, as POST /webhook answered it)`,
  ),
});

export type StatusAuthorization = { ok: true; source: string } | { ok: false; result: HttpResult };

/**
 * Decide whether a GET may read statuses of the source it claims, before anything is read: the source is named
 * and well formed, the API key it sent (on AWS) is that source's own, and it signed the request target as it signs
 * a POST (a source with a secret must; every source must with REQUIRE_SIGNED_WEBHOOKS). `apiKeySources`: API key id
 * → canonical source (SOURCE_API_KEY_IDS; see apiKeyMismatch).
 */
export function authorizeStatusRequest(
  request: StatusRequest,
  policy: InboundPolicy,
  apiKeySources: Record<string, string> = {},
): StatusAuthorization {
  if (!isConversationId(request.conversation_id))
    return { ok: false, result: notAConversationId(request.conversation_id) };
  const claimed = request.source_system;
  const problem = claimed ? sourceNameProblem(claimed) : null;
  if (!claimed || problem !== null) {
    const message = claimed
      ? `source_system must be a source name (${SOURCE_NAME_RULE}): ${problem}`
      : 'source_system is required: the source that started the conversation';
    return {
      ok: false,
      result: {
        statusCode: 400,
        body: errorBody('VALIDATION_ERROR', `Request validation failed: source_system: ${message}`, {
          details: [{ field: 'source_system', message }],
        }),
      },
    };
  }
  const source = canonicalSource(claimed);
  const keyRefused = apiKeyMismatch(request.api_key_id, source, apiKeySources);
  if (keyRefused !== null)
    return { ok: false, result: { statusCode: 403, body: errorBody('SOURCE_MISMATCH', keyRefused) } };
  const trust = verifyInbound(statusSigningPayload(request.conversation_id), request.headers, source, policy);
  if (!trust.ok)
    return {
      ok: false,
      result: { statusCode: 401, body: errorBody('INVALID_SIGNATURE', `Webhook signature rejected: ${trust.reason}`) },
    };
  return { ok: true, source };
}

/**
 * When the conversation's run last began: its acceptance, or a later start again by local crash recovery (a gateway
 * down longer than RUN_LOST_AFTER_SECONDS would otherwise have its run read as lost while it runs again).
 */
function runStartedAt(record: ConversationStatusRecord): number {
  const accepted = Date.parse(record.accepted_at);
  const restarted = typeof record.restarted_at === 'string' ? Date.parse(record.restarted_at) : Number.NaN;
  return Number.isFinite(restarted) && restarted > accepted ? restarted : accepted;
}

/**
 * The answer to an authorised GET: 404 when there is no such record or it is another source's (the same answer, so
 * a source learns nothing of others' conversations); otherwise 200 with `status` and, once ended, the body a
 * synchronous call would have returned. A running conversation asks the poller to come back (Retry-After).
 */
export function statusResult(
  record: ConversationStatusRecord | null,
  conversationId: string,
  source: string,
  now: Date,
): HttpResult {
  const noStore = { ...NO_STORE };
  if (!record || record.source_system !== source || record.expires_at <= Math.floor(now.getTime() / 1000))
    return { ...notFound(conversationId, source), headers: noStore };
  if (record.status === 'running' || record.body === undefined) {
    const lostAt = runStartedAt(record) + RUN_LOST_AFTER_SECONDS * 1000;
    if (now.getTime() >= lostAt)
      return {
        statusCode: 200,
        body: {
          ...errorBody(
            'INTERNAL_ERROR',
            `The conversation workflow failed: its run ended without recording an outcome (the execution ${conversationId} of the conversation workflow says why)`,
            { conversation_id: conversationId },
          ),
          conversation_id: conversationId,
          status: 'failed',
          completed_at: new Date(lostAt).toISOString(),
        },
        headers: noStore,
      };
    return {
      statusCode: 200,
      body: { success: true, conversation_id: conversationId, status: 'running', accepted_at: record.accepted_at },
      headers: { ...noStore, 'retry-after': String(STATUS_POLL_SECONDS) },
    };
  }
  const answer = JSON.parse(record.body) as Record<string, unknown>;
  // The first answer's body, with the delivery as a later redelivery left it (a delivered one stays delivered).
  const tracking = answer.tracking as { delivery_status: DeliveryStatus } | undefined;
  const later = record.delivery_status;
  const delivery =
    tracking && later && tracking.delivery_status !== 'delivered'
      ? { tracking: { ...tracking, delivery_status: later }, delivery_updated_at: record.delivery_updated_at }
      : {};
  return {
    statusCode: 200,
    body: {
      ...answer,
      ...delivery,
      conversation_id: conversationId,
      status: record.status,
      completed_at: record.completed_at,
    },
    headers: noStore,
  };
}

/**
 * The answer of a status read that could not be made in time (the status function's budget, on AWS its Lambda
 * timeout less a margin): 504 `TIMEOUT` without a conversation id, naming the route, as API Gateway's own integration
 * timeout answers (docs/contract.md, Errors); nothing was changed, so it may be asked again.
 */
export function statusTimeoutResult(): HttpResult {
  return {
    statusCode: TIMED_OUT_STATUS,
    body: errorBody(
      'TIMEOUT',
      'GET /conversations/{conversation_id} did not answer in time (a read it needs was slow): the status may be asked again in a moment',
    ),
    headers: { ...NO_STORE, ...INTEGRATION_TIMEOUT_HEADERS },
  };
}

/**
 * The answer of a status read that failed on AWS (its table or the sources' secrets refused or failed the read): 503
 * `STORAGE_UNAVAILABLE` with Retry-After, in the contract's shape, rather than the bare 502 API Gateway makes of a
 * Lambda that threw (docs/contract.md, Errors); nothing was changed, so it may be asked again.
 */
export function statusUnavailableResult(): HttpResult {
  return {
    statusCode: 503,
    body: errorBody(
      'STORAGE_UNAVAILABLE',
      'GET /conversations/{conversation_id} could not read the status just now (a read it needs failed): ask again after Retry-After',
    ),
    headers: { ...NO_STORE, 'retry-after': String(STATUS_POLL_SECONDS) },
  };
}
