import type { IncomingMessage } from 'node:http';

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
