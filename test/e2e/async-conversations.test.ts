import { request } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { statusSigningPayload } from '../../functions/domain/conversation-status.ts';
import { signOutbound } from '../../functions/domain/signatures.ts';
import type { RequestSummary } from '../../local/server/config.ts';
import { runMain } from '../support/cli.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

const secret = (seed: string) => `whsec_${Buffer.from(seed.padEnd(32, seed)).toString('base64')}`;
const SIGNED_SECRET = secret('signed-source');
const ASYNC = { prefer: 'respond-async' };

let world: TestWorld;
/** What the operator log (npm start) prints, one summary a line. */
const operatorLog: RequestSummary[] = [];
beforeAll(async () => {
  world = await startWorld(
    {
      // An asynchronous conversation's agent may take 10 s, a synchronous one's the world's 5 s: real timers, with
      // seconds of room for the answers here, given at once or when a test lets them go.
      ASYNC_AGENT_TIMEOUT_MS: '10000',
      INBOUND_WEBHOOK_SECRETS: JSON.stringify({ signed_source: SIGNED_SECRET }),
    },
    { onExecution: (summary) => operatorLog.push(summary) },
  );
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  world.agent.reset();
  world.receiver.reset();
});

/** An agent that answers only when the test lets it go (`world.agent.letGo()`): no sleeping on time. */
function heldAgent() {
  world.agent.behave((request) => ({
    held: true,
    payload: { response: `Answer to: ${String(request.query)}`, agent: 'test-agent' },
  }));
}

async function getStatus(url: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers });
  return { status: response.status, body: (await response.json()) as any, headers: response.headers };
}

const statusUrlOf = (id: string, source = 'testing_system') =>
  `${world.gateway.url}/conversations/${id}?source_system=${source}`;

