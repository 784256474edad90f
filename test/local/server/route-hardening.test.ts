import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { errorBody } from '../../../functions/domain/gateway-contract.ts';
import type { RequestSummary } from '../../../local/server/config.ts';
import { startGateway } from '../../../local/server/gateway.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * Hostile clients against the local server's own surfaces: a rebound DNS name (a page on another origin reaching the
 * loopback listener), a cross-site browser request, malformed URLs, and clients that never finish their request.
 */
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

const REBOUND = 'attacker.example:3000';
const ID = 'webhook_20250813_103045_testing_phase3valid_abc123';

function send(
  target: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; base?: string } = {},
): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const base = new URL(options.base ?? world.gateway.url);
    const req = request(
      {
        host: base.hostname,
        port: base.port,
        path: target,
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: false, // one connection per request: a refused request's connection is not reused
      },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/**
 * Bytes on a raw connection (a request line Node's client would not send); resolves with what came back once the
 * server closes it, or after `waitMs` (null: only once the server closes it).
 */
function raw(text: string, base = world.gateway.url, waitMs: number | null = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const socket = connect(Number(url.port), url.hostname, () => socket.write(text));
    let got = '';
    socket.on('data', (d) => (got += d));
    socket.on('end', () => resolve(got));
    socket.on('close', () => resolve(got));
    socket.on('error', reject);
    if (waitMs === null) return;
    setTimeout(() => {
      socket.destroy();
      resolve(got);
    }, waitMs);
  });
}

const OPERATOR_AND_HELPER_ROUTES: [string, string][] = [
  ['GET', '/console'],
  ['GET', '/local/deliveries'],
  ['POST', `/local/deliveries/${ID}/redrive`],
  ['GET', '/local/receiver/deal_analysis'],
  ['POST', '/local/receiver/deal_analysis'],
  ['POST', '/2015-03-31/functions/test-manager-agent/invocations'],
];

