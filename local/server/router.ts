/**
 * The one router of the local server (the gateway's routes, the operator endpoints, the console): a path matched
 * with a wrong method is 405 with an Allow header, an unknown path 404, a request target that is not a path or has
 * malformed percent-encoding 400, the same way everywhere. Each surface says how it writes those answers (JSON error
 * bodies for the API, HTML or text for the console).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody, NO_STORE, STATUS_ROUTE_PREFIX } from '../../functions/domain/gateway-contract.ts';
import { sendJson } from './http.ts';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, match: RegExpExecArray) => Promise<void>;

export type Route =
  | {
      path: RegExp;
      /** By HTTP method; a GET handler answers HEAD too. */
      methods: Partial<Record<string, RouteHandler>>;
      /**
       * Who may call the path at all (loopbackOnly, operatorOnly): it wraps every method's handler and the 405 of
       * another method alike, so a caller it refuses gets its refusal (403) whatever the method.
       */
      guard?: (handler: RouteHandler) => RouteHandler;
    }
  /** Every method: a surface with routes of its own (the operator endpoints, the console). */
  | { path: RegExp; mount: RouteHandler };

/**
 * How a surface answers a request no route takes: 400 (not a path), 404 (no such path) or 405 (a known path, another
 * method).
 */
export type Refuse = (
  req: IncomingMessage,
  res: ServerResponse,
  status: 400 | 404 | 405,
  message: string,
  headers: Record<string, string>,
) => void | Promise<void>;

/**
 * The API's refusals: the contract's error body (NOT_FOUND, METHOD_NOT_ALLOWED). Under `/conversations/` with
 * `Cache-Control: no-store`, as every other answer there (docs/contract.md#get-conversationsid: "Always"): the 405 of
 * `POST /conversations/{id}`, the 404 of `/conversations/{id}/`.
 */
const refuseJson: Refuse = (req, res, status, message, headers) => {
  req.resume();
  const code = status === 400 ? 'BAD_REQUEST' : status === 404 ? 'NOT_FOUND' : 'METHOD_NOT_ALLOWED';
  const target = req.url ?? '';
  const raw = /^https?:\/\//i.test(target) ? target.replace(/^https?:\/\/[^/?#]*/i, '') : target;
  const uncached = raw.startsWith(STATUS_ROUTE_PREFIX) ? NO_STORE : {};
  sendJson(res, status, errorBody(code, message), { ...uncached, ...headers });
};

/** An absolute path of RFC 3986's path characters (`[` and `]` belong to a host, never to a path). */
const ABSOLUTE_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;

/**
 * The path of a request target — origin-form (`/webhook?x=1`), or absolute-form (`http://host/webhook`, as a proxy
 * sends it) — or null when it is neither (`//[`, `*`). A path whose percent-encoding does not decode is null too,
 * so no route ever meets one (each path parameter then decodes safely).
 */
export function requestPath(target: string): string | null {
  let path = target.split(/[?#]/, 1)[0]!;
  if (/^https?:\/\//i.test(path)) {
    try {
      path = new URL(target).pathname;
    } catch {
      return null;
    }
  }
  if (!ABSOLUTE_PATH.test(path)) return null;
  try {
    decodeURIComponent(path);
  } catch {
    return null;
  }
  return path;
}

export function router(
  routes: Route[],
  options: { refuse?: Refuse; notFoundHint?: string } = {},
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const refuse = options.refuse ?? refuseJson;
  return async (req, res) => {
    const pathname = requestPath(req.url ?? '/');
    if (pathname === null) {
      // A part of the gateway mounted at a path (the console) answers the addresses under it that do not decode, in
      // its own words (its router meets the same null path): a console page rather than the gateway's JSON.
      const raw = (req.url ?? '/').split(/[?#]/, 1)[0]!;
      for (const route of routes) {
        const match = 'mount' in route && ABSOLUTE_PATH.test(raw) ? route.path.exec(raw) : null;
        if (match && 'mount' in route) return route.mount(req, res, match);
      }
      return refuse(req, res, 400, 'The request target is not a path, or its percent-encoding is malformed', {});
    }
    const method = req.method ?? 'GET';
    for (const route of routes) {
      const match = route.path.exec(pathname);
      if (!match) continue;
      if ('mount' in route) return route.mount(req, res, match);
      const guard = route.guard ?? ((h: RouteHandler) => h);
      const handler = route.methods[method] ?? (method === 'HEAD' ? route.methods.GET : undefined);
      if (handler) return guard(handler)(req, res, match);
      const allow = Object.keys(route.methods)
        .flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]))
        .join(', ');
      return guard(async () =>
        refuse(req, res, 405, `${method} is not allowed on ${pathname}; use ${allow}`, { allow }),
      )(req, res, match);
    }
    const hint = options.notFoundHint ? ` ${options.notFoundHint}` : '';
    return refuse(req, res, 404, `No route for ${method} ${pathname}.${hint}`, {});
  };
}
