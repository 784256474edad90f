import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  maxHeaderSize,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  answerClientErrors,
  answerHalfClosedCallers,
  continueWhenRead,
  type EdgeFault,
  hostRefusal,
  keepServingAfterErrors,
  sendContinue,
  transferCodingRefusal,
  writeAnswer,
} from '../server/http.ts';
import { errorResponse, type S3Api, type S3Response } from './s3-api.ts';
import { headerNotImplemented, incompleteBody, methodNotAllowed, S3Error } from './s3-errors.ts';
import { element, xmlDocument } from './s3-xml.ts';

/**
 * The embedded S3's HTTP endpoint (what `aws --endpoint-url`, the SDKs and the CLI's own commands talk to): the
 * S3Api behind a plain Node HTTP server. Path-style requests, and virtual-hosted ones for `<bucket>.localhost`.
 */
export interface S3HttpServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** Host names of a loopback client (and virtual-hosted `<bucket>.localhost`): a rebound DNS name is refused. */
const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost|[a-z0-9][a-z0-9.-]*\.localhost|\[::1\])(:\d+)?$/i;

/**
 * The exports are the conversations: only a local client may read or change them. Like the gateway's operator
 * routes: addressed by a loopback name (no DNS rebinding), and when a browser says which page sent the request, only
 * a page of this very endpoint (`http://` and the Host it was sent to). A page of another server on this machine (a
 * dev server on http://localhost:9999, the gateway's own) may not post to ?delete or send a DELETE. The AWS CLI and
 * the SDKs send no Origin, and a browser that opens an object sends none either.
 */
function localRefusal(req: IncomingMessage): string | null {
  const host = req.headers.host ?? '';
  if (!LOOPBACK_HOST.test(host))
    return `requests addressed to 127.0.0.1, localhost, <bucket>.localhost or [::1], not to ${shown(host)}`;
  const origin = req.headers.origin;
  if (origin === undefined || origin.toLowerCase() === `http://${host}`.toLowerCase()) return null;
  // Said apart: a developer's page of another local server (a dev server) sent it, not a client with a wrong Host.
  return `from a browser, pages of its own origin (http://${shown(host).slice(1, -1)}) only, not a page of ${shown(origin)}`;
}

/** A header value as the refusal quotes it: printable ASCII, at most 100 characters, in quotes. */
function shown(value: string): string {
  return JSON.stringify(value.replace(/[^\x20-\x7e]/g, '?').slice(0, 100));
}

/** The 403 of a request that is not a local client's, saying why (its host, or the page that sent it). */
function accessDenied(why: string): Buffer {
  return xmlDocument(
    'Error',
    element('Code', 'AccessDenied') + element('Message', `The embedded S3 answers local clients only: ${why}.`),
    false,
  );
}

/** `/key` on host `<bucket>.localhost` is `/<bucket>/key`; anything else is already path-style. */
export function pathStyle(host: string | undefined, path: string): string {
  const hostname = (host ?? '').replace(/:\d+$/, '').toLowerCase();
  return hostname.endsWith('.localhost') ? `/${hostname.slice(0, -'.localhost'.length)}${path}` : path;
}

export function flatHeaders(headers: IncomingHttpHeaders | Record<string, string>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers))
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(',') : value;
  return out;
}

/**
 * Nothing the embedded S3 serves is ever active in a browser. Its origin (http://127.0.0.1:<port>) is a loopback page
 * to the gateway's operator routes and to this endpoint, and an export holds what a sender wrote: opened as HTML
 * (`?response-content-type=text/html`, which S3 honours without a signature here, or an object stored as text/html)
 * it would run the sender's script with that trust. Sandboxed, such a document runs no script and has no origin.
 */
const INERT = {
  'content-security-policy': "default-src 'none'; sandbox",
  'x-content-type-options': 'nosniff',
};