describe('every operator and helper route answers the local operator only', () => {
  it.each(OPERATOR_AND_HELPER_ROUTES)('%s %s with a rebound Host name → 403', async (method, target) => {
    const res = await send(target, {
      method,
      headers: { host: REBOUND, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(403);
  });

  it.each(OPERATOR_AND_HELPER_ROUTES.filter(([m]) => m === 'POST'))(
    '%s %s from a page on another origin → 403',
    async (method, target) => {
      const res = await send(target, {
        method,
        headers: { origin: 'https://attacker.example', 'content-type': 'application/json' },
        body: '{}',
      });
      expect(res.status).toBe(403);
    },
  );

  it.each(OPERATOR_AND_HELPER_ROUTES.filter(([m]) => m === 'POST'))(
    '%s %s from a page of another server on this machine (another loopback origin) → 403',
    async (method, target) => {
      const res = await send(target, {
        method,
        headers: { origin: 'http://localhost:9999', 'content-type': 'application/json' },
        body: '{}',
      });
      expect(res.status).toBe(403);
      expect(JSON.parse(res.body).error.message).toContain('only, not a page of http://localhost:9999');
    },
  );

  it('the built-in receiver answers only its four types: another name is 404 naming them, not [] as if nothing came', async () => {
    for (const method of ['GET', 'POST']) {
      const res = await send('/local/receiver/deal-analysis', {
        method,
        headers: { 'content-type': 'application/json' },
        ...(method === 'POST' ? { body: '{"x":1}' } : {}),
      });
      expect(res.status, method).toBe(404);
      expect((JSON.parse(res.body) as { error: { code: string; message: string } }).error).toEqual({
        code: 'NOT_FOUND',
        message:
          'No built-in receiver "deal-analysis": there is one per webhook type, /local/receiver/deal_analysis, /local/receiver/data_analysis, /local/receiver/lead_analysis, /local/receiver/general',
      });
    }
    expect(
      await readFile(path.join(world.dataDir, 'receiver', 'deal_analysis.jsonl'), 'utf8').catch(() => ''),
    ).not.toContain('"x":1');
    expect((await send('/local/receiver/general')).status).toBe(200);
  });

  it('a rebound page can neither read the built-in receiver’s deliveries nor write its files', async () => {
    await send('/local/receiver/deal_analysis', {
      method: 'POST',
      headers: { host: REBOUND, 'content-type': 'application/json' },
      body: '{"forged":"by a rebound page"}',
    });
    const file = path.join(world.dataDir, 'receiver', 'deal_analysis.jsonl');
    expect(await readFile(file, 'utf8').catch(() => '')).not.toContain('forged');
    const read = await send('/local/receiver/deal_analysis', { headers: { host: REBOUND } });
    expect(read.status).toBe(403);
  });

  it('on a loopback-bound gateway, POST /webhook, GET /health and GET /conversations/{id} refuse a rebound Host name too', async () => {
    expect((await send('/health', { headers: { host: REBOUND } })).status).toBe(403);
    const status = await send(`/conversations/${ID}?source_system=testing_system`, { headers: { host: REBOUND } });
    expect(status.status).toBe(403);
    const res = await send('/webhook', {
      method: 'POST',
      headers: { host: REBOUND, 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'q', source_system: 's', source_process: 'p' }),
    });
    expect(res.status).toBe(403);
    expect(world.agent.invocations).toHaveLength(0);
    expect((await send('/health', { headers: { host: 'localhost' } })).status).toBe(200);
  });

  it('the 403 of a public route says why: the Host it was addressed to, a missing Host, a page of another site', async () => {
    const rebound = JSON.parse((await send('/health', { headers: { host: REBOUND } })).body).error.message;
    expect(rebound).toBe(
      `this gateway listens on loopback and it answers requests addressed to 127.0.0.1, localhost or [::1] only, not to "${REBOUND}" (HOST=0.0.0.0 serves other machines)`,
    );
    const noHost = await raw('GET /health HTTP/1.0\r\n\r\n');
    expect(noHost).toMatch(/^HTTP\/1\.1 403 /);
    expect(noHost).toContain('the request names no Host (send Host: 127.0.0.1, localhost or [::1])');
    const page = await send('/health', { headers: { origin: 'https://evil.example' } });
    expect(page.status).toBe(403);
    expect(JSON.parse(page.body).error.message).toContain('not a page of "https://evil.example"');
  });
});

describe('a rebound Host name is refused before the method is looked at (docs/security.md)', () => {
  it.each([
    ['GET', '/webhook'],
    ['DELETE', '/health'],
    ['POST', `/conversations/${ID}`],
    ['GET', '/2015-03-31/functions/test-manager-agent/invocations'],
    ['PUT', '/local/receiver/deal_analysis'],
  ])(
    '%s %s with a rebound Host → 403, as its own methods are; 405 only for a loopback caller',
    async (method, target) => {
      const rebound = await send(target, { method, headers: { host: REBOUND } });
      expect(rebound.status).toBe(403);
      expect(JSON.parse(rebound.body).error.code).toBe('FORBIDDEN');
      const local = await send(target, { method });
      expect(local.status).toBe(405);
      expect(JSON.parse(local.body).error.code).toBe('METHOD_NOT_ALLOWED');
    },
  );
});

describe('every answer under /conversations/ is Cache-Control: no-store (docs/contract.md#get-conversationsid)', () => {
  it.each([
    ['POST', `/conversations/${ID}?source_system=testing_system`, 405],
    ['DELETE', `/conversations/${ID}`, 405],
    ['GET', `/conversations/${ID}/?source_system=testing_system`, 404],
    ['GET', '/conversations/', 404],
    ['GET', `http://127.0.0.1/conversations/${ID}/x`, 404],
  ])('%s %s → %i, no-store', async (method, target, status) => {
    const res = await send(target, { method });
    expect(res.status).toBe(status);
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('the 403 of a rebound Host on the status route too; the 404 of another path stays as it was', async () => {
    const rebound = await send(`/conversations/${ID}?source_system=testing_system`, { headers: { host: REBOUND } });
    expect(rebound.status).toBe(403);
    expect(rebound.headers['cache-control']).toBe('no-store');
    const other = await send('/nowhere');
    expect(other.status).toBe(404);
    expect(other.headers['cache-control']).toBeUndefined();
  });
});

describe('malformed URLs answer 400, never 500', () => {
  it.each([
    ['GET', '/console/conversations/%E0%A4%A'],
    ['POST', '/local/deliveries/%E0%A4%A/redrive'],
    ['POST', '/2015-03-31/functions/%E0%A4%A/invocations'],
    ['GET', '/local/receiver/%E0%A4%A'],
    ['GET', '/webhook%'],
  ])('%s %s → 400', async (method, target) => {
    const res = await send(target, { method, headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(400);
  });

  it('a request target that is not a path (//[) → 400', async () => {
    const answer = await raw('GET //[ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
  });
});

describe('a route that fails after reading the request answers 500, never leaves its client waiting', () => {
  it("the built-in receiver cannot write its file → 500 at once (before, no answer until the client gave up: Deliver's attempt timed out)", async () => {
    const folder = path.join(world.dataDir, 'receiver');
    await rm(folder, { recursive: true, force: true });
    await writeFile(folder, 'not a folder'); // its writes now fail
    const printed = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const res = await Promise.race([
        send('/local/receiver/deal_analysis', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"delivery":1}',
        }),
        new Promise<{ status: 'no answer' }>((resolve) => setTimeout(() => resolve({ status: 'no answer' }), 3_000)),
      ]);
      expect(res.status).toBe(500);
      // Its folder is a file: said so, naming it (the local operator's request), not an internal error.
      expect(JSON.parse((res as { body: string }).body).error.code).toBe('STATE_UNREADABLE');
      expect(printed).toHaveBeenCalledWith(
        `webhook-gateway: POST "/local/receiver/deal_analysis" failed: ${folder} is a file where the gateway keeps a folder (ENOTDIR: not a directory, open '${folder}${path.sep}deal_analysis.jsonl'): move it aside or delete it (a restart of the gateway makes the folder again)`,
      );
    } finally {
      printed.mockRestore();
      await rm(folder, { force: true });
    }
  });

  it('a redrive whose failed-delivery file is not JSON → 500 STATE_UNREADABLE at once, naming the file and what to do, printed without a stack', async () => {
    world.receiver.reply(400);
    const id = (await world.post({ query: 'q', source_system: 's', source_process: 'p' })).body.conversation_id;
    await writeFile(path.join(world.dataDir, 'failed-deliveries', `${id}.json`), '{"version": 1, "conversation_id');
    const printed = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const answer = await fetch(`${world.gateway.url}/local/deliveries/${id}/redrive`, {
        method: 'POST',
        signal: AbortSignal.timeout(5_000),
      });
      expect(answer.status).toBe(500);
      const { error } = (await answer.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe('STATE_UNREADABLE');
      expect(error.message).toContain(`${id}.json is not valid JSON`);
      expect(error.message).toContain('deliveries resend <id>');
      expect(printed).toHaveBeenCalledTimes(1);
      expect(printed).toHaveBeenCalledWith(expect.stringContaining(`${id}.json is not valid JSON`));
      expect(String(printed.mock.calls[0]![0])).not.toMatch(/\n\s+at /);
    } finally {
      printed.mockRestore();
    }
  });
});

describe("a body past a route's limit", () => {
  it('the built-in receiver answers 413 PAYLOAD_TOO_LARGE, as POST /webhook does, and prints no stack', async () => {
    // Before: 500 INTERNAL_ERROR "internal error in the local gateway", and a stack on the gateway's stderr.
    const printed = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const res = await send('/local/receiver/general', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'a'.repeat(1024 * 1024) }),
      });
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body)).toEqual(
        errorBody('PAYLOAD_TOO_LARGE', 'Request too large: this route takes a body of at most 1048576 bytes'),
      );
      expect(printed).not.toHaveBeenCalled();
    } finally {
      printed.mockRestore();
    }
  });
});