describe('Prefer: respond-async: 202 at once, the same workflow runs without the caller', () => {
  it('answers 202 with the conversation id, a status URL and Preference-Applied; the status says running, then completed with the body a synchronous call returns', async () => {
    heldAgent();
    const accepted = await world.post(SEED_REQUEST, ASYNC);
    expect(accepted.status).toBe(202);
    const id = accepted.body.conversation_id as string;
    expect(id).toMatch(/^webhook_\d{8}_\d{6}_testing_phase3valid_/);
    expect(accepted.body).toEqual({ success: true, conversation_id: id, status_url: statusUrlOf(id) });
    expect(accepted.headers.get('preference-applied')).toBe('respond-async');
    expect(accepted.headers.get('location')).toBe(statusUrlOf(id));
    expect(accepted.headers.get('retry-after')).toBe('2');

    // The agent has been called and holds its answer: the conversation runs, nothing is delivered or exported yet.
    const running = await getStatus(accepted.body.status_url);
    expect(running.status).toBe(200);
    expect(running.body).toMatchObject({ success: true, conversation_id: id, status: 'running' });
    expect(running.headers.get('retry-after')).toBe('2');
    expect(running.headers.get('cache-control')).toBe('no-store');
    // JSON said the same way as by POST /webhook (and every local route).
    expect(running.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(running.headers.get('content-type')).toBe(accepted.headers.get('content-type'));
    expect(world.receiver.received).toHaveLength(0);

    world.agent.letGo();
    await world.gateway.idle();
    const done = await getStatus(accepted.body.status_url);
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({
      success: true,
      conversation_id: id,
      status: 'completed',
      response: { response: `Answer to: ${SEED_REQUEST.query}` },
      tracking: { conversation_id: id, webhook_type: 'deal_analysis', delivery_status: 'delivered' },
    });
    expect(world.receiver.received).toHaveLength(1);
    expect(world.receiver.received[0]!.body).toMatchObject({ conversation_id: id });
    expect(await world.listKeys(folderOf(id))).toHaveLength(4);
    const record = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(record.conversation.metadata.response_mode).toBe('async');
    expect(record.conversation.execution.status).toBe('completed');
    // One execution accepted it, one ran it (named after the conversation).
    const executions = await world.gateway.executions.executions(id);
    expect(executions.map((e) => [e.state_machine, e.status])).toEqual([
      ['accept', 'SUCCEEDED'],
      ['conversation', 'SUCCEEDED'],
    ]);
    expect(executions[1]!.execution_name).toBe(id);
  });

  it('a delivery that failed, then redriven: the status says failed, then delivered, in the first answer’s body', async () => {
    world.receiver.reply(400);
    const accepted = await world.post(SEED_REQUEST, ASYNC);
    await world.gateway.idle();
    const failed = await getStatus(accepted.body.status_url);
    expect(failed.body).toMatchObject({ status: 'completed', tracking: { delivery_status: 'failed' } });
    world.receiver.reset();
    expect((await world.gateway.redelivery.redrive(accepted.body.conversation_id)).status).toBe('delivered');
    const delivered = await getStatus(accepted.body.status_url);
    expect(delivered.body).toEqual({
      ...failed.body,
      tracking: { ...failed.body.tracking, delivery_status: 'delivered' },
      delivery_updated_at: expect.any(String),
    });
  });

  it('gives the agent the asynchronous budget (10 s, over the synchronous 5 s); the run completes', async () => {
    // The budget is read from the run, not timed: before, the agent answered 4 s late in real time.
    const accepted = await world.post(SEED_REQUEST, ASYNC);
    expect(accepted.status).toBe(202);
    await world.gateway.idle();
    const done = await getStatus(accepted.body.status_url);
    expect(done.body.status).toBe('completed');
    const [, run] = await world.gateway.executions.executions(accepted.body.conversation_id);
    const validated = run!.events.find((e) => e.type === 'StateExited' && e.state === 'Validate')!.output as any;
    expect(validated.budget).toEqual({ agent_seconds: 10, deliver_by: null, answer_by: null });
  });

  it('an agent failure: 202 first, then status failed with the error a synchronous call would have got; exported as failed', async () => {
    world.agent.behave(() => ({
      functionError: 'Unhandled',
      payload: { errorType: 'KeyError', errorMessage: "'opportunities'" },
    }));
    const accepted = await world.post(SEED_REQUEST, ASYNC);
    expect(accepted.status).toBe(202);
    const id = accepted.body.conversation_id as string;
    await world.gateway.idle();
    const failed = await getStatus(accepted.body.status_url);
    expect(failed.status).toBe(200);
    expect(failed.body).toMatchObject({
      success: false,
      conversation_id: id,
      status: 'failed',
      error: {
        code: 'AGENT_ERROR',
        message: "The manager agent failed: KeyError: 'opportunities'",
        conversation_id: id,
      },
    });
    const summary = JSON.parse(await world.getText(`${folderOf(id)}summary.json`));
    expect(summary).toMatchObject({ status: 'failed', delivery_status: 'not_attempted' });
    expect(world.receiver.received).toHaveLength(0);
    // The operator log has the 202 and how the run ended.
    const lines = operatorLog.filter((line) => line.conversation_id === id);
    expect(lines).toHaveLength(2);
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ http_status: 202, detail: 'accepted: running without the caller' }),
        expect.objectContaining({
          http_status: 502,
          detail: "async run ended: AGENT_ERROR: The manager agent failed: KeyError: 'opportunities'",
        }),
      ]),
    );
  });

  it('a request the gateway refuses is refused at once, as a synchronous one is: no 202, no conversation', async () => {
    const invalid = await world.post({ ...SEED_REQUEST, query: '' }, ASYNC);
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.code).toBe('VALIDATION_ERROR');
    expect(invalid.headers.get('preference-applied')).toBeNull();
    const unsigned = await world.post({ ...SEED_REQUEST, source_system: 'signed_source' }, ASYNC);
    expect(unsigned.status).toBe(401);
    expect(world.agent.invocations).toHaveLength(0);
  });

  it('other preferences are ignored; respond-async is found among several, in any case', async () => {
    const sync = await world.post(SEED_REQUEST, { prefer: 'return=minimal' });
    expect(sync.status).toBe(200);
    const mixed = await world.post(SEED_REQUEST, { prefer: 'wait=10, Respond-Async' });
    expect(mixed.status).toBe(202);
    await world.gateway.idle();
  });
});

/**
 * docs/contract.md#asynchronous-start-prefer-respond-async: `status_url` and `Location` name the API as the caller
 * reached it. A gateway on every interface (HOST=0.0.0.0) is called by other machines under its network name: its own
 * loopback URL would send their poll to their own machine. Here the loopback gateway is called by its other name.
 */
