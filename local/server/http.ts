import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorBody, JSON_CONTENT_TYPE } from '../../functions/domain/gateway-contract.ts';
import type { RequestSummary } from './config.ts';

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': JSON_CONTENT_TYPE,
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/**
 * What the HTTP edge answers around the routes, in the error shape of docs/contract.md#errors with the operator's line
 * for each (docs/operations.md#the-operator-log), where Node would answer bare or not at all: what its parser refuses
 * or its clock cuts off (clientErrorHandler), an Expect it cannot meet (417), CONNECT (405). `Expect: 100-continue`
 * gets its 100 when a route reads the body (readBody), not before it could be refused. A caller that half-closes after
 * its request (FIN, still reading) is answered, as HTTP/1.1 allows: by default Node ended the connection at its FIN.
 */
export function answerAtTheEdge(
  server: Server,
  limits: { headersTimeoutMs: number; requestTimeoutMs: number },
  onRefused: (summary: RequestSummary) => void = () => {},
): void {
  continueWhenRead(server);
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const expectation = JSON.stringify(String(req.headers.expect).slice(0, 100));
    const message = `Expect: ${expectation} is not supported: only 100-continue is`;
    refuseBeforeRoutes(req, res, [417, 'EXPECTATION_FAILED', message], onRefused);
  });
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    const message = 'CONNECT is not served here: this gateway is no proxy';
    writeRefusal(socket, 405, 'METHOD_NOT_ALLOWED', message);
    socket.destroy();
    onRefused(refusalLine(405, 'METHOD_NOT_ALLOWED', message));
  });
  answerHalfClosedCallers(server);
  server.on('clientError', clientErrorHandler(limits, onRefused));
}

/**
 * A caller that half-closes after its request (FIN, still reading: `printf … | nc`, some proxies and HTTP/1.0
 * clients) gets its answer, as HTTP/1.1 allows, and the connection is closed after it. By default Node ended the
 * connection at its FIN and the answer was lost. (httpAllowHalfOpen: the Node http server's own switch for it,
 * undeclared in its types.)
 */
export function answerHalfClosedCallers(server: Server): void {
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
}

/**
 * Why a request's Host headers are refused, or null (RFC 9112 §3.2): an HTTP/1.1 request sends one, no request two.
 * (Node's own check, requireHostHeader, answers a bare 400.)
 */
export function hostRefusal(req: IncomingMessage): string | null {
  const hosts = req.rawHeaders.filter((name, i) => i % 2 === 0 && name.toLowerCase() === 'host').length;
  if (hosts === 0 && req.httpVersion === '1.1')
    return 'malformed HTTP request: an HTTP/1.1 request must send a Host header';
  return hosts > 1 ? `malformed HTTP request: a request must send one Host header, not ${hosts}` : null;
}

/**
 * Why a request's Transfer-Encoding is refused, or null: Node's parser decodes `chunked` and nothing else, so a body in
 * any other transfer coding (`gzip, chunked`, `identity`) would reach the routes still coded. RFC 9112 §6.1: a server
 * answers a transfer coding it does not understand with 501.
 */
export function transferCodingRefusal(req: IncomingMessage): string | null {
  const codings = req.headers['transfer-encoding'];
  if (codings === undefined || /^\s*chunked\s*$/i.test(codings)) return null;
  return `Transfer-Encoding: ${JSON.stringify(codings.replace(/[^\x20-\x7e]/g, '?').slice(0, 100))} is not supported: only chunked is (send the body as it is, with Content-Length or chunked)`;
}

/** The connections whose request clientErrorHandler refused: the route reading that request's body adds no line. */
const refusedConnections = new WeakSet<Duplex>();

export function refusedByHttpLayer(socket: Duplex): boolean {
  return refusedConnections.has(socket);
}

/**
 * Node's answer to a request its HTTP parser refused or cut off (`clientError`), in the error shape of
 * docs/contract.md#errors, with the operator's line for it (docs/operations.md#the-operator-log): a Content-Length
 * that is no number or twice different, Transfer-Encoding beside Content-Length, a malformed chunk, a request cut
 * short by its client's FIN… get 400 `BAD_REQUEST` naming the reason; headers over Node's 16 KB (a URL that long
 * too) 431 `HEADERS_TOO_LARGE`; a client too slow 408 `REQUEST_TIMEOUT`. A connection that sent nothing at all within
 * the headers' time gets its 408 without a line (a browser's preconnection is no request).
 */
