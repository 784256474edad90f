import type { IncomingMessage } from 'node:http';
import { errorBody } from '../../functions/domain/gateway-contract.ts';
import { sendJson } from './http.ts';
import type { RouteHandler } from './router.ts';

const LOOPBACK_ADDRESSES = ['127.0.0.1', '::1', '::ffff:127.0.0.1'];
/** Host names a loopback client uses; anything else (a rebound DNS name) is refused. */
const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/i;

/**
 * The operator surfaces (the console, /local/deliveries) answer a local operator only: a loopback connection,
 * addressed by a loopback name (no DNS rebinding), and — when a browser says where it comes from — from a
 * loopback page (no cross-site requests).
 */
export function isLoopbackCaller(req: IncomingMessage): boolean {
  if (!LOOPBACK_ADDRESSES.includes(req.socket.remoteAddress ?? '')) return false;
  if (!LOOPBACK_HOST.test(req.headers.host ?? '')) return false;
  const origin = req.headers.origin;
  return origin === undefined || (origin.startsWith('http://') && LOOPBACK_HOST.test(origin.slice('http://'.length)));
}

/** A route for the local operator only (isLoopbackCaller); anyone else gets 403 and nothing else happens. */
export function loopbackOnly(handler: RouteHandler): RouteHandler {
  return async (req, res, match) => {
    if (isLoopbackCaller(req)) return handler(req, res, match);
    req.resume();
    sendJson(res, 403, errorBody('FORBIDDEN', 'this endpoint answers loopback callers only'));
  };
}

/** An address the gateway listens on that only this machine can reach. */
export function isLoopbackAddress(host: string): boolean {
  return /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|::1|\[::1\])$/i.test(host);
}