describe('the status URL names the gateway as the caller reached it (its Host)', () => {
  function postAs(host: string) {
    return new Promise<{ status: number; location: string | undefined; body: any }>((resolve, reject) => {
      const req = request(
        `${world.gateway.url}/webhook`,
        { method: 'POST', headers: { host, 'content-type': 'application/json', ...ASYNC } },
        (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => {
            text += chunk.toString();
          });
          res.on('end', () =>
            resolve({ status: res.statusCode!, location: res.headers.location, body: JSON.parse(text) }),
          );
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(SEED_REQUEST));
    });
  }

  it('called as localhost: the status URL is on localhost, not on the 127.0.0.1 the gateway names itself', async () => {
    const port = new URL(world.gateway.url).port;
    const accepted = await postAs(`localhost:${port}`);
    expect(accepted.status).toBe(202);
    const expected = `http://localhost:${port}/conversations/${accepted.body.conversation_id}?source_system=testing_system`;
    expect(accepted.body.status_url).toBe(expected);
    expect(accepted.location).toBe(expected);
    await world.gateway.idle();
  });
});

describe('Idempotency-Key with an asynchronous start', () => {
  it('a retry gets the same 202 (same conversation id) while it runs and after: one agent call, one delivery', async () => {
    heldAgent();
    const key = { ...ASYNC, 'idempotency-key': `async-${Math.random().toString(36).slice(2)}` };
    const first = await world.post(SEED_REQUEST, key);
    expect(first.status).toBe(202);
    const again = await world.post(SEED_REQUEST, key);
    expect(again.status).toBe(202);
    expect(again.body).toEqual(first.body);
    world.agent.letGo();
    await world.gateway.idle();
    const afterwards = await world.post({ ...SEED_REQUEST, timestamp: '2025-08-13T10:31:00Z' }, key);
    expect(afterwards.status).toBe(202);
    expect(afterwards.body.conversation_id).toBe(first.body.conversation_id);
    expect(world.agent.invocations).toHaveLength(1);
    expect(world.receiver.received).toHaveLength(1);
    // A synchronous retry of it gets the answer itself.
    const sync = await world.post(SEED_REQUEST, { 'idempotency-key': key['idempotency-key'] });
    expect(sync.status).toBe(200);
    expect(sync.body).toMatchObject({ success: true, conversation_id: first.body.conversation_id });
  });

  it('after an agent failure the key is freed: the retry runs as a new conversation', async () => {
    world.agent.behave(() => ({ functionError: 'Unhandled', payload: { errorType: 'Boom', errorMessage: 'down' } }));
    const key = { ...ASYNC, 'idempotency-key': `async-${Math.random().toString(36).slice(2)}` };
    const first = await world.post(SEED_REQUEST, key);
    await world.gateway.idle();
    world.agent.reset();
    const retry = await world.post(SEED_REQUEST, key);
    expect(retry.status).toBe(202);
    expect(retry.body.conversation_id).not.toBe(first.body.conversation_id);
    await world.gateway.idle();
    expect((await getStatus(retry.body.status_url)).body.status).toBe('completed');
  });
});

/**
 * docs/contract.md#asynchronous-start-prefer-respond-async: a key first sent synchronously has no status to read (its
 * caller gets the answer), so a retry of it that asks `respond-async` is answered as a synchronous retry is: 409 while
 * it runs, then the answer itself (200, no Preference-Applied), never a 202 whose status URL would answer 404.
 */
describe('one Idempotency-Key, synchronous first, then retried with Prefer: respond-async', () => {
  it('409 while the synchronous one runs, then its 200 answer: one agent call, one delivery', async () => {
    let arrived!: () => void;
    const agentCalled = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    world.agent.behave((request) => {
      arrived();
      return { held: true, payload: { response: `Answer to: ${String(request.query)}`, agent: 'test-agent' } };
    });
    const key = { 'idempotency-key': `mixed-${Math.random().toString(36).slice(2)}` };
    const sync = world.post(SEED_REQUEST, key);
    await agentCalled;
    const whileRunning = await world.post(SEED_REQUEST, { ...key, ...ASYNC });
    expect(whileRunning.status).toBe(409);
    expect(whileRunning.body.error.code).toBe('IDEMPOTENCY_CONFLICT');
    expect(whileRunning.headers.get('retry-after')).toBe('2');
    world.agent.letGo();
    const answered = await sync;
    expect(answered.status).toBe(200);
    expect(whileRunning.body.error.conversation_id).toBe(answered.body.conversation_id);
    await world.gateway.idle();
    const afterwards = await world.post(SEED_REQUEST, { ...key, ...ASYNC });
    expect(afterwards.status).toBe(200);
    expect(afterwards.headers.get('preference-applied')).toBeNull();
    expect(afterwards.body).toEqual(answered.body);
    expect((await getStatus(statusUrlOf(answered.body.conversation_id))).status).toBe(404);
    expect(world.agent.invocations).toHaveLength(1);
    expect(world.receiver.received).toHaveLength(1);
  });
});