export function clientErrorHandler(
  limits: { headersTimeoutMs: number; requestTimeoutMs: number },
  onRefused: (summary: RequestSummary) => void = () => {},
): (error: Error & { code?: string; reason?: string }, socket: Duplex) => void {
  return answerClientErrors((fault, socket) => {
    const [status, code, message] = refusal(fault, limits);
    writeRefusal(socket, status, code, message);
    refusedConnections.add(socket);
    const silent = status === 408 && (socket as Duplex & { bytesRead?: number }).bytesRead === 0;
    if (!silent)
      onRefused(
        refusalLine(
          status,
          code,
          message,
          status === 408 ? (fault.headersRead ? limits.requestTimeoutMs : limits.headersTimeoutMs) : 0,
        ),
      );
  });
}

/**
 * What Node's HTTP parser refused or its clock cut off, named for an edge to answer in its own error shape: headers
 * over Node's 16 KB (a URL that long too), a client too slow (before or after its headers), a method token Node does
 * not know (BREW, post: methods are case-sensitive), a request cut short by its client's FIN, or malformed framing (a
 * Content-Length that is no number or twice different, Transfer-Encoding beside Content-Length, a malformed chunk…).
 */
export interface EdgeFault {
  kind: 'headers-too-large' | 'timeout' | 'unknown-method' | 'cut-short' | 'malformed';
  /** Whether the request's headers had arrived: a timeout then cut off a body too slow. */
  headersRead: boolean;
  /** The unknown method, or why the request is malformed (printable, at most 200 characters). */
  detail: string;
}

/**
 * A `clientError` listener: `answer` writes the refusal of a request the parser refused or the clock cut off. Nothing
 * is written once a response on the connection has begun (that would corrupt it), nor to a failing connection
 * (ECONNRESET, EPIPE…: no request, nothing to answer or report); the connection is closed either way.
 */
export function answerClientErrors(
  answer: (fault: EdgeFault, socket: Duplex) => void,
): (error: Error & { code?: string; reason?: string }, socket: Duplex) => void {
  return (error, socket) => {
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    const request = error.code?.startsWith('HPE_') || error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    if (request && socket.writable && !inFlight?.headersSent) answer(edgeFault(error, Boolean(inFlight)), socket);
    socket.destroy();
  };
}

