import { connect, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RequestSummary } from '../../../local/server/config.ts';
import { clientErrorHandler } from '../../../local/server/http.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The gateway's HTTP edge against real sockets (docs/contract.md#errors, docs/operations.md#the-operator-log): callers
 * that go away or half-close. Nothing they started is lost, and the operator's line says what happened.
 */
const operatorLog: RequestSummary[] = [];
/** The callers' RESPONSE_TIMEOUT_MS timers: a test fires one when it wants the 504 (none fires by itself). */
const cutOffs: (() => void)[] = [];
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld(
    {},
    {
      onExecution: (summary) => operatorLog.push(summary),
      responseTimer: (_ms, fire) => {
        cutOffs.push(fire);
        return () => {};
      },
    },
  );
});
afterEach(() => {
  operatorLog.length = 0;
  cutOffs.length = 0;
  world.agent.reset();
});
afterAll(async () => {
  await world?.close();
});

const BODY = JSON.stringify(SEED_REQUEST);
const POST = `POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(BODY)}\r\n\r\n`;

/** A raw connection to the gateway: what it received so far, and a promise of all of it once the gateway closed. */
function open(): Promise<{ socket: Socket; received: () => string; closed: Promise<string> }> {
  const url = new URL(world.gateway.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    let got = '';
    socket.on('data', (d) => (got += d));
    const closed = new Promise<string>((done) => socket.on('close', () => done(got)));
    socket.on('error', () => {}); // a reset is what some of these tests cause
    socket.once('connect', () => resolve({ socket, received: () => got, closed }));
    socket.once('error', reject);
  });
}

/** The agent holds its answer until `answer()`; `asked` settles once it was asked. */
function holdAgent() {
  let asked!: () => void;
  let answer!: () => void;
  const reached = new Promise<void>((resolve) => {
    asked = resolve;
  });
  const gate = new Promise<void>((resolve) => {
    answer = resolve;
  });
  world.agent.behave(async (request) => {
    asked();
    await gate;
    return { payload: { response: `Answer to: ${String(request.query)}` } };
  });
  return { asked: reached, answer };
}

/** The conversation's four exports and its history: nothing the gateway accepted is lost. */
async function expectKept(conversationId: string) {
  expect((await world.listKeys()).filter((key) => key.includes(conversationId))).toHaveLength(4);
  expect(await world.gateway.executions.executions(conversationId)).toHaveLength(1);
}

/** A caller resets its connection (an RST: gone for sure; a FIN may be a half-close, below) while the agent is held. */
async function resetWhileTheAgentThinks() {
  const agent = holdAgent();
  const client = await open();
  client.socket.write(`${POST}${BODY}`);
  await agent.asked;
  client.socket.resetAndDestroy();
  await client.closed;
  return agent;
}

describe('a caller that goes away before its answer', () => {
  it('reset mid-conversation: the conversation completes and is exported; the operator line is 499, not 200', async () => {
    const printed = vi.spyOn(console, 'error');
    const agent = await resetWhileTheAgentThinks();
    agent.answer();
    await world.gateway.idle();
    expect(operatorLog).toHaveLength(1);
    const [line] = operatorLog;
    expect(line!.http_status).toBe(499);
    expect(line!.detail).toMatch(
      /^CLIENT_CLOSED: the caller closed the connection before its answer; the conversation went on: deal_analysis delivered$/,
    );
    await expectKept(line!.conversation_id!);
    expect(world.receiver.received.some((r) => JSON.stringify(r.body).includes(line!.conversation_id!))).toBe(true);
    expect(printed).not.toHaveBeenCalled(); // no error: a caller that left is no failure of the gateway
    printed.mockRestore();
  });

  it('reset before RESPONSE_TIMEOUT_MS: the line at the cut-off is 499, not the 504 nobody received', async () => {
    const agent = await resetWhileTheAgentThinks();
    await fetch(`${world.gateway.url}/health`); // a round trip: the gateway has seen the connection close
    cutOffs[0]!();
    await vi.waitFor(() => expect(operatorLog).toHaveLength(1));
    expect(operatorLog[0]).toMatchObject({
      http_status: 499,
      detail: 'CLIENT_CLOSED: the caller closed the connection before its answer; the conversation goes on',
    });
    agent.answer();
    await world.gateway.idle();
    expect(operatorLog[1]!.detail).toBe('run ended after the caller left: deal_analysis delivered');
    await expectKept(operatorLog[1]!.conversation_id!);
  });

  it('half-closed after its body (FIN, still reading): it gets its answer; the line says 499, for its FIN may mean gone', async () => {
    const client = await open();
    client.socket.end(`${POST}${BODY}`);
    const answer = await client.closed;
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { conversation_id: string };
    await world.gateway.idle();
    expect(operatorLog).toEqual([
      expect.objectContaining({
        http_status: 499,
        conversation_id: body.conversation_id,
        detail:
          'CLIENT_CLOSED: the caller closed its side of the connection before its answer (answered, should it still read); the conversation went on: deal_analysis delivered',
      }),
    ]);
    await expectKept(body.conversation_id);
  });
});