describe('malformed HTTP framing', () => {
  const POST = 'POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n';
  it.each([
    ['a Content-Length that is no number', `${POST}Content-Length: abc\r\n\r\n{}`],
    ['two different Content-Lengths', `${POST}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}`],
    [
      'Transfer-Encoding beside Content-Length',
      `${POST}Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
    ],
    ['a chunk size that is no hex number', `${POST}Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`],
  ])('%s → 400 BAD_REQUEST in the error shape, and the connection closed', async (_, request) => {
    const answer = await raw(request);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as {
      success: boolean;
      error: { code: string; message: string };
    };
    expect(body.success).toBe(false);
    expect(body.error.code).toBe('BAD_REQUEST');
    expect(body.error.message).toMatch(/^malformed HTTP request: /);
  });

  it('an HTTP/2 client without TLS (prior knowledge) is told to speak HTTP/1.1, not "Pause on PRI/Upgrade"', async () => {
    const answer = await raw('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toContain('"malformed HTTP request: HTTP/2 without TLS is not served here: send HTTP/1.1"');
  });
});

describe('slow clients are cut off', () => {
  it('headers not finished in time → 408 REQUEST_TIMEOUT and the connection closed; a body not finished in time → 408', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-slow-'));
    const lines: RequestSummary[] = [];
    const gateway = await startGateway({
      port: 0,
      s3Port: 0,
      dataDir,
      headersTimeoutMs: 300,
      requestTimeoutMs: 600,
      onExecution: (line) => lines.push(line),
    });
    const printed = vi.spyOn(console, 'error');
    const slowBodyRequest =
      'POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"qu';
    try {
      // Each waits for the gateway to close the connection, with no bound of its own: without the limits set above
      // Node's own (60 s for the headers, 300 s for the request) would close it only after this test's 30 s.
      const slowHeaders = await raw('POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n', gateway.url, null);
      expect(slowHeaders).toMatch(/^HTTP\/1\.1 408 /);
      const slowBody = await raw(slowBodyRequest, gateway.url, null);
      expect(slowBody).toMatch(/^HTTP\/1\.1 408 /);
      // In the error shape (before: no body), saying which limit passed.
      expect([slowHeaders, slowBody].map((answer) => JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)))).toEqual(
        [
          errorBody('REQUEST_TIMEOUT', 'the request headers did not arrive within 0.3 s'),
          errorBody('REQUEST_TIMEOUT', 'the request did not arrive whole within 0.6 s'),
        ],
      );
      // The operator log has a line for each (before: none); a connection that sent nothing gets its 408 without one.
      expect(await raw('', gateway.url, null)).toMatch(/^HTTP\/1\.1 408 /);
      expect(lines.map((line) => [line.http_status, line.detail])).toEqual([
        [408, 'REQUEST_TIMEOUT: the request headers did not arrive within 0.3 s'],
        [408, 'REQUEST_TIMEOUT: the request did not arrive whole within 0.6 s'],
      ]);
      expect(printed).not.toHaveBeenCalled(); // a cut-off client is not a gateway failure (no stack in the operator log)
      // A request received in time may take longer than that to answer (the workflow runs): no 408 then. Its agent
      // holds the answer until a slow body sent after it was cut off: the request limit has passed for both.
      world.agent.reset();
      world.agent.behave(() => ({ payload: { response: 'slow answer' }, held: true }));
      const slowAnswer = send('/webhook', {
        base: gateway.url,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: 'q', source_system: 's', source_process: 'p' }),
      });
      await expect.poll(() => world.agent.invocations).toHaveLength(1);
      expect(await raw(slowBodyRequest, gateway.url, null)).toMatch(/^HTTP\/1\.1 408 /);
      world.agent.letGo();
      expect((await slowAnswer).status).toBe(200);
    } finally {
      printed.mockRestore();
      world.agent.reset();
      await gateway.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
