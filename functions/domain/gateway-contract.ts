/**
 * The one module that owns the gateway's edges, shared by the local HTTP server and the CDK API:
 * - the execution input shape (the API Gateway request template and the local server build the same object);
 * - the mapping from an execution's status and error name to the HTTP status and body.
 */
export interface ExecutionInput {
  /** The raw request body exactly as received (a string, so signatures can be checked over it). */
  body: string;
  /** Allow-listed request headers, lowercase names. Never `authorization`. */
  headers: Record<string, string>;
  request_id: string;
  source_ip: string;
  /** When the gateway received the request, ISO 8601 UTC. */
  received_at: string;
  /**
   * The id of the API key the request was accepted with (API Gateway's `$context.identity.apiKeyId`; locally the
   * id the gateway gives the x-api-key it matched); empty or absent when no keys are in use. Validate refuses a
   * request whose key belongs to another source than the one it names (403 SOURCE_MISMATCH).
   */
  api_key_id?: string;
}

/** Headers copied into the execution input; every other header (Authorization, cookies, …) stays out. */
export const FORWARDED_HEADERS = [
  'content-type',
  'user-agent',
  'idempotency-key',
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
  'x-request-id',
] as const;

/** Step Functions' input limit: 256 KiB for the whole execution input. */
export const MAX_EXECUTION_INPUT_BYTES = 262_144;
/** Bodies above this are refused with 413 before any execution starts. */
export const MAX_BODY_BYTES = MAX_EXECUTION_INPUT_BYTES;