/** An answer written on the connection itself (no response object), which is then closed. */
export function writeAnswer(socket: Duplex, status: number, headers: Record<string, string>, text: string): void {
  const head = Object.entries({ ...headers, 'content-length': String(Buffer.byteLength(text)), connection: 'close' })
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${head}\r\n${text}`);
}

/** A refusal in the error shape written on the connection itself, which is then closed. */
function writeRefusal(socket: Duplex, status: number, code: string, message: string): void {
  writeAnswer(socket, status, { 'content-type': JSON_CONTENT_TYPE }, JSON.stringify(errorBody(code, message)));
}

/** The operator's line for a request refused before any route: no conversation. */
function refusalLine(status: number, code: string, message: string, durationMs = 0): RequestSummary {
  return { http_status: status, conversation_id: null, detail: `${code}: ${message}`, duration_ms: durationMs };
}

/**
 * A request Node would have refused with a bare answer before any route (an Expect it cannot meet, an HTTP/1.1
 * request without Host): the error shape of docs/contract.md#errors, the connection closed, and the operator's line.
 */
export function refuseBeforeRoutes(
  req: IncomingMessage,
  res: ServerResponse,
  [status, code, message]: [number, string, string],
  onRefused: (summary: RequestSummary) => void = () => {},
): void {
  req.resume();
  sendJson(res, status, errorBody(code, message), { connection: 'close' });
  onRefused(refusalLine(status, code, message));
}

function refusal(
  fault: EdgeFault,
  limits: { headersTimeoutMs: number; requestTimeoutMs: number },
): [400 | 408 | 431, string, string] {
  switch (fault.kind) {
    case 'headers-too-large':
      return [
        431,
        'HEADERS_TOO_LARGE',
        'the request line and headers are larger than 16 KB: send a shorter URL or fewer headers',
      ];
    case 'timeout':
      return [
        408,
        'REQUEST_TIMEOUT',
        fault.headersRead
          ? `the request did not arrive whole within ${limits.requestTimeoutMs / 1000} s`
          : `the request headers did not arrive within ${limits.headersTimeoutMs / 1000} s`,
      ];
    case 'unknown-method':
      // Not a 501, which would count hostile input among the gateway's 5xx.
      return [
        400,
        'BAD_REQUEST',
        `malformed HTTP request: "${fault.detail}" is no method this gateway knows: methods are case-sensitive (POST /webhook, GET /health)`,
      ];
    default:
      return [400, 'BAD_REQUEST', `malformed HTTP request: ${fault.detail}`];
  }
}

function edgeFault(error: Error & { code?: string; reason?: string }, headersRead: boolean): EdgeFault {
  if (error.code === 'HPE_HEADER_OVERFLOW') return { kind: 'headers-too-large', headersRead, detail: '' };
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return { kind: 'timeout', headersRead, detail: '' };
  // The unknown method is named from the bytes Node read (unless they stopped before its end).
  const method =
    error.code === 'HPE_INVALID_METHOD'
      ? /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}) \S/.exec(
          (error as { rawPacket?: Buffer }).rawPacket?.toString('latin1') ?? '',
        )
      : null;
  if (method) return { kind: 'unknown-method', headersRead, detail: method[1]! };
  if (error.code === 'HPE_INVALID_EOF_STATE')
    return {
      kind: 'cut-short',
      headersRead,
      detail: 'the client closed its side of the connection before its request was whole',
    };
  const reason =
    error.code === 'HPE_PAUSED_H2_UPGRADE'
      ? 'HTTP/2 without TLS is not served here: send HTTP/1.1'
      : (error.reason ?? error.message).replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
  return { kind: 'malformed', headersRead, detail: reason };
}

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`body larger than ${limit} bytes`);
  }
}

/**
 * The requests that sent `Expect: 100-continue` (the server's `checkContinue`), with their responses: the client waits
 * for a 100 before it sends the body. It gets one only when a route reads the body (readBody); a route that refuses
 * the request first (413 by its Content-Length, 415, 403…) answers with no 100, so the client sends nothing more and
 * Node closes the connection after that answer (RFC 9110 §10.1.1).
 */
const awaitingContinue = new WeakMap<IncomingMessage, ServerResponse>();

/** The server's `checkContinue`: the request goes to the routes, and gets its 100 when one reads the body. */
export function continueWhenRead(server: Server): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaitingContinue.set(req, res);
    server.emit('request', req, res);
  });
}

/** The 100 Continue a request awaits (`Expect: 100-continue`), if it does: its body is about to be read. */
export function sendContinue(req: IncomingMessage): void {
  const waiting = awaitingContinue.get(req);
  if (waiting && !waiting.headersSent) waiting.writeContinue();
  awaitingContinue.delete(req);
}

/** Read a request body up to `limit` bytes; past that, stop reading and throw BodyTooLargeError. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  sendContinue(req);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done = true;
        req.off('data', onData);
        req.resume(); // drain the rest so the client can read our answer
        reject(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks));
    });
    req.on('error', (error) => {
      if (!done) reject(error);
    });
  });
}

/**
 * A listening server's errors after it listens: a connection it could not accept (`accept`: EMFILE when the process
 * is out of file descriptors, ENFILE, ECONNABORTED), which Node emits on the server, and which, unlistened, ended the
 * process with every conversation in flight (the embedded S3's was silent). The server goes on listening: the client
 * whose connection was dropped retries, and the next accepted one is served. One line says so (`name` says which
 * server), once until a connection is accepted again, not once per dropped connection, with what to do.
 */
export function keepServingAfterErrors(
  server: Server,
  name: string,
  print: (line: string) => void = (line) => console.error(line),
): void {
  let told = false;
  server.on('connection', () => {
    told = false;
  });
  server.on('error', (error: NodeJS.ErrnoException) => {
    if (told) return;
    told = true;
    const fds = error.code === 'EMFILE' || error.code === 'ENFILE';
    print(
      `webhook-gateway: ${name} could not ${error.syscall === 'accept' ? 'accept a connection' : 'serve'} (${error.message}); it goes on serving${
        fds ? ': the process is out of file descriptors, raise its limit (ulimit -n) or close what holds them' : ''
      }`,
    );
  });
}