/** An answer's status line and JSON error, the connection closed after it. */
function refusal(answer: string) {
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1]);
  expect(answer).toMatch(/\r\nconnection: close\r\n/i);
  expect(answer).toMatch(/\r\ncontent-type: application\/json; charset=utf-8\r\n/i);
  const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as {
    success: boolean;
    error: { code: string; message: string };
  };
  expect(body.success).toBe(false);
  return { status, ...body.error };
}

async function sendRaw(text: string): Promise<string> {
  const client = await open();
  client.socket.write(text);
  return client.closed;
}

describe('a request cut short by its client', () => {
  it('a body cut short by its client’s FIN → 400 saying so, not "Invalid EOF state"; nothing runs', async () => {
    const client = await open();
    client.socket.end(`${POST}${BODY.slice(0, 20)}`);
    const answer = refusal(await client.closed);
    expect(answer).toEqual({
      status: 400,
      code: 'BAD_REQUEST',
      message: 'malformed HTTP request: the client closed its side of the connection before its request was whole',
    });
    await world.gateway.idle();
    expect(world.agent.invocations).toHaveLength(0);
    expect(operatorLog).toEqual([
      expect.objectContaining({ http_status: 400, detail: `BAD_REQUEST: ${answer.message}` }),
    ]);
  });

  it('a body cut short by a reset: no answer can go, nothing runs, and the line says 499', async () => {
    const client = await open();
    client.socket.write(`${POST}${BODY.slice(0, 20)}`);
    await fetch(`${world.gateway.url}/health`); // a round trip: the gateway has read the headers
    client.socket.resetAndDestroy();
    await client.closed;
    await vi.waitFor(() => expect(operatorLog).toHaveLength(1));
    expect(operatorLog[0]).toMatchObject({
      http_status: 499,
      conversation_id: null,
      detail: 'CLIENT_CLOSED: the caller closed the connection before its request was whole; nothing was run',
    });
    expect(world.agent.invocations).toHaveLength(0);
  });
});