export function pickForwardedHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of FORWARDED_HEADERS) {
    const value = headers[name];
    if (value !== undefined) picked[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return picked;
}

export type ErrorCode =
  | 'VALIDATION_ERROR'
  | 'INVALID_JSON'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'PAYLOAD_TOO_LARGE'
  | 'AGENT_ERROR'
  | 'TIMEOUT'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'INVALID_SIGNATURE'
  | 'RATE_LIMITED'
  | 'IDEMPOTENCY_CONFLICT'
  | 'NOT_STARTED'
  | 'INTERNAL_ERROR';

export interface ErrorBody {
  success: false;
  error: { code: ErrorCode | string; message: string; [extra: string]: unknown };
}

export function errorBody(code: ErrorCode | string, message: string, extra: Record<string, unknown> = {}): ErrorBody {
  return { success: false, error: { code, message, ...extra } };
}

/**
 * The gateway's own 504 when its integration timeout passes before the workflow answered: API Gateway's
 * INTEGRATION_TIMEOUT response (infra/api-templates.ts, `route` its `$context` names) and, locally, POST /webhook at
 * RESPONSE_TIMEOUT_MS (local/server/webhook-route.ts). No conversation id: the gateway does not know it; the
 * conversation goes on, and the same Idempotency-Key sent again finds it (docs/contract.md, "Errors"). Answered with
 * Cache-Control: no-store and Retry-After (INTEGRATION_TIMEOUT_HEADERS).
 */
export function integrationTimeoutBody(route: string, timeout = "API Gateway's integration timeout"): ErrorBody {
  return errorBody(
    'TIMEOUT',
    `${route} did not answer within ${timeout}. ` +
      'A conversation (POST /webhook) goes on, and its record is exported when it completes: sent again after ' +
      'Retry-After with the same Idempotency-Key, it is answered 409 while it runs, then with its answer and ' +
      'conversation id; a status (GET /conversations/{conversation_id}) may be asked again in a moment',
  );
}

/**
 * Validate's error when its stores or secrets failed or did not answer in time (functions/validate/handler.ts): both
 * workflows' ValidateStorageUnavailable fails with it, answered 503 STORAGE_UNAVAILABLE.
 */
export const STORAGE_UNAVAILABLE_ERROR = 'StorageUnavailable';

/** The workflow's Fail error names and the HTTP status each becomes. Any other failure is a 500. */
export const FAILURE_STATUS: Readonly<Record<string, number>> = {
  ValidationError: 400,
  SignatureError: 401,
  IdempotencyConflict: 409,
  SourceMismatch: 403,
  AgentError: 502,
  AgentTimeout: 504,
  /** An accepted asynchronous conversation whose run could not be started (statemachine/accept.asl.json). */
  ConversationNotStarted: 503,
  [STORAGE_UNAVAILABLE_ERROR]: 503,
};
export const TIMED_OUT_STATUS = 504;

export interface ExecutionOutcome {
  status: 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  /** The execution output as JSON text (SUCCEEDED). */
  output?: string;
  error?: string;
  /** The Fail state's cause: for ValidationError and AgentError, the public error body as JSON text. */
  cause?: string;
}

export interface HttpResult {
  statusCode: number;
  body: unknown;
  /** Response headers beyond Content-Type (lowercase names). */
  headers?: Record<string, string>;
}

/**
 * `Prefer: respond-async` (RFC 7240): the caller asks for 202 Accepted and a status URL instead of waiting for the
 * answer. Preferences are comma-separated tokens, case-insensitive, each maybe with `=value` or `;parameters`;
 * several Prefer headers count as one list. API Gateway's request template reads the header with the same rule
 * (infra/api-templates.ts).
 */
export const RESPOND_ASYNC = 'respond-async';
export function prefersRespondAsync(prefer: string | string[] | undefined): boolean {
  if (prefer === undefined) return false;
  const list = Array.isArray(prefer) ? prefer.join(',') : prefer;
  return list.split(',').some((preference) => preference.split(/[;=]/)[0]!.trim().toLowerCase() === RESPOND_ASYNC);
}

/**
 * What an asynchronous start's workflow answers (the accept workflow's Accepted state, or a retry of it replayed):
 * the conversation it started. The gateway turns it into the 202 below.
 */
export interface AcceptedOutput {
  accepted: { conversation_id: string; source_system: string };
}

function isAcceptedOutput(output: unknown): output is AcceptedOutput {
  const accepted = (output as Partial<AcceptedOutput> | null)?.accepted;
  return typeof accepted?.conversation_id === 'string' && typeof accepted.source_system === 'string';
}

/** Where a conversation's status is read: `GET /conversations/{id}?source_system=…` (docs/contract.md). */
export const STATUS_ROUTE_PREFIX = '/conversations/';
function statusPath(conversationId: string, sourceSystem: string): string {
  return `${STATUS_ROUTE_PREFIX}${conversationId}?source_system=${encodeURIComponent(sourceSystem)}`;
}

/** Seconds a poller of a conversation's status is asked to wait (Retry-After), on the 202 and while it runs. */
export const STATUS_POLL_SECONDS = 2;

/**
 * The headers of the gateway's own 504 beyond Content-Type and Cache-Control (integrationTimeoutBody): when to send
 * it again, as a 409 of the same key says while the conversation runs.
 */
export const INTEGRATION_TIMEOUT_HEADERS = { 'retry-after': String(STATUS_POLL_SECONDS) } as const;

/**
 * Response headers of a Fail state's answer beyond Content-Type, by its error name: a retry that met its key's
 * conversation still running (409) is told when to ask again for its answer, as a poller of a status is: the agent
 * may take its whole budget, and "retry shortly" alone had callers retry at once, over and over (docs/contract.md).
 * A conversation not started (503: its run refused, Lambda throttling Validate, or Validate's stores failing) is to be
 * sent again after as long.
 */
export const FAILURE_HEADERS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  IdempotencyConflict: { 'retry-after': String(STATUS_POLL_SECONDS) },
  ConversationNotStarted: { 'retry-after': String(STATUS_POLL_SECONDS) },
  [STORAGE_UNAVAILABLE_ERROR]: { 'retry-after': String(STATUS_POLL_SECONDS) },
};

/**
 * The 202 of an asynchronous start: the conversation id, where to read its status (`baseUrl`: the API's base, as
 * the caller reached it), `Preference-Applied`, `Location` (the same URL) and `Retry-After` (when to look first).
 */
export function acceptedResult({ accepted }: AcceptedOutput, baseUrl: string): HttpResult {
  const statusUrl = `${baseUrl}${statusPath(accepted.conversation_id, accepted.source_system)}`;
  return {
    statusCode: 202,
    body: { success: true, conversation_id: accepted.conversation_id, status_url: statusUrl },
    headers: { 'preference-applied': RESPOND_ASYNC, location: statusUrl, 'retry-after': String(STATUS_POLL_SECONDS) },
  };
}

