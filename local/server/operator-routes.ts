import type { IncomingMessage, ServerResponse } from 'node:http';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { errorBody } from '../../functions/domain/gateway-contract.ts';
import type { RedeliveryResult } from '../../functions/shared/redelivery.ts';
import type { LocalRedelivery } from '../engine/redelivery.ts';
import type { LocalFailedDeliveryStore } from '../store/failed-delivery-store.ts';
import { sendJson } from './http.ts';
import { isLoopbackCaller } from './loopback.ts';

/** /local/deliveries: what `webhook-gateway deliveries` and the console's Redrive button call. Loopback only. */
export async function handleOperatorRoute(
  pathname: string,
  req: IncomingMessage,
  res: ServerResponse,
  ctx: { failedDeliveries: LocalFailedDeliveryStore; redelivery: LocalRedelivery },
): Promise<void> {
  req.resume();
  const method = req.method ?? 'GET';
  if (!isLoopbackCaller(req))
    return sendJson(res, 403, errorBody('FORBIDDEN', 'operator endpoints answer loopback callers only'));
  if (pathname === '/local/deliveries' && method === 'GET')
    return sendJson(res, 200, await ctx.failedDeliveries.list());
  const redrive = /^\/local\/deliveries\/([^/]+)\/redrive$/.exec(pathname);
  if (redrive && method === 'POST') {
    const id = decodeURIComponent(redrive[1]!);
    if (!isConversationId(id))
      return sendJson(res, 400, errorBody('VALIDATION_ERROR', `"${id}" is not a conversation id`));
    const result: RedeliveryResult = await ctx.redelivery.redrive(id);
    return sendJson(res, result.status === 'not_found' ? 404 : 200, result);
  }
  return sendJson(res, 404, errorBody('NOT_FOUND', `No route for ${method} ${pathname}`));
}
