import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StatusHttpEvent, StatusHttpResponse } from '../../functions/conversation-status/handler.ts';
import {
  STATUS_ANSWER_MARGIN_MS,
  STATUS_FUNCTION_TIMEOUT_MS,
  statusTimeoutResult,
  statusUnavailableResult,
} from '../../functions/domain/conversation-status.ts';
import { gatewayErrorResult, NO_STORE } from '../../functions/domain/gateway-contract.ts';
import { canonicalSource } from '../../functions/domain/source-identity.ts';
import { UnreadableFileError } from '../../functions/shared/local-files.ts';
import { damagedFileMessage } from '../store/damaged-files.ts';
import { type LocalApiKeys, requestApiKey } from './api-keys.ts';
import { sendJson } from './http.ts';
import type { RateLimiter } from './rate-limiter.ts';
import { stateUnreadableBody, storageFailureOf, storageUnavailableBody } from './storage-failure.ts';

/**
 * GET (and HEAD) /conversations/{id}, as API Gateway does it: the same status Lambda handler
 * (functions/conversation-status/), given the proxy event's fields it reads (with API_KEYS, the id of the request's
 * key: the handler refuses another source's). The source's rate limit counts every request as a usage plan does: with
 * API_KEYS, the key's source, whatever the answer; without (local only: on AWS a limit comes with a key), the source
 * named, and a 401 gives its token back, so a sender that cannot sign for a source cannot spend its budget.
 */
export async function handleConversationStatus(
  req: IncomingMessage,
  res: ServerResponse,
  conversationId: string,
  limiter: RateLimiter,
  apiKeys: LocalApiKeys | undefined,
  /** Starts the answer's timer: `fire` after `ms`; returns what cancels it (GatewayOptions.responseTimer). */
  timer: (ms: number, fire: () => void) => () => void,
): Promise<void> {
  req.resume();
  const apiKey = requestApiKey(apiKeys, req);
  if (apiKey === null) {
    const refused = gatewayErrorResult('INVALID_API_KEY');
    return sendJson(res, refused.statusCode, refused.body, NO_STORE);
  }
  // A parameter given twice counts as its last, as API Gateway's proxy event passes it (queryStringParameters): the
  // source charged is the one the handler reads.
  const query = Object.fromEntries(new URL(req.url ?? '/', 'http://local').searchParams);
  const claimed = query.source_system;
  const source = apiKey.source ?? (claimed ? canonicalSource(claimed) : null);
  const limited = source === null ? ({ allowed: true } as const) : limiter.take(source);
  if (!limited.allowed) {
    return sendJson(
      res,
      429,
      {
        success: false,
        error: { code: 'RATE_LIMITED', message: `Too many requests from ${source}: ${limited.reason}` },
      },
      { ...NO_STORE, 'retry-after': String(limited.retryAfterSeconds) },
    );
  }
  const event: StatusHttpEvent = {
    pathParameters: { conversation_id: decoded(conversationId) },
    queryStringParameters: query,
    headers: Object.fromEntries(
      Object.entries(req.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : value]),
    ),
    requestContext: { identity: { apiKeyId: apiKey.id ?? null } },
  };
  const { handler } = await import('../../functions/conversation-status/handler.ts');
  // The AWS route's function answers 504 itself a second before its timeout: so does this route, at the same moment.
  let cancel = () => {};
  const late = new Promise<null>((resolve) => {
    cancel = timer(STATUS_FUNCTION_TIMEOUT_MS - STATUS_ANSWER_MARGIN_MS, () => resolve(null));
  });
  let response: StatusHttpResponse | null;
  try {
    response = await Promise.race([handler(event), late]);
  } catch (error) {
    // The data folder refused the read: 503 with the status function's Retry-After, as on AWS (the console line names
    // the file).
    const refused = storageFailureOf(error);
    if (refused) {
      console.error(
        `webhook-gateway: GET /conversations/${conversationId}: the data folder refused it (${refused.message}): answered 503 STORAGE_UNAVAILABLE`,
      );
      const unavailable = statusUnavailableResult();
      return sendJson(res, unavailable.statusCode, storageUnavailableBody(refused), unavailable.headers);
    }
    // Its status file is damaged: said so (the operator's line names the file), never 404 as if it were unknown.
    if (!(error instanceof UnreadableFileError)) throw error;
    console.error(`webhook-gateway: GET /conversations/${conversationId}: ${damagedFileMessage(error.message)}`);
    return sendJson(res, 500, stateUnreadableBody(error.message), NO_STORE);
  } finally {
    cancel();
  }
  if (response === null) {
    console.error(`webhook-gateway: GET /conversations/${conversationId}: not read in time: answered 504 TIMEOUT`);
    const timedOut = statusTimeoutResult();
    return sendJson(res, timedOut.statusCode, timedOut.body, { ...NO_STORE, ...timedOut.headers });
  }
  if (source !== null && apiKey.source === undefined && response.statusCode === 401) limiter.refund(source);
  res.writeHead(response.statusCode, { ...response.headers, 'content-length': Buffer.byteLength(response.body) });
  res.end(response.body);
}

/** The path segment as API Gateway passes a path parameter: percent-decoded (left as sent when it is not valid). */
function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
