import type { Context } from 'aws-lambda';
import {
  authorizeStatusRequest,
  STATUS_ANSWER_MARGIN_MS,
  type StatusRequest,
  statusResult,
  statusTimeoutResult,
  statusUnavailableResult,
} from '../domain/conversation-status.ts';
import { type HttpResult, JSON_CONTENT_TYPE } from '../domain/gateway-contract.ts';
import { conversationStatusStore } from '../shared/conversation-status-store.ts';
import { logger, stageHandler } from '../shared/powertools.ts';
import { inboundPolicy } from '../shared/secrets.ts';
import { settings } from '../shared/settings.ts';

/**
 * What the status route is given: the parts of API Gateway's Lambda proxy event it reads (the local server builds
 * the same object for its own GET /conversations/{id}).
 */
export interface StatusHttpEvent {
  pathParameters: { conversation_id?: string } | null;
  queryStringParameters: Record<string, string | undefined> | null;
  headers: Record<string, string | undefined> | null;
  requestContext?: { identity?: { apiKeyId?: string | null } };
}

export interface StatusHttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * GET /conversations/{id}?source_system=…: the status of a conversation started with `Prefer: respond-async`
 * (docs/contract.md#get-conversationsid). The source proves itself as for a POST (its signature over the request
 * target, its API key on AWS) before anything is read, and reads only its own conversations.
 */
export const handler = stageHandler(
  'ConversationStatus',
  async (event: StatusHttpEvent, context?: Context): Promise<StatusHttpResponse> => {
    const answer = statusAnswer(event);
    if (!context?.getRemainingTimeInMillis) return answer;
    const conversationId = (event.pathParameters?.conversation_id ?? '').slice(0, 80);
    // A read that failed (the table or the secrets refusing or throttling it) would end as API Gateway's bare 502
    // "Internal server error": the route answers 503 in the contract's shape, to be asked again (locally the
    // gateway's route answers the data folder's failure itself).
    const answered = answer.catch((error: Error) => {
      logger.error('Conversation status not read: answered 503 STORAGE_UNAVAILABLE', {
        conversation_id: conversationId,
        error,
      });
      return http(statusUnavailableResult());
    });
    // A read slower than the function's timeout (its clients' limits allow more at worst) would end as API Gateway's
    // 502 for a Lambda that timed out: the route answers 504 itself first (docs/contract.md, Errors).
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<StatusHttpResponse>((resolve) => {
      timer = setTimeout(
        () => {
          logger.warn('Conversation status not read in time: answered 504 TIMEOUT', {
            conversation_id: conversationId,
          });
          resolve(http(statusTimeoutResult()));
        },
        Math.max(0, context.getRemainingTimeInMillis() - STATUS_ANSWER_MARGIN_MS),
      );
    });
    try {
      return await Promise.race([answered, late]);
    } finally {
      clearTimeout(timer);
    }
  },
);

async function statusAnswer(event: StatusHttpEvent): Promise<StatusHttpResponse> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event.headers ?? {}))
    if (value !== undefined) headers[name.toLowerCase()] = value;
  const request: StatusRequest = {
    conversation_id: event.pathParameters?.conversation_id ?? '',
    source_system: event.queryStringParameters?.source_system ?? null,
    headers,
    api_key_id: event.requestContext?.identity?.apiKeyId ?? null,
  };
  const authorized = authorizeStatusRequest(request, await inboundPolicy(), settings().apiKeySources);
  if (!authorized.ok) {
    logger.warn('Conversation status request refused', {
      event_type: 'WEBHOOK_STATUS_REJECTED',
      conversation_id: request.conversation_id.slice(0, 80),
      code: (authorized.result.body as { error: { code: string } }).error.code,
    });
    return http(authorized.result);
  }
  const store = conversationStatusStore();
  const record = store ? await store.get(request.conversation_id) : null;
  return http(statusResult(record, request.conversation_id, authorized.source, new Date()));
}

/**
 * Every answer of the route, refusals too, is `Cache-Control: no-store` (docs/contract.md#get-conversationsid), and
 * JSON in UTF-8 said as the local gateway's other routes say it (local/server/http.ts), on AWS too (Lambda proxy).
 */
function http(result: HttpResult): StatusHttpResponse {
  return {
    statusCode: result.statusCode,
    headers: { 'content-type': JSON_CONTENT_TYPE, 'cache-control': 'no-store', ...result.headers },
    body: JSON.stringify(result.body),
  };
}
