import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { postJson } from '../../../functions/shared/http-delivery.ts';

/** A receiver whose answer each test chooses by path; it records what it was sent. */
let server: Server;
let base: string;
const received: { path: string; headers: IncomingMessage['headers']; body: string }[] = [];
const answers: Record<string, (res: ServerResponse) => void> = {
  '/ok': (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'),
  '/moved': (res) => res.writeHead(302, { location: '/ok' }).end(),
  '/busy': (res) => res.writeHead(503, { 'retry-after': '7' }).end('try later'),
  // The status and the start of the body come, then the connection breaks (or the body never ends).
  '/cut-200': (res) => res.writeHead(200, { 'x-request-id': 'req_9' }).write('{"stored":', () => res.socket?.destroy()),
  '/cut-503': (res) => res.writeHead(503).write('overloaded, ', () => res.socket?.destroy()),
  '/trickle-200': (res) => res.writeHead(200).write('{"stored":'),
  '/silent': () => undefined, // never answers
  '/big-headers': (res) => res.writeHead(200, { 'set-cookie': `session=${'c'.repeat(20_000)}` }).end('ok'),
  '/huge-headers': (res) => res.writeHead(200, { 'set-cookie': `session=${'c'.repeat(70_000)}` }).end('ok'),
  '/huge': (res) => {
    res.writeHead(400);
    res.write('x'.repeat(200_000)); // far more than is read
    res.end();
  },
};

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body });
      answers[req.url ?? '']?.(res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('postJson (the delivery POST)', () => {
  it('sends the JSON body with its headers and records a 2xx as delivered', async () => {
    const { attempt } = await postJson(`${base}/ok`, '{"a":"é"}', { 'webhook-id': 'msg_1' }, 1, 5_000);
    expect(attempt).toMatchObject({ attempt: 1, status_code: 200, outcome: 'delivered' });
    expect(attempt.error).toBeUndefined();
    const sent = received.at(-1)!;
    expect(sent.body).toBe('{"a":"é"}');
    expect(sent.headers).toMatchObject({
      'content-type': 'application/json',
      'webhook-id': 'msg_1',
      'content-length': '10',
    });
  });

  it('does not follow a redirect: a 3xx is the answer (permanent)', async () => {
    const before = received.length;
    const { attempt } = await postJson(`${base}/moved`, '{}', {}, 1, 5_000);
    // Before, the error said only "HTTP 302": where the receiver moved was nowhere but in the logged headers.
    expect(attempt).toMatchObject({
      status_code: 302,
      outcome: 'permanent',
      error: `HTTP 302 (a redirect to ${base}/…, not followed)`,
    });
    expect(received.length - before).toBe(1);
  });

  it("keeps a 503's Retry-After and the start of its body", async () => {
    const { attempt } = await postJson(`${base}/busy`, '{}', {}, 2, 5_000);
    expect(attempt).toMatchObject({
      attempt: 2,
      status_code: 503,
      outcome: 'retryable',
      error: 'HTTP 503: try later',
      retry_after_ms: 7_000,
    });
  });

  it('reads at most 64 KB of an answer and keeps 200 characters of it', async () => {
    const { attempt } = await postJson(`${base}/huge`, '{}', {}, 1, 5_000);
    expect(attempt).toMatchObject({ status_code: 400, outcome: 'permanent' });
    expect(attempt.error).toBe(`HTTP 400: ${'x'.repeat(200)}`);
  });

  it('a body cut short after a 2xx status is delivered: the status is the answer, kept with the body so far', async () => {
    // Before, the broken connection was a network error (retryable, response null): the receiver that answered 200
    // was sent the delivery again on every retry and the schedule, and the attempt log lost its 200.
    const before = received.length;
    const { attempt, response } = await postJson(`${base}/cut-200`, '{}', {}, 1, 5_000);
    expect(attempt).toMatchObject({ status_code: 200, outcome: 'delivered' });
    expect(attempt.error).toBeUndefined();
    expect(response).toMatchObject({ status: 200, headers: { 'x-request-id': 'req_9' }, body: '{"stored":' });
    expect(response?.body_truncated).toBe(true);
    expect(received.length - before).toBe(1);
  });

  it('a 2xx whose body does not end before the timeout is delivered, not timed out', async () => {
    const { attempt, response } = await postJson(`${base}/trickle-200`, '{}', {}, 1, 300);
    expect(attempt).toMatchObject({ status_code: 200, outcome: 'delivered' });
    expect(response).toMatchObject({ status: 200, body: '{"stored":', body_truncated: true });
  });

  it("the attempt's deadline runs while the POST waits, cuts it when reached, and is cleared once the answer came", async () => {
    // Only the clock's timers are faked: the POSTs go over real sockets. Before, each attempt's deadline was
    // AbortSignal.timeout's, which nothing could clear: it went off after every delivery, its answer long in
    // (an abort event and a DOMException each, 3 s after each delivery: docs/performance.md §2, perf25).
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const answered = await postJson(`${base}/ok`, '{}', {}, 1, 5_000);
      expect(answered.attempt).toMatchObject({ status_code: 200, outcome: 'delivered' });
      expect(vi.getTimerCount()).toBe(0);
      const before = received.length;
      const waiting = postJson(`${base}/silent`, '{}', {}, 2, 5_000);
      await vi.waitFor(() => expect(received.length).toBe(before + 1), { interval: 5 });
      expect(vi.getTimerCount()).toBe(1);
      await vi.advanceTimersByTimeAsync(5_000);
      const { attempt, response } = await waiting;
      expect(attempt).toMatchObject({ attempt: 2, outcome: 'retryable', error: 'timed out after 5000 ms' });
      expect(attempt.status_code).toBeUndefined();
      expect(response).toBeNull();
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a failure status whose body is cut short keeps the status, and its error says why the body ends', async () => {
    const { attempt, response } = await postJson(`${base}/cut-503`, '{}', {}, 1, 5_000);
    expect(attempt).toMatchObject({
      status_code: 503,
      outcome: 'retryable',
      error: 'HTTP 503 (its body cut short: network error: ECONNRESET): overloaded, ',
    });
    expect(response).toMatchObject({ status: 503, body: 'overloaded, ', body_truncated: true });
  });

  it('reads a 2xx with 20 KB of headers as delivered (Node reads 16 KB by default), and says why when over 64 KB', async () => {
    // Before, the 2xx was a network error, HPE_HEADER_OVERFLOW: retried, so the receiver got it again and again.
    const big = await postJson(`${base}/big-headers`, '{}', {}, 1, 5_000);
    expect(big.attempt).toMatchObject({ status_code: 200, outcome: 'delivered' });
    expect(big.response).toMatchObject({ status: 200, body: 'ok' });
    const huge = await postJson(`${base}/huge-headers`, '{}', {}, 1, 5_000);
    expect(huge.attempt).toMatchObject({
      outcome: 'retryable',
      error: "network error: HPE_HEADER_OVERFLOW (the answer's headers are over 64 KB)",
    });
  });

  it('a 101 Switching Protocols is an answer (permanent, saying to what), not a POST that never ends', async () => {
    // Before, Node dropped the connection a 101 handed over (no 'upgrade' listener) and the POST settled neither then
    // nor at its deadline: Deliver hung until its Lambda (or the local run) ended, the attempt never recorded.
    let closed!: () => void;
    const switched = new Promise<void>((r) => (closed = r));
    const raw = createNetServer((socket: Socket) => {
      socket.once('data', () =>
        socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n'),
      );
      socket.on('close', closed);
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      let result: Awaited<ReturnType<typeof postJson>> | undefined;
      const url = `http://127.0.0.1:${(raw.address() as AddressInfo).port}/hook`;
      void postJson(url, '{}', {}, 1, 5_000).then((r) => (result = r));
      await switched; // the gateway closed the connection the 101 handed over
      await vi.advanceTimersByTimeAsync(5_000); // and its deadline has passed
      expect(result?.attempt).toMatchObject({
        status_code: 101,
        outcome: 'permanent',
        error: 'HTTP 101 (a switch to h2c the gateway did not ask for, refused)',
      });
      expect(result?.response).toMatchObject({ status: 101, body: '' });
    } finally {
      vi.useRealTimers();
      raw.close();
    }
  });

  it.each([
    ['099', 99],
    ['600', 600],
    ['999', 999],
  ])('a status outside 100-599 (HTTP %s) is a broken receiver: permanent, its error saying so', async (text, code) => {
    // Before, 600 and 999 were retried as a 5xx, and 099 was permanent as any other status, its error saying nothing.
    const raw = createNetServer((socket: Socket) => {
      socket.once('data', () =>
        socket.end(`HTTP/1.1 ${text} Odd\r\nContent-Length: 4\r\nConnection: close\r\n\r\nodd!`),
      );
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(raw.address() as AddressInfo).port}/hook`;
      const { attempt, response } = await postJson(url, '{}', {}, 1, 5_000);
      expect(attempt).toMatchObject({
        status_code: code,
        outcome: 'permanent',
        error: `HTTP ${text} (no HTTP status: they are 100–599, so the receiver is broken; permanent, redrive once its operator fixed it): odd!`,
      });
      expect(response).toMatchObject({ status: code, body: 'odd!' });
    } finally {
      raw.close();
    }
  });

  it('a URL it cannot POST to is a retryable network error, not a throw', async () => {
    const { attempt } = await postJson('ftp://127.0.0.1/x', '{}', {}, 1, 5_000);
    expect(attempt).toMatchObject({ outcome: 'retryable', error: expect.stringMatching(/^network error: /) });
    expect(attempt.status_code).toBeUndefined();
  });
});

describe('a receiver\'s TLS certificate its operator must fix (docs/contract.md, "Deliveries")', () => {
  /** Certificates openssl makes for these tests (EC P-256), in a folder removed after them. */
  const dir = mkdtempSync(join(tmpdir(), 'receiver-certs-'));
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const servers: Server[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    rmSync(dir, { recursive: true, force: true });
  });

  /** A receiver over real HTTPS serving that certificate (its key: key.pem). */
  async function receiverWith(cert: string): Promise<string> {
    const tls = createHttpsServer({ key: readFileSync(file('key.pem')), cert: readFileSync(file(cert)) }, (_req, res) =>
      res.writeHead(200).end('{"ok":true}'),
    );
    servers.push(tls as unknown as Server);
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    return `https://127.0.0.1:${(tls.address() as AddressInfo).port}/hook`;
  }

  /** A leaf for key.pem signed by the test authority (ca.pem), `days` valid from now (-1: expired), naming `altName`. */
  function signedLeaf(name: string, altName: string, days: number) {
    writeFileSync(file(`${name}.ext`), `subjectAltName=${altName}\n`);
    openssl(
      ...['x509', '-req', '-in', file('key.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial'],
      ...['-days', String(days), '-extfile', file(`${name}.ext`), '-out', file(`${name}.pem`)],
    );
  }

  beforeAll(() => {
    openssl(
      'req',
      '-x509',
      ...EC,
      '-days',
      '1',
      '-subj',
      '/CN=Test CA',
      '-keyout',
      file('ca.key'),
      '-out',
      file('ca.pem'),
    );
    openssl('req', ...EC, '-subj', '/CN=receiver', '-keyout', file('key.pem'), '-out', file('key.csr'));
    openssl(
      ...['req', '-x509', '-key', file('key.pem'), '-days', '1', '-subj', '/CN=127.0.0.1'],
      ...['-addext', 'subjectAltName=IP:127.0.0.1', '-out', file('self-signed.pem')],
    );
    signedLeaf('wrong-host', 'DNS:other.example', 1);
    signedLeaf('expired', 'IP:127.0.0.1', -1);
  });

  it('self-signed: permanent, its error naming the problem and the host (before: "network error: DEPTH_ZERO_SELF_SIGNED_CERT", retried)', async () => {
    const url = await receiverWith('self-signed.pem');
    const { attempt, response } = await postJson(url, '{}', {}, 1, 5_000);
    expect(attempt).toMatchObject({
      outcome: 'permanent',
      error: `certificate error: the receiver's TLS certificate for ${new URL(url).host} is self-signed (DEPTH_ZERO_SELF_SIGNED_CERT); its operator must serve a valid one, then redrive the delivery`,
    });
    expect(attempt.status_code).toBeUndefined();
    expect(response).toBeNull();
  });

  it('from an authority the gateway trusts, but naming another host, or expired: permanent, saying which', async () => {
    const [wrongHost, expired] = [await receiverWith('wrong-host.pem'), await receiverWith('expired.pem')];
    // The authority is trusted as NODE_EXTRA_CA_CERTS makes it (read at a process's start): a process of its own.
    const module = new URL('../../../functions/shared/http-delivery.ts', import.meta.url).pathname;
    const script = `const { postJson } = await import(${JSON.stringify(module)});
      for (const url of ${JSON.stringify([wrongHost, expired])})
        console.log(JSON.stringify((await postJson(url, '{}', {}, 1, 5000)).attempt));`;
    const output = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script],
        { env: { ...process.env, NODE_EXTRA_CA_CERTS: file('ca.pem') } },
        (error, stdout) => (error ? reject(error) : resolve(stdout)),
      ),
    );
    const [named, dated] = output
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(named).toMatchObject({
      outcome: 'permanent',
      error: expect.stringMatching(
        /^certificate error: the receiver's TLS certificate for 127\.0\.0\.1:\d+ does not name this host \(ERR_TLS_CERT_ALTNAME_INVALID: /,
      ),
    });
    expect(dated).toMatchObject({
      outcome: 'permanent',
      error: `certificate error: the receiver's TLS certificate for ${new URL(expired).host} has expired (CERT_HAS_EXPIRED); its operator must serve a valid one, then redrive the delivery`,
    });
  });

  it('a TLS failure that is no certificate (HTTPS to a plain HTTP port) stays a retryable network error', async () => {
    const { attempt } = await postJson(base.replace('http:', 'https:'), '{}', {}, 1, 5_000);
    expect(attempt).toMatchObject({ outcome: 'retryable', error: expect.stringMatching(/^network error: /) });
  });
});
