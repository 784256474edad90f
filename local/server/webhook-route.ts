import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DELIVERY_SECRETS_FILE_ERROR } from '../../functions/domain/errors.ts';
import {
  type ExecutionInput,
  errorBody,
  gatewayErrorResult,
  httpResultForExecution,
  INTEGRATION_TIMEOUT_HEADERS,
  integrationTimeoutBody,
  MAX_BODY_BYTES,
  MAX_EXECUTION_INPUT_BYTES,
  NO_STORE,
  pickForwardedHeaders,
  prefersRespondAsync,
  TIMED_OUT_STATUS,
} from '../../functions/domain/gateway-contract.ts';
import { claimedSource } from '../../functions/domain/request.ts';
import type { EndedExecution } from '../engine/engine.ts';
import { conversationIdOf } from '../store/execution-store.ts';
import { type LocalApiKeys, requestApiKey } from './api-keys.ts';
import type { RequestSummary } from './config.ts';
import { BodyTooLargeError, readBody, refusedByHttpLayer, sendJson } from './http.ts';
import type { RateLimiter } from './rate-limiter.ts';
import {
  damagedFileInCause,
  STORAGE_RETRY_AFTER_SECONDS,
  stateUnreadableBody,
  storageFailureBefore,
  storageFailureInCause,
  storageUnavailableBody,
} from './storage-failure.ts';

/**
 * POST /webhook, as the API Gateway integration does it: refuse what never becomes an execution (media type, size,
 * rate), build the execution input (gateway-contract.ts), run the conversation — or, with `Prefer: respond-async`,
 * the accept workflow, which starts it without waiting — and map its status and error to HTTP.
 */
export interface WebhookRouteContext {
  runConversation(input: ExecutionInput): Promise<EndedExecution>;
  acceptConversation(input: ExecutionInput): Promise<EndedExecution>;
  /** The gateway's own base URL: the 202's status URL starts with it when the request's Host is no host[:port]. */
  baseUrl: string;
  /** PUBLIC_URL's base (`https://example.com/gw`), or null: the base of the status URL whatever the Host. */
  publicUrl?: string | null;
  limiter: RateLimiter;
  /** Per-source API keys (API_KEYS); none configured: no key needed (api-keys.ts). */
  apiKeys?: LocalApiKeys;
  onExecution?: (summary: RequestSummary) => void;
  /** How long the caller waits for the answer (RESPONSE_TIMEOUT_MS: API Gateway's integration timeout). */
  responseTimeoutMs: number;
  /** Starts the caller's timer: `fire` after `ms`; returns what cancels it (GatewayOptions.responseTimer). */
  responseTimer: (ms: number, fire: () => void) => () => void;
  /** The clock a request's `received_at` is read on, where its budget starts (GatewayOptions.budgetClock). */
  now: () => number;
  /** The conversation id an execution under way has so far (once Validate chose it), else null. */
  runningConversationId?: (executionName: string) => string | null;
}

/** The caller's timer by default: it keeps no process alive. */
export function responseTimeout(ms: number, fire: () => void): () => void {
  const timer = setTimeout(fire, ms);
  timer.unref();
  return () => clearTimeout(timer);
}

function describe(body: unknown): string {
  const b = body as {
    tracking?: { webhook_type?: string; delivery_status?: string };
    error?: { code?: string; message?: string };
  };
  if (b.tracking) return `${b.tracking.webhook_type} ${b.tracking.delivery_status}`;
  if ((body as { status_url?: string }).status_url) return 'accepted: running without the caller';
  return `${b.error?.code ?? 'error'}: ${String(b.error?.message ?? '').slice(0, 120)}`;
}

/**
 * A delivery the gateway itself failed, its delivery secrets file damaged while it runs (docs/operations.md, "After
 * a crash"): the error, which names the file and what to do, for the operator's line; null otherwise.
 */
function ownDeliveryFault(record: EndedExecution): string | null {
  const failed = record.events.findLast(
    (e) => e.type === 'StateFailed' && e.state === 'Deliver' && e.error === DELIVERY_SECRETS_FILE_ERROR,
  );
  return typeof failed?.cause === 'string' ? failed.cause : null;
}