function send(response: S3Response, res: ServerResponse, head: boolean): Promise<void> | void {
  const { body } = response;
  if (Buffer.isBuffer(body) && response.headers['content-length'] === undefined)
    response.headers['content-length'] = String(body.length);
  try {
    res.writeHead(response.status, { ...response.headers, ...INERT });
  } catch (error) {
    // A header Node cannot write (a stored header value past ISO-8859-1): the object's file is closed here.
    if (body && !Buffer.isBuffer(body)) body.destroy();
    throw error;
  }
  if (!body || head) {
    if (body && !Buffer.isBuffer(body)) body.destroy();
    res.end();
  } else if (Buffer.isBuffer(body)) {
    res.end(body);
  } else {
    endedWithConnection(res.req.socket, body);
    return pipeline(body, res).catch(() => {
      res.destroy();
    });
  }
}

/** The objects' bodies being sent on each connection (at most one listener on it). */
const sending = new WeakMap<Socket, Set<Readable>>();

/**
 * A body (an object's open file) destroyed when its connection closes. A pipelined request's answer waits for the one
 * before it, and Node leaves a waiting answer waiting for good when the client goes away (it destroys the request,
 * not the answer): the object's file stayed open until garbage collection, the process's descriptors running out
 * under clients that pipeline and drop.
 */
function endedWithConnection(socket: Socket, body: Readable): void {
  if (socket.destroyed) {
    body.destroy();
    return;
  }
  let bodies = sending.get(socket);
  if (!bodies) {
    const open = new Set<Readable>();
    sending.set(socket, open);
    socket.once('close', () => {
      for (const b of open) b.destroy();
      open.clear();
    });
    bodies = open;
  }
  const open = bodies;
  open.add(body);
  body.once('close', () => open.delete(body));
}

/**
 * What Node's HTTP parser refuses or its clock cuts off, answered as S3 answers it, in an `<Error>` document the SDKs
 * and the AWS CLI read (Node would answer a bare 400, 431 or 408): headers over Node's 16 KB 400
 * RequestHeaderSectionTooLarge, a client too slow 400 RequestTimeout (which they retry), a request its client ended
 * before it was whole 400 IncompleteBody, a method no HTTP server knows 405 MethodNotAllowed, malformed framing (a
 * Content-Length that is no number, Transfer-Encoding beside it, a bad chunk…) 400 InvalidRequest naming the reason.
 */
function edgeError(fault: EdgeFault): S3Error {
  switch (fault.kind) {
    case 'headers-too-large':
      return new S3Error(
        'RequestHeaderSectionTooLarge',
        400,
        'Your request header section exceeds the maximum allowed size.',
        {
          MaxSizeAllowed: String(maxHeaderSize),
        },
      );
    case 'timeout':
      return new S3Error(
        'RequestTimeout',
        400,
        'Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.',
      );
    case 'cut-short':
      return incompleteBody();
    case 'unknown-method':
      return methodNotAllowed(fault.detail);
    default:
      return new S3Error('InvalidRequest', 400, `Malformed HTTP request: ${fault.detail}`);
  }
}

/**
 * What the API's answer could not be sent for: said on the gateway's stderr as the API's own internal errors are
 * (`embedded S3: <method> <path>: <stack>`), and answered 500 InternalError while nothing of the answer has gone out;
 * after that, the connection is closed (a cut body is all the client can be told). Before, the connection was
 * dropped with no answer and no line.
 */
function answerFailure(req: IncomingMessage, res: ServerResponse, error: Error): void {
  process.stderr.write(`embedded S3: ${req.method} ${req.url}: ${error.stack ?? error.message}\n`);
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const head = req.method === 'HEAD';
  send(
    errorResponse(new S3Error('InternalError', 500, 'We encountered an internal error. Please try again.'), head),
    res,
    head,
  );
}

/** A request refused before the API sees it: its answer, then the connection closed (its body is not read). */
function refuseRequest(req: IncomingMessage, res: ServerResponse, error: S3Error): void {
  req.resume();
  const refused = errorResponse(error, req.method === 'HEAD');
  send({ ...refused, headers: { ...refused.headers, connection: 'close' } }, res, false);
}

