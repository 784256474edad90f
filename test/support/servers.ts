import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll } from 'vitest';

/** Real HTTP test peers on port 0: a programmable receiver of deliveries and a programmable manager agent. */

export interface TestServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A JSON server whose answers a crash test holds as long as it likes (a handler may never resolve): kept in `servers`
 * for `closeJsonServers` in the file's afterAll, which also cuts connections still held.
 */
export async function serveJson(
  servers: Server[],
  handler: (req: IncomingMessage, text: string) => Promise<[number, unknown, Record<string, string>?]>,
): Promise<string> {
  const { server, port } = await listen(async (req, res) => {
    const [status, answer, headers] = await handler(req, await body(req));
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(answer));
  });
  servers.push(server);
  return `http://127.0.0.1:${port}`;
}

export function closeJsonServers(servers: Server[]): void {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
}

/** What a test peer's held answers wait for: `letGo()` lets every one waiting go and holds the next ones afresh. */
function gate() {
  let held!: Promise<void>;
  let release!: () => void;
  const hold = () => {
    held = new Promise((resolve) => {
      release = resolve;
    });
  };
  hold();
  return {
    wait: () => held,
    letGo: () => {
      release();
      hold();
    },
  };
}

function closer(server: Server) {
  return () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
}

export interface ReceivedRequest {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
  status: number;
}

export interface ReceiverReply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /**
   * Answer only at the receiver's next `letGo()`, `reset()` or `close()`: slower than any attempt's timeout however
   * loaded the machine (an answer a set time late would race the timeout).
   */
  held?: boolean;
  /** Called as the request arrives, before it is held (a test moves its injected clock: the receiver is slow). */
  onArrival?: () => void;
}

/** A receiver whose next answers are queued per test (`reply(500, 200)`); afterwards it answers 200. */
export interface TestReceiver extends TestServer {
  received: ReceivedRequest[];
  reply(...answers: (number | ReceiverReply)[]): void;
  urlFor(type: string): string;
  /** The answers held so far (`held`) are given. */
  letGo(): void;
  reset(): void;
}

export async function startReceiver(): Promise<TestReceiver> {
  const received: ReceivedRequest[] = [];
  let queue: ReceiverReply[] = [];
  const held = gate();
  const { server, port } = await listen(async (req, res) => {
    const text = await body(req);
    const answer = queue.shift() ?? { status: 200 };
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { raw: text };
    }
    received.push({ path: req.url ?? '', headers: req.headers, body: parsed, status: answer.status });
    answer.onArrival?.();
    if (answer.held) await held.wait();
    if (res.destroyed) return;
    res.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
    res.end(answer.body ?? (answer.status < 300 ? 'ok' : 'nope'));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    received,
    reply: (...answers) => {
      queue = answers.map((a) => (typeof a === 'number' ? { status: a } : a));
    },
    urlFor: (type) => `${url}/hooks/${type}`,
    letGo: held.letGo,
    reset: () => {
      received.length = 0;
      queue = [];
      held.letGo();
    },
    close: () => {
      held.letGo();
      return closer(server)();
    },
  };
}

export type AgentBehaviour = (request: Record<string, unknown>) => Promise<AgentReply> | AgentReply;
export interface AgentReply {
  payload: unknown;
  functionError?: string;
  /**
   * Answer only at the agent's next `letGo()`, `reset()` or `close()`: slower than any timeout however loaded the
   * machine.
   */
  held?: boolean;
  status?: number;
  headers?: Record<string, string>;
  /** Drop the connection without answering (a network failure). */
  hangUp?: boolean;
  /** Answer the status, headers and the first bytes of the body, then drop the connection (a reset mid-answer). */
  hangUpMidAnswer?: boolean;
  /** The body as these bytes instead of `payload` as JSON. */
  raw?: string;
  /**
   * Instead of `payload`: `{"response":"xxx…` in 64 KB chunks (chunked, no Content-Length) until the client closes the
   * connection or `bytes` are written, then `written` is told how many were.
   */
  endless?: { bytes: number; written: (bytes: number) => void };
}

function writeEndless(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  endless: NonNullable<AgentReply['endless']>,
) {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let written = 0;
  let told = false;
  const tell = () => {
    if (!told) endless.written(written);
    told = true;
  };
  const more = () => {
    while (!res.destroyed && written < endless.bytes) {
      written += chunk.length;
      if (!res.write(chunk)) return;
    }
    if (!res.destroyed) res.end();
    tell();
  };
  res.on('drain', more);
  res.on('close', tell);
  res.writeHead(status, headers);
  res.write('{"response":"');
  more();
}

/** A manager agent on the Lambda Invoke REST path; its behaviour is set per test. */
export interface TestAgent extends TestServer {
  invocations: { functionName: string; request: Record<string, unknown> }[];
  behave(fn: AgentBehaviour): void;
  /** The answers held so far (`held`) are given. */
  letGo(): void;
  reset(): void;
}