/** The operator's line for a run that ended: what the caller got, and a delivery the gateway itself failed. */
function describeRun(record: EndedExecution, body: unknown): string {
  const fault = ownDeliveryFault(record);
  return fault ? `${describe(body)} (${fault})` : describe(body);
}

/** The operator line's status for a caller that left before its answer: nginx's 499 (client closed request). */
const CLIENT_CLOSED_STATUS = 499;

/**
 * How the caller left before its answer, or null while it waits (docs/operations.md#the-operator-log): a connection
 * reset or closed both ways cannot take an answer; one that only sent its FIN may have half-closed and still read, so
 * it is answered all the same. A client that gives up closes with a FIN too: which of the two it was, no server can
 * tell, so the line says 499 for both.
 */
function callerLeft(req: IncomingMessage, res: ServerResponse): 'closed' | 'half-closed' | null {
  if (res.destroyed || req.socket.destroyed) return 'closed';
  return req.socket.readableEnded ? 'half-closed' : null;
}

/** A half-closed caller's answer is the connection's last: it says so. */
function ending(left: 'half-closed' | null): Record<string, string> {
  return left === 'half-closed' ? { connection: 'close' } : {};
}

/** The operator's line for a caller that left before its answer, the conversation going on without it. */
function leftLine(left: 'closed' | 'half-closed', tense: 'went' | 'goes', outcome?: string): string {
  const how =
    left === 'closed'
      ? 'closed the connection before its answer'
      : 'closed its side of the connection before its answer (answered, should it still read)';
  return `CLIENT_CLOSED: the caller ${how}; the conversation ${tense} on${outcome ? `: ${outcome}` : ''}`;
}

/**
 * The operator log's line for the end of a run nobody waits for, an asynchronous conversation's (its caller had its
 * 202 long before) or one whose caller had the 504 of RESPONSE_TIMEOUT_MS:
 * the status and answer a synchronous call would have got, as `GET /conversations/{id}` now reports it.
 */
export function asyncRunSummary(record: EndedExecution, durationMs: number, what = 'async run ended'): RequestSummary {
  const { result, fault } = answerFor(record);
  return {
    http_status: result.statusCode,
    conversation_id: conversationIdOf(record) ?? record.execution_name,
    detail: `${what}: ${fault ?? describeRun(record, result.body)}`,
    duration_ms: Math.round(durationMs),
  };
}

/**
 * The answer to a run that ended, and the operator's detail when the gateway's data folder is at fault (else null): a
 * handler that could not write it (full, read-only) failed the workflow, 503, not a bug's 500; a file it needed is
 * damaged (a cut idempotency record, …), 500 saying so, the operator's line naming the file.
 */
function answerFor(
  record: EndedExecution,
  baseUrl?: string,
): { result: { statusCode: number; body: unknown; headers?: Record<string, string> }; fault: string | null } {
  const storage =
    record.status === 'FAILED'
      ? (storageFailureInCause(record.error, record.cause) ?? storageFailureBefore(record.error, record.events))
      : null;
  if (storage) {
    const body = storageUnavailableBody(storage);
    return {
      result: { statusCode: 503, body, headers: { 'retry-after': String(STORAGE_RETRY_AFTER_SECONDS) } },
      fault: `${describe(body)} (${storage.message})`,
    };
  }
  const damaged = record.status === 'FAILED' ? damagedFileInCause(record.error, record.cause) : null;
  if (damaged)
    return {
      result: { statusCode: 500, body: stateUnreadableBody(record.cause) },
      fault: `STATE_UNREADABLE: ${damaged}`,
    };
  const result = httpResultForExecution(
    {
      status: record.status,
      output: record.output === undefined ? undefined : JSON.stringify(record.output),
      error: record.error,
      cause: record.cause,
    },
    baseUrl,
  );
  return { result, fault: null };
}

/** A Host header that is a host name or address, with or without a port: nothing that could carry a path. */
const HOST_HEADER = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/;

