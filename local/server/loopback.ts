import type { IncomingMessage } from 'node:http';
import { errorBody, NO_STORE } from '../../functions/domain/gateway-contract.ts';
import type { PublicBase } from './config.ts';
import { sendJson } from './http.ts';
import type { RouteHandler } from './router.ts';

const LOOPBACK_ADDRESSES = ['127.0.0.1', '::1', '::ffff:127.0.0.1'];
/** Host names a loopback client uses; anything else (a rebound DNS name) is refused. */
const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/i;

/**
 * Why a caller is not one on this machine that names it so, or null when it is: a loopback connection, addressed by a
 * loopback name (no DNS rebinding), and — when a browser says where it comes from — from a loopback page (no
 * cross-site requests). What the public routes of a loopback-bound gateway ask (loopbackOnly).
 */
function loopbackRefusal(req: IncomingMessage, publicUrl: PublicBase | null): string | null {
  if (!LOOPBACK_ADDRESSES.includes(req.socket.remoteAddress ?? '')) return 'it answers loopback connections only';
  const host = addressedTo(req);
  if (host === undefined) return 'the request names no Host (send Host: 127.0.0.1, localhost or [::1])';
  // The public name a reverse proxy on this machine passes on (PUBLIC_URL): the operator named it, so a page that
  // rebinds it reaches what the public reaches through the proxy anyway; an Origin then proves nothing either.
  if (publicUrl !== null && isPublicHost(host, publicUrl)) return null;
  if (!LOOPBACK_HOST.test(host)) {
    const also = publicUrl === null ? '' : ` and ${shown(publicUrl.host)} (PUBLIC_URL)`;
    return `it answers requests addressed to 127.0.0.1, localhost or [::1]${also} only, not to ${shown(host)}`;
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !(origin.startsWith('http://') && LOOPBACK_HOST.test(origin.slice('http://'.length))))
    return `it answers pages of this machine only, not a page of ${shown(origin)}`;
  return null;
}

/** Whether a request's host names PUBLIC_URL's: without case, and `example.com:443` as `example.com` for https. */
function isPublicHost(host: string, publicUrl: PublicBase): boolean {
  try {
    return new URL(`${new URL(publicUrl.base).protocol}//${host}`).host === publicUrl.host;
  } catch {
    return false;
  }
}

/**
 * The host a request is addressed to: its Host header, or — for an absolute-form target (`GET http://example.com/x`,
 * as a proxy sends it) — the target's authority, which replaces Host (RFC 9112 §3.2.2). Judging Host alone let
 * `GET http://evil.example/health` with `Host: 127.0.0.1` through. A target that does not parse names no loopback host.
 */
function addressedTo(req: IncomingMessage): string | undefined {
  const target = req.url ?? '';
  if (!/^https?:\/\//i.test(target)) return req.headers.host;
  try {
    return new URL(target).host;
  } catch {
    return target.slice(0, 100);
  }
}

/** A header value as an answer quotes it: printable ASCII, at most 100 characters. */
function shown(value: string): string {
  return JSON.stringify(value.replace(/[^\x20-\x7e]/g, '?').slice(0, 100));
}

/**
 * Why a request is not the local operator's, or null when it is. The operator surfaces (the console, /local/deliveries
 * and /local/endpoints, the sample agent and the built-in receiver) answer a loopback connection addressed by a
 * loopback name (no DNS rebinding) and, when a browser says which page sent it, only the console's own pages: an
 * Origin that is not this very origin (`http://` and the Host the request was sent to) is another site, or another
 * server on this machine (a dev server on http://localhost:9999), and may change nothing (docs/operations.md).
 */
export function operatorRefusal(req: IncomingMessage): string | null {
  if (!LOOPBACK_ADDRESSES.includes(req.socket.remoteAddress ?? '')) return 'it answers loopback connections only';
  const host = addressedTo(req) ?? '';
  if (!LOOPBACK_HOST.test(host))
    return `it answers requests addressed to 127.0.0.1, localhost or [::1] only, not to "${host}"`;
  const origin = req.headers.origin;
  if (origin !== undefined && origin.toLowerCase() !== `http://${host}`.toLowerCase())
    return `it answers the console's own pages (http://${host}) only, not a page of ${origin}`;
  return null;
}

/** A route for the local operator only (operatorRefusal); anyone else gets 403 with why, and nothing else happens. */
export function operatorOnly(handler: RouteHandler, what = 'this endpoint'): RouteHandler {
  return async (req, res, match) => {
    const refused = operatorRefusal(req);
    if (refused === null) return handler(req, res, match);
    req.resume();
    sendJson(res, 403, errorBody('FORBIDDEN', `${what} answers the local operator only: ${refused}`));
  };
}

/**
 * A route for loopback callers only (loopbackRefusal), or a reverse proxy on this machine passing PUBLIC_URL's host
 * on (`publicUrl`); anyone else gets 403 saying why (a loopback client that named
 * the machine otherwise learns what to send, or to listen with HOST=0.0.0.0), and nothing else happens.
 */
export function loopbackOnly(handler: RouteHandler, publicUrl: PublicBase | null = null): RouteHandler {
  return async (req, res, match) => {
    const refused = loopbackRefusal(req, publicUrl);
    if (refused === null) return handler(req, res, match);
    req.resume();
    sendJson(
      res,
      403,
      errorBody('FORBIDDEN', `this gateway listens on loopback and ${refused} (HOST=0.0.0.0 serves other machines)`),
      NO_STORE, // GET /conversations/{id} answers no-store always (docs/contract.md), its refusals too
    );
  };
}

/** An address the gateway listens on that only this machine can reach. */
export function isLoopbackAddress(host: string): boolean {
  return /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|::1|\[::1\])$/i.test(host);
}