/** An error answered on the connection itself (Node has no request for it), which is then closed. */
function refuseOnSocket(socket: Duplex, error: S3Error): void {
  const { status, headers, body } = errorResponse(error, false);
  writeAnswer(socket, status, { ...headers, ...INERT }, String(body));
}

/**
 * The body of a request that sent `Expect: 100-continue`: the client sends it after the 100, which goes out when the
 * API starts reading it. A request refused by its headers first (NoSuchBucket, EntityTooLarge by its Content-Length,
 * NoSuchUpload…) is answered without it, and its body never sent, as S3 does.
 */
async function* afterContinue(req: IncomingMessage): AsyncGenerator<Buffer> {
  sendContinue(req);
  yield* req;
}

export function serveS3Api(
  api: S3Api,
  options: { host: string; port: number; headersTimeoutMs: number; requestTimeoutMs: number },
): Promise<S3HttpServer> {
  // Slow clients are cut off (408), as by the gateway: the headers within headersTimeoutMs, the request within
  // requestTimeoutMs (a multipart upload sends each part as its own request).
  const timeouts = {
    headersTimeout: options.headersTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, Math.ceil(options.headersTimeoutMs / 3)),
  };
  // Without a Host, or with two, a request is refused in S3's shape below (Node's own check answers a bare 400).
  const server = createServer({ ...timeouts, requireHostHeader: false }, (req, res) => {
    const badHost = hostRefusal(req);
    if (badHost) {
      refuseRequest(req, res, new S3Error('InvalidRequest', 400, badHost));
      return;
    }
    const refused = localRefusal(req);
    if (refused !== null) {
      req.resume();
      const body = accessDenied(refused);
      res.writeHead(403, { 'content-type': 'application/xml', 'content-length': body.length, ...INERT });
      res.end(body);
      return;
    }
    // A transfer coding other than chunked (`gzip, chunked`, `identity`): S3's 501 for a header it does not honour.
    // Node's parser decodes chunked alone, so the body would reach the API still coded; and a coding that does not end
    // in chunked makes Node fail the request just after this handler: answered here, synchronously, that answer goes
    // out rather than Node's 400 (as the gateway's, local/server/gateway.ts). Before, `gzip, chunked` was served
    // (a GET, a listing) and `identity` answered 400 InvalidRequest "Malformed HTTP request".
    if (transferCodingRefusal(req)) {
      refuseRequest(req, res, headerNotImplemented('Transfer-Encoding'));
      return;
    }
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    let path = q < 0 ? target : target.slice(0, q);
    if (!path.startsWith('/')) {
      try {
        path = new URL(path).pathname; // absolute-form target
      } catch {
        path = '/';
      }
    }
    api
      .handle({
        method: req.method ?? 'GET',
        path: pathStyle(req.headers.host, path),
        query: new URLSearchParams(q < 0 ? '' : target.slice(q + 1)),
        headers: flatHeaders(req.headers),
        body: req.headers.expect === undefined ? req : afterContinue(req),
      })
      .then((response) => send(response, res, req.method === 'HEAD'))
      .catch((error: Error) => answerFailure(req, res, error));
  });
  continueWhenRead(server);
  answerHalfClosedCallers(server);
  // An Expect other than 100-continue, which Node would answer with a bare 417: S3's answer to a header it does not
  // honour, in its <Error> document.
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) =>
    refuseRequest(req, res, headerNotImplemented('Expect')),
  );
  server.on(
    'clientError',
    answerClientErrors((fault, socket) => refuseOnSocket(socket, edgeError(fault))),
  );
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    refuseOnSocket(socket, methodNotAllowed('CONNECT'));
    socket.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(Object.assign(error, { port: options.port })));
    server.listen(options.port, options.host, () => {
      server.removeAllListeners('error');
      keepServingAfterErrors(server, `the embedded S3 at ${options.host}:${(server.address() as AddressInfo).port}`);
      resolve({
        server,
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