/**
 * The API as the caller reached it, where the 202's status URL points (docs/contract.md, asynchronous start), as API
 * Gateway's `$context.domainName` gives it: the request's Host. A gateway on every interface (HOST=0.0.0.0) is called
 * by other machines under its network name or address, where its own loopback URL would name the caller's machine.
 */
function reachedBase(req: IncomingMessage, ownUrl: string, publicUrl: string | null = null): string {
  // Behind a reverse proxy the Host is the proxy's choice (often 127.0.0.1) and the public path prefix is gone:
  // the operator's PUBLIC_URL names both (X-Forwarded-* are not trusted: docs/security.md).
  if (publicUrl !== null) return publicUrl;
  const host = req.headers.host;
  return host && HOST_HEADER.test(host) ? `http://${host}` : ownUrl;
}

export async function handleWebhook(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: WebhookRouteContext,
): Promise<void> {
  const requestId = randomUUID();
  const headers = { 'x-request-id': requestId };
  const received = performance.now();
  // What API Gateway refuses before any execution (key, media type, size, rate): one operator log line each too.
  const refuse = (statusCode: number, body: unknown, extra: Record<string, string> = {}) => {
    sendJson(res, statusCode, body, { ...headers, ...extra });
    ctx.onExecution?.({
      http_status: statusCode,
      conversation_id: null,
      detail: describe(body),
      duration_ms: Math.round(performance.now() - received),
    });
  };
  // API Gateway checks the API key first; with keys, the key's source is the one whose rate limit counts.
  const apiKey = requestApiKey(ctx.apiKeys, req);
  if (apiKey === null) {
    req.resume();
    const refused = gatewayErrorResult('INVALID_API_KEY');
    return refuse(refused.statusCode, refused.body, NO_STORE);
  }
  // Content-Type is a singleton field (RFC 9110 §8.3): given twice, Node keeps the first and drops the other, and
  // which one API Gateway reads to pick its request template is not documented. A request that names two media types
  // (or the same twice) is refused rather than read as one of them: the client sends it once (docs/contract.md).
  const contentTypes = req.headersDistinct['content-type'] ?? [];
  if (contentTypes.length > 1) {
    req.resume();
    return refuse(
      415,
      errorBody(
        'UNSUPPORTED_MEDIA_TYPE',
        `Content-Type must be given once, as application/json; got it ${contentTypes.length} times: ${contentTypes.map((t) => `"${t}"`).join(', ')}`,
      ),
    );
  }
  // No Content-Type reads as JSON, as API Gateway reads it (its default media type is application/json); any other
  // type has no request template there: 415.
  const contentType = String(req.headers['content-type'] ?? '');
  if (contentType !== '' && !/^application\/json\s*(;|$)/i.test(contentType)) {
    req.resume();
    return refuse(
      415,
      errorBody('UNSUPPORTED_MEDIA_TYPE', `Content-Type must be application/json, got "${contentType}"`),
    );
  }
  // The answer API Gateway gives (GATEWAY_ERRORS): the limit is the execution input's, which a body under 256 KB can
  // still exceed once escaped into it, so the message never says the body alone was over.
  const tooLarge = () => {
    const refused = gatewayErrorResult('PAYLOAD_TOO_LARGE');
    refuse(refused.statusCode, refused.body, { connection: 'close' });
  };
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
    req.resume();
    return tooLarge();
  }
  let raw: Buffer;
  try {
    raw = await readBody(req, MAX_BODY_BYTES);
  } catch (error) {
    if (error instanceof BodyTooLargeError) return tooLarge();
    // Refused by the HTTP layer (a body too slow, cut by a FIN), which answered and wrote the line; or gone.
    if (refusedByHttpLayer(req.socket)) return;
    if (callerLeft(req, res) === 'closed')
      return ctx.onExecution?.({
        http_status: CLIENT_CLOSED_STATUS,
        conversation_id: null,
        detail: 'CLIENT_CLOSED: the caller closed the connection before its request was whole; nothing was run',
        duration_ms: Math.round(performance.now() - received),
      });
    throw error;
  }
  const input: ExecutionInput = {
    body: raw.toString('utf8'),
    headers: pickForwardedHeaders(req.headers),
    request_id: requestId,
    source_ip: req.socket.remoteAddress ?? 'unknown',
    received_at: new Date(ctx.now()).toISOString(),
    ...(apiKey.id ? { api_key_id: apiKey.id } : {}),
  };
  if (Buffer.byteLength(JSON.stringify(input)) > MAX_EXECUTION_INPUT_BYTES) return tooLarge();
  const source = apiKey.source ?? claimedSource(input.body);
  const limited = source === null ? ({ allowed: true } as const) : ctx.limiter.take(source);
  if (!limited.allowed) {
    return refuse(
      429,
      errorBody(
        'RATE_LIMITED',
        `Too many requests from ${source}: ${limited.reason}; retry after ${limited.retryAfterSeconds} s`,
      ),
      { ...NO_STORE, 'retry-after': String(limited.retryAfterSeconds) },
    );
  }
  const started = performance.now();
  const run = (prefersRespondAsync(req.headers.prefer) ? ctx.acceptConversation : ctx.runConversation)(input);
  // API Gateway stops waiting at its integration timeout and answers 504 itself, the execution going on: so does
  // this route at RESPONSE_TIMEOUT_MS (the budget, functions/domain/budget.ts, has the workflow answer before it).
  let cancel = () => {};
  const cutOff = new Promise<null>((resolve) => {
    cancel = ctx.responseTimer(ctx.responseTimeoutMs, () => resolve(null));
  });
  const answered = await Promise.race([run, cutOff]);
  cancel();
  if (answered === null) {
    const left = callerLeft(req, res);
    if (left !== 'closed')
      sendJson(
        res,
        TIMED_OUT_STATUS,
        integrationTimeoutBody('POST /webhook', 'the integration timeout (RESPONSE_TIMEOUT_MS)'),
        { ...headers, ...NO_STORE, ...INTEGRATION_TIMEOUT_HEADERS, ...ending(left) },
      );
    const cutAt = performance.now();
    ctx.onExecution?.({
      http_status: left ? CLIENT_CLOSED_STATUS : TIMED_OUT_STATUS,
      // For the operator (the caller's 504 has none, as API Gateway's): the conversation to look for.
      conversation_id: ctx.runningConversationId?.(input.request_id) ?? null,
      detail: left
        ? leftLine(left, 'goes')
        : `TIMEOUT: no answer within RESPONSE_TIMEOUT_MS (${ctx.responseTimeoutMs} ms); the conversation goes on`,
      duration_ms: Math.round(cutAt - started),
    });
    // The operator's line for its end, as for an asynchronous conversation's run (its caller had the 504).
    const record = await run;
    const what = left ? 'run ended after the caller left' : "run ended after the caller's 504";
    ctx.onExecution?.(asyncRunSummary(record, performance.now() - started, what));
    return;
  }
  const record = answered;
  // Without API keys (local only) the named source is charged: a sender that cannot sign for it gives the token back.
  // A key's request is its usage plan's, whatever it is answered, as on AWS (docs/security.md).
  if (source !== null && apiKey.source === undefined && limited.allowed && record.error === 'SignatureError')
    ctx.limiter.refund(source);
  const { result, fault } = answerFor(record, reachedBase(req, ctx.baseUrl, ctx.publicUrl ?? null));
  // A caller that left is not written to; nothing is lost either way: the conversation ran, its answer is kept.
  const left = callerLeft(req, res);
  if (left !== 'closed')
    sendJson(res, result.statusCode, result.body, { ...headers, ...result.headers, ...ending(left) });
  // A retry with a known Idempotency-Key answers the first conversation's response without running it again.
  const replayed = record.events.some((e) => e.state === 'ReplayFirstResponse');
  const detail =
    fault ?? (replayed ? `replayed (Idempotency-Key): ${describe(result.body)}` : describeRun(record, result.body));
  ctx.onExecution?.({
    http_status: left ? CLIENT_CLOSED_STATUS : result.statusCode,
    conversation_id: conversationIdOf(record) ?? (result.body as { conversation_id?: string }).conversation_id ?? null,
    detail: left ? leftLine(left, 'went', detail) : detail,
    duration_ms: Math.round(performance.now() - started),
  });
}