function publicBodyFromCause(cause: string | undefined): ErrorBody | null {
  if (!cause) return null;
  try {
    const parsed = JSON.parse(cause) as unknown;
    if (
      parsed &&
      typeof parsed === 'object' &&
      (parsed as ErrorBody).success === false &&
      (parsed as ErrorBody).error
    ) {
      return parsed as ErrorBody;
    }
  } catch {
    // not one of ours
  }
  return null;
}

/** `baseUrl`: the API's base as the caller reached it, for the 202 of an asynchronous start (acceptedResult). */
export function httpResultForExecution(outcome: ExecutionOutcome, baseUrl = ''): HttpResult {
  switch (outcome.status) {
    case 'SUCCEEDED': {
      const output = outcome.output === undefined ? {} : JSON.parse(outcome.output);
      return isAcceptedOutput(output) ? acceptedResult(output, baseUrl) : { statusCode: 200, body: output };
    }
    case 'TIMED_OUT':
      return {
        statusCode: TIMED_OUT_STATUS,
        body: errorBody('TIMEOUT', 'The conversation did not finish in time; its record is exported when it completes'),
      };
    default: {
      const name = outcome.error ?? '';
      // Own keys only: an error named `constructor` or `toString` must not pick up an Object.prototype member.
      const statusCode = Object.hasOwn(FAILURE_STATUS, name) ? (FAILURE_STATUS[name] ?? 500) : 500;
      const ours = statusCode === 500 ? null : publicBodyFromCause(outcome.cause);
      const headers = Object.hasOwn(FAILURE_HEADERS, name) ? FAILURE_HEADERS[name] : undefined;
      return {
        statusCode,
        body:
          ours ??
          errorBody('INTERNAL_ERROR', 'The conversation workflow failed', {
            workflow_error: outcome.error ?? 'Unknown',
          }),
        ...(headers ? { headers: { ...headers } } : {}),
      };
    }
  }
}

/**
 * Answers the gateway gives itself, when a request never becomes an execution (wrong route, method or media type,
 * too large, throttled). The local server and the API Gateway (gateway and integration responses) both use these.
 */
export const GATEWAY_ERRORS = {
  NOT_FOUND: { statusCode: 404, message: 'No such route: use POST /webhook or GET /health' },
  METHOD_NOT_ALLOWED: { statusCode: 405, message: 'Method not allowed on this route' },
  UNSUPPORTED_MEDIA_TYPE: { statusCode: 415, message: 'Content-Type must be application/json' },
  PAYLOAD_TOO_LARGE: {
    statusCode: 413,
    message: `Request too large: the body and headers must fit in ${MAX_EXECUTION_INPUT_BYTES} bytes, the Step Functions input limit, counted as the escaped JSON string the body becomes there (each newline, tab, quote or backslash takes 2 bytes)`,
  },
  INVALID_API_KEY: { statusCode: 403, message: 'Forbidden: a missing or unknown x-api-key' },
  RATE_LIMITED: { statusCode: 429, message: 'Too many requests from this source: retry after the time in Retry-After' },
} as const satisfies Record<string, { statusCode: number; message: string }>;
export type GatewayErrorCode = keyof typeof GATEWAY_ERRORS;

/**
 * The refusals API Gateway gives on both routes before anything runs (a missing or unknown API key, a source over its
 * rate or quota) carry `Cache-Control: no-store`, as every answer of GET /conversations/{id} does (docs/contract.md):
 * a refused read must not be kept by a cache in between any more than a status.
 */
export const NO_STORE_GATEWAY_ERRORS: readonly GatewayErrorCode[] = ['INVALID_API_KEY', 'RATE_LIMITED'];
export const NO_STORE = { 'cache-control': 'no-store' } as const;

/**
 * The media type of every JSON answer, whoever gives it: the local gateway (local/server/http.ts), the status Lambda,
 * and on AWS API Gateway's own answers of POST /webhook (its integration responses, the 405 mocks, GET /health and
 * every gateway response: infra/constructs/webhook-api.ts), so that a caller reads the same header on both.
 */
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

export function gatewayErrorResult(code: GatewayErrorCode): HttpResult {
  const { statusCode, message } = GATEWAY_ERRORS[code];
  return { statusCode, body: errorBody(code, message) };
}

/** `GET /health` answers 200 with this body; it never starts an execution. */
export function healthBody(extra: Record<string, unknown> = {}): { status: 'ok'; [key: string]: unknown } {
  return { status: 'ok', ...extra };
}