const defaultAgent: AgentBehaviour = (request) => ({
  payload: { response: `Answer to: ${String(request.query)}`, agent: 'test-agent' },
});

export async function startAgent(): Promise<TestAgent> {
  const invocations: TestAgent['invocations'] = [];
  let behaviour: AgentBehaviour = defaultAgent;
  const held = gate();
  const { server, port } = await listen(async (req, res) => {
    const match = /^\/2015-03-31\/functions\/([^/]+)\/invocations/.exec(req.url ?? '');
    const request = JSON.parse((await body(req)) || '{}') as Record<string, unknown>;
    if (!match) {
      res.writeHead(404).end();
      return;
    }
    invocations.push({ functionName: decodeURIComponent(match[1]!), request });
    const reply = await behaviour(request);
    if (reply.held) await held.wait();
    if (reply.hangUp) {
      req.socket.destroy();
      return;
    }
    if (res.destroyed) return;
    const headers: Record<string, string> = { 'content-type': 'application/json', ...reply.headers };
    if (reply.functionError) headers['x-amz-function-error'] = reply.functionError;
    if (reply.endless) {
      writeEndless(res, reply.status ?? 200, headers, reply.endless);
      return;
    }
    const text = reply.raw ?? JSON.stringify(reply.payload);
    if (reply.hangUpMidAnswer) {
      res.writeHead(reply.status ?? 200, { ...headers, 'content-length': String(Buffer.byteLength(text)) });
      res.write(text.slice(0, Math.floor(text.length / 2)), () => req.socket.destroy());
      return;
    }
    res.writeHead(reply.status ?? 200, headers);
    res.end(text);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    invocations,
    behave: (fn) => {
      behaviour = fn;
    },
    letGo: held.letGo,
    reset: () => {
      invocations.length = 0;
      behaviour = defaultAgent;
      held.letGo();
    },
    close: () => {
      held.letGo();
      return closer(server)();
    },
  };
}

/**
 * Waits until no connection to `server` is open, counted from this call on: a call cut by its deadline has its socket
 * destroyed, and the server reads what reached it before the close, so once every socket is closed each request a
 * cut call sent is among those the server saw. In the same process as the client, a request written just before the
 * cut is read only at the event loop's next look at the sockets, which a test asserting at once had not yet given
 * it on a loaded machine (and the next test found the request among its own).
 */
export function trackConnections(server: Server): { allClosed(): Promise<void> } {
  const open = new Set<Socket>();
  let waiting: (() => void)[] = [];
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => {
      open.delete(socket);
      if (open.size > 0) return;
      for (const resolve of waiting) resolve();
      waiting = [];
    });
  });
  return {
    allClosed: () => (open.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiting.push(resolve))),
  };
}

/**
 * A stalled AWS endpoint: it accepts each connection, reads the request and never answers. Point a client at it
 * (`AWS_ENDPOINT_URL_<SERVICE>`, or its `endpoint`) and each try waits for the client's request limit
 * (functions/shared/clients/request-limits.ts), or for the call's abort signal. `requests` counts what arrived;
 * `allClosed()` (trackConnections) waits until every call cut so far has been read, before a test asserts on them.
 */
export interface SilentEndpoint extends TestServer {
  requests: { method: string; path: string; target: string | undefined }[];
  allClosed(): Promise<void>;
}

export async function startSilentEndpoint(): Promise<SilentEndpoint> {
  const requests: SilentEndpoint['requests'] = [];
  const { server, port } = await listen((req) => {
    const target = req.headers['x-amz-target'];
    requests.push({
      method: req.method ?? '',
      path: req.url ?? '',
      target: typeof target === 'string' ? target : undefined,
    });
    req.resume();
  });
  const { allClosed } = trackConnections(server);
  return { url: `http://127.0.0.1:${port}`, port, requests, allClosed, close: closer(server) };
}

/** An S3 endpoint (path-style) that takes every PUT at once: `keys` are the objects written, `bucket/key`. */
export interface S3Stub extends TestServer {
  keys: string[];
}

export async function startS3Stub(): Promise<S3Stub> {
  const keys: string[] = [];
  const { server, port } = await listen(async (req, res) => {
    await body(req);
    if (req.method === 'PUT') keys.push(decodeURIComponent((req.url ?? '').split('?')[0]!.slice(1)));
    res.writeHead(200, { etag: '"0"' });
    res.end();
  });
  return { url: `http://127.0.0.1:${port}`, port, keys, close: closer(server) };
}

/**
 * For the enclosing file or describe: `server` listens on an ephemeral port of 127.0.0.1, and the local engine's
 * Lambda client (local/engine/lambda-invoke.ts) sends its invokes there (AWS_ENDPOINT_URL_LAMBDA); closed after.
 */
export function useAsLambdaEndpoint(server: Server): void {
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    process.env.AWS_ENDPOINT_URL_LAMBDA = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
}