describe('Expect: 100-continue (RFC 9110 §10.1.1)', () => {
  it('with a Content-Length over the limit: 413 at once, without the 100 that would have the client send its body', async () => {
    const answer = await sendRaw(
      'POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 999999\r\nExpect: 100-continue\r\n\r\n',
    );
    expect(answer).not.toContain('100 Continue');
    expect(refusal(answer)).toMatchObject({ status: 413, code: 'PAYLOAD_TOO_LARGE' });
    expect(operatorLog).toEqual([expect.objectContaining({ http_status: 413 })]);
  });

  it('with a body that fits: 100 Continue once the gateway reads it, then the answer', async () => {
    const client = await open();
    client.socket.write(`${POST.replace('\r\n\r\n', '\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n')}`);
    await vi.waitFor(() => expect(client.received()).toBe('HTTP/1.1 100 Continue\r\n\r\n'));
    client.socket.write(BODY);
    const answer = await client.closed;
    expect(answer).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  });

  it('to a request the gateway refuses before its body (wrong Content-Type): the refusal, no 100', async () => {
    const answer = await sendRaw(
      'POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n',
    );
    expect(answer).not.toContain('100 Continue');
    expect(refusal(answer)).toMatchObject({ status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' });
  });
});

describe('Content-Type given twice', () => {
  // Before: Node kept the first and dropped the other, so application/json then text/plain was taken as JSON (and
  // text/plain then application/json refused as text/plain); API Gateway does not document which one it reads.
  it.each([
    ['application/json', 'text/plain'],
    ['text/plain', 'application/json'],
    ['application/json', 'application/json'],
  ])('%s and %s: 415, naming both, nothing run', async (first, second) => {
    const answer = await sendRaw(
      `POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${first}\r\nContent-Type: ${second}\r\nContent-Length: ${Buffer.byteLength(BODY)}\r\nConnection: close\r\n\r\n${BODY}`,
    );
    expect(refusal(answer)).toMatchObject({
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
      message: `Content-Type must be given once, as application/json; got it 2 times: "${first}", "${second}"`,
    });
    expect(world.agent.invocations).toHaveLength(0);
    expect(operatorLog).toEqual([expect.objectContaining({ http_status: 415 })]);
  });
});

/** Requests refused before any route: [what, status, code, message, the bytes sent]; before, a bare answer or none. */
const REFUSED: [string, number, string, string, string][] = [
  [
    'headers over 16 KB (before: 431 without a body)',
    431,
    'HEADERS_TOO_LARGE',
    'the request line and headers are larger than 16 KB: send a shorter URL or fewer headers',
    `${POST.replace('\r\n\r\n', `\r\nX-Filler: ${'x'.repeat(20_000)}\r\n\r\n`)}${BODY}`,
  ],
  [
    'a URL of 100 KB (before: 431 without a body)',
    431,
    'HEADERS_TOO_LARGE',
    'the request line and headers are larger than 16 KB: send a shorter URL or fewer headers',
    `GET /health?${'a'.repeat(100_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
  ],
  [
    'an Expect other than 100-continue (before: 417 without a body)',
    417,
    'EXPECTATION_FAILED',
    'Expect: "200-ok" is not supported: only 100-continue is',
    `${POST.replace('\r\n\r\n', '\r\nExpect: 200-ok\r\n\r\n')}${BODY}`,
  ],
  [
    'an HTTP/1.1 request without Host, RFC 9112 §3.2 (before: 400 without a body)',
    400,
    'BAD_REQUEST',
    'malformed HTTP request: an HTTP/1.1 request must send a Host header',
    `${POST.replace('Host: 127.0.0.1\r\n', '')}${BODY}`,
  ],
  [
    'two Host headers, RFC 9112 §3.2 (before: the first one taken)',
    400,
    'BAD_REQUEST',
    'malformed HTTP request: a request must send one Host header, not 2',
    `${POST.replace('Host: 127.0.0.1\r\n', 'Host: 127.0.0.1\r\nHost: attacker.example\r\n')}${BODY}`,
  ],
  [
    'CONNECT, a proxy tunnel (before: the connection closed without a word)',
    405,
    'METHOD_NOT_ALLOWED',
    'CONNECT is not served here: this gateway is no proxy',
    'CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n',
  ],
  ...['gzip, chunked', 'identity'].map((coding): [string, number, string, string, string] => [
    `Transfer-Encoding: ${coding}, RFC 9112 §6.1 (before: its body taken as plain JSON, 200)`,
    501,
    'NOT_IMPLEMENTED',
    `Transfer-Encoding: "${coding}" is not supported: only chunked is (send the body as it is, with Content-Length or chunked)`,
    `${POST.replace(/Content-Length: \d+/, `Transfer-Encoding: ${coding}`)}${BODY.length.toString(16)}\r\n${BODY}\r\n0\r\n\r\n`,
  ]),
  ...['BREW', 'post'].map((method): [string, number, string, string, string] => [
    `an unknown method, ${method} (before: "Invalid method encountered")`,
    400,
    'BAD_REQUEST',
    `malformed HTTP request: "${method}" is no method this gateway knows: methods are case-sensitive (POST /webhook, GET /health)`,
    `${POST.replace('POST', method)}${BODY}`,
  ]),
];

describe('refused before any route: the error shape, the connection closed, a line, nothing run', () => {
  it.each(REFUSED)('%s → %i %s', async (_, status, code, message, text) => {
    expect(refusal(await sendRaw(text))).toEqual({ status, code, message });
    expect(operatorLog).toEqual([
      { http_status: status, conversation_id: null, detail: `${code}: ${message}`, duration_ms: 0 },
    ]);
    expect(world.agent.invocations).toHaveLength(0);
  });
});

describe('an absolute-form target (RFC 9112 §3.2.2: its authority replaces Host)', () => {
  it.each([
    [
      '/health',
      'Host judged, 200',
      'this gateway listens on loopback and it answers requests addressed to 127.0.0.1, localhost or [::1] only, not to "evil.example" (HOST=0.0.0.0 serves other machines)',
    ],
    [
      '/local/deliveries',
      'Host judged, the failed deliveries listed',
      'the operator endpoint answers the local operator only: it answers requests addressed to 127.0.0.1, localhost or [::1] only, not to "evil.example"',
    ],
  ])('http://evil.example%s with Host: 127.0.0.1 → 403 naming that host (before: %s)', async (target, _, message) => {
    const answer = await sendRaw(
      `GET http://evil.example${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
    );
    expect(refusal(answer)).toEqual({ status: 403, code: 'FORBIDDEN', message });
  });

  it('naming this machine, with any Host → answered', async () => {
    const answer = await sendRaw(
      'GET http://127.0.0.1/health HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe('a connection error that is no request (clientError)', () => {
  it.each(['EPIPE', 'ETIMEDOUT', 'ECONNRESET'])(
    '%s: nothing written, no line (before, EPIPE got "400 malformed HTTP request: write EPIPE" and its line)',
    (code) => {
      const socket = new PassThrough();
      const lines: RequestSummary[] = [];
      clientErrorHandler({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 }, (line) => lines.push(line))(
        Object.assign(new Error(`write ${code}`), { code }),
        socket,
      );
      expect(socket.read()).toBeNull();
      expect(socket.destroyed).toBe(true);
      expect(lines).toEqual([]);
    },
  );
});

describe('after all of that', () => {
  it('no connection is left open: each one above closed, on both ends (keep-alive ones after their idle time)', async () => {
    const sockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    await expect.poll(sockets, { timeout: 20_000, interval: 250 }).toBe(0);
  });
});
