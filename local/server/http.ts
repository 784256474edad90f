import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorBody, JSON_CONTENT_TYPE } from '../../functions/domain/gateway-contract.ts';

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
 * Node's answer to a request its HTTP parser refused (`clientError`), in the error shape of docs/contract.md#errors: a
 * Content-Length that is no number or twice different, Transfer-Encoding beside Content-Length, a malformed chunk…
 * get 400 `BAD_REQUEST` naming Node's reason instead of a bare "400 Bad Request". Headers over Node's limit (431) and a
 * client too slow (408) keep Node's answers without a body, as docs/contract.md#errors says. Nothing is written once a
 * response on the connection has begun (that would corrupt it); the connection is closed either way.
 */
export function answerClientError(error: Error & { code?: string; reason?: string }, socket: Duplex): void {
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (error.code !== 'ECONNRESET' && socket.writable && !inFlight?.headersSent) {
    if (error.code === 'HPE_HEADER_OVERFLOW') socket.write(BARE_ANSWERS[431]);
    else if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') socket.write(BARE_ANSWERS[408]);
    else {
      const reason =
        error.code === 'HPE_PAUSED_H2_UPGRADE'
          ? 'HTTP/2 without TLS is not served here: send HTTP/1.1'
          : (error.reason ?? error.message).replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
      const text = JSON.stringify(errorBody('BAD_REQUEST', `malformed HTTP request: ${reason}`));
      socket.write(
        `HTTP/1.1 400 Bad Request\r\ncontent-type: ${JSON_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
      );
    }
  }
  socket.destroy();
}

const BARE_ANSWERS = {
  408: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n',
  431: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n',
} as const;

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`body larger than ${limit} bytes`);
  }
}

/** Read a request body up to `limit` bytes; past that, stop reading and throw BodyTooLargeError. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
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