describe('GET /conversations/{id}: only the source that started it, proven as for a POST', () => {
  async function startSigned() {
    const body = JSON.stringify({ ...SEED_REQUEST, source_system: 'signed_source' });
    const headers = signOutbound(SIGNED_SECRET, `msg_${Math.random().toString(36).slice(2)}`, new Date(), body);
    const accepted = await world.post(body, { ...ASYNC, ...(headers as unknown as Record<string, string>) });
    expect(accepted.status).toBe(202);
    await world.gateway.idle();
    return accepted.body.conversation_id as string;
  }
  const signedGet = (id: string, key = SIGNED_SECRET, target = id) =>
    signOutbound(key, `get_${Math.random().toString(36).slice(2)}`, new Date(), statusSigningPayload(target)) as never;

  it('another source asking for the id gets 404, exactly as for an id that does not exist', async () => {
    const accepted = await world.post(SEED_REQUEST, ASYNC);
    await world.gateway.idle();
    const id = accepted.body.conversation_id as string;
    const other = await getStatus(statusUrlOf(id, 'another_system'));
    const missing = await getStatus(statusUrlOf(id.replace(/_[a-z0-9]+$/, '_zzzzzzzzzz')));
    expect(other.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(other.body.error.code).toBe('NOT_FOUND');
    expect(other.body).toEqual({
      ...missing.body,
      error: { ...missing.body.error, message: other.body.error.message },
    });
    expect(JSON.stringify(other.body)).not.toContain('Answer to');
    // Its own source, in any spelling, reads it.
    expect((await getStatus(statusUrlOf(id, 'Testing.System'))).body.status).toBe('completed');
  });

  it('a signed source must sign the request target: unsigned 401, signed for another conversation 401, signed 200', async () => {
    const id = await startSigned();
    const url = statusUrlOf(id, 'signed_source');
    const unsigned = await getStatus(url);
    expect(unsigned.status).toBe(401);
    expect(unsigned.body.error.code).toBe('INVALID_SIGNATURE');
    const elsewhere = await getStatus(url, signedGet(id, SIGNED_SECRET, 'webhook_20250101_000000_x_y_other'));
    expect(elsewhere.status).toBe(401);
    const wrongKey = await getStatus(url, signedGet(id, secret('someone-else')));
    expect(wrongKey.status).toBe(401);
    // What `webhook-gateway sign --status <id>` prints is what it takes.
    const cli = await runMain(['sign', '--secret', SIGNED_SECRET, '--status', id, '--json']);
    expect(cli.code).toBe(0);
    const signed = await getStatus(url, JSON.parse(cli.stdout));
    expect(signed.status).toBe(200);
    expect(signed.body).toMatchObject({ conversation_id: id, status: 'completed' });
  });

  it('an unsigned source cannot read a signed source’s conversation by naming itself: 404', async () => {
    const id = await startSigned();
    const asTesting = await getStatus(statusUrlOf(id, 'testing_system'));
    expect(asTesting.status).toBe(404);
  });

  it('a synchronous conversation has no status record (its caller has the answer); no source named: 400', async () => {
    const sync = await world.post(SEED_REQUEST);
    const id = sync.body.conversation_id as string;
    expect((await getStatus(statusUrlOf(id))).status).toBe(404);
    const unnamed = await getStatus(`${world.gateway.url}/conversations/${id}`);
    expect(unnamed.status).toBe(400);
    expect(unnamed.body.error).toMatchObject({ code: 'VALIDATION_ERROR', details: [{ field: 'source_system' }] });
    const post = await fetch(`${world.gateway.url}/conversations/${id}`, { method: 'POST' });
    expect(post.status).toBe(405);
  });
});
