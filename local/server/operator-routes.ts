import type { IncomingMessage, ServerResponse } from 'node:http';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { errorBody } from '../../functions/domain/gateway-contract.ts';
import type { LocalRedelivery } from '../engine/redelivery.ts';
import type { LocalFailedDeliveryStore } from '../store/failed-delivery-store.ts';
import { sendJson } from './http.ts';
import { isLoopbackCaller } from './loopback.ts';
import { type RouteHandler, router } from './router.ts';

/** /local/deliveries: what `webhook-gateway deliveries` and the console's Redrive button call. Loopback only. */
export function operatorRoutes(ctx: {
  failedDeliveries: LocalFailedDeliveryStore;
  redelivery: LocalRedelivery;
}): RouteHandler {
  const routes = router([
    {
      path: /^\/local\/deliveries$/,
      methods: { GET: async (_req, res) => sendJson(res, 200, await ctx.failedDeliveries.list()) },
    },
    {
      path: /^\/local\/deliveries\/([^/]+)\/redrive$/,
      methods: {
        POST: async (_req, res, match) => {
          const id = decodeURIComponent(match[1]!);
          if (!isConversationId(id))
            return sendJson(res, 400, errorBody('VALIDATION_ERROR', `"${id}" is not a conversation id`));
          const result = await ctx.redelivery.redrive(id);
          sendJson(res, result.status === 'not_found' ? 404 : 200, result);
        },
      },
    },
  ]);
  return async (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    if (!isLoopbackCaller(req))
      return sendJson(res, 403, errorBody('FORBIDDEN', 'operator endpoints answer loopback callers only'));
    return routes(req, res);
  };
}
