import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runMain } from '../support/cli.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  world.agent.reset();
  world.receiver.reset();
  // The world's 5 s for an agent that answers at once (before: 2 s for every test here, little room on a loaded
  // machine); a test whose agent never answers sets its own, shorter (read by Validate at each request).
  process.env.MANAGER_AGENT_TIMEOUT_MS = '5000';
});

async function expectExportedAsFailed(conversationId: string, error: string | RegExp) {
  const record = await world.getJson(`${folderOf(conversationId)}conversation.json`);
  expect(record.conversation.execution.status).toBe('failed');
  expect(record.conversation.webhook_context.delivery_status).toBe('not_attempted');
  expect(record.conversation.execution.errors[0]).toMatchObject({
    stage: 'InvokeManagerAgent',
    error: typeof error === 'string' ? error : expect.stringMatching(error),
  });
  const summary = JSON.parse(await world.getText(`${folderOf(conversationId)}summary.json`));
  expect(summary.status).toBe('failed');
  return record;
}

describe('InvokeManagerAgent (the state machine invokes the agent) failures: conversation exported as failed, nothing delivered', () => {
  it('FunctionError from the agent → 502 AGENT_ERROR with its errorType and message', async () => {
    world.agent.behave(() => ({
      functionError: 'Unhandled',
      payload: { errorType: 'KeyError', errorMessage: "'opportunities'" },
    }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.success).toBe(false);
    expect(res.body.error.code).toBe('AGENT_ERROR');
    // Step Functions names the failure after the function's errorType, the cause is its error payload.
    expect(res.body.error.message).toBe("The manager agent failed: KeyError: 'opportunities'");
    const id = res.body.error.conversation_id as string;
    expect(id).toMatch(/^webhook_\d{8}_\d{6}_testing_phase3valid_/);
    await expectExportedAsFailed(id, 'KeyError');
    expect(world.receiver.received).toHaveLength(0);
    const [execution] = await world.gateway.executions.executions(id);
    expect(execution).toMatchObject({ status: 'FAILED', error: 'AgentError' });
    expect(execution!.events.filter((e) => e.type === 'StateEntered').map((e) => e.state)).toEqual([
      'Validate',
      'IsRequestValid',
      'InvokeManagerAgent',
      'ExportFailedConversation',
      'AgentFailed',
    ]);
  });

  it("an error's Cause over 32,768 characters is cut there, as Step Functions cuts it, and its message still shown", async () => {
    world.agent.behave(() => ({
      functionError: 'Unhandled',
      payload: { errorType: 'VerboseError', errorMessage: 'v'.repeat(40_000), trace: ['VerboseError: …'] },
    }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    const prefix = '{"errorType":"VerboseError","errorMessage":"';
    expect(res.body.error.message).toBe(
      `The manager agent failed: VerboseError: ${'v'.repeat(2_000)}… (${32_768 - prefix.length - 2_000} more characters cut)`,
    );
    const id = res.body.error.conversation_id as string;
    await expectExportedAsFailed(id, 'VerboseError');
    const [execution] = await world.gateway.executions.executions(id);
    const caught = execution!.events.find((e) => e.type === 'StateEntered' && e.state === 'ExportFailedConversation')!
      .input as { agent_error: { Error: string; Cause: string } };
    expect(caught.agent_error.Cause).toBe(`${prefix}${'v'.repeat(32_768 - prefix.length)}`);
  });

  it('a crash without an errorType is Lambda.Unknown, as Step Functions reports it', async () => {
    world.agent.behave(() => ({
      functionError: 'Unhandled',
      payload: { errorMessage: 'Task timed out after 3.00 seconds' },
    }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toMatch(
      /^The manager agent failed: Lambda.Unknown: The cause could not be determined because Lambda did not return an error type/,
    );
    await expectExportedAsFailed(res.body.error.conversation_id, 'Lambda.Unknown');
  });

  it('agent slower than its budget → 504 TIMEOUT with the conversation id, without waiting for the agent', async () => {
    // The agent answers only at the next test's reset: the workflow answers itself at InvokeManagerAgent's
    // TimeoutSecondsPath ($.budget.agent_seconds = 2, checked below), or this test times out.
    process.env.MANAGER_AGENT_TIMEOUT_MS = '2000';
    world.agent.behave(() => ({ held: true, payload: { response: 'too late' } }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(504);
    expect(res.body.error).toMatchObject({
      code: 'TIMEOUT',
      message:
        "The manager agent did not answer within 2 s; the conversation was recorded as failed. For an agent that needs longer, send it again with 'Prefer: respond-async': 202 at once, then poll its status_url (the same Idempotency-Key starts it afresh)",
    });
    const id = res.body.error.conversation_id as string;
    await expectExportedAsFailed(id, 'States.Timeout');
    const [execution] = await world.gateway.executions.executions(id);
    expect(execution).toMatchObject({ status: 'FAILED', error: 'AgentTimeout' });
    expect(execution!.input).toBeDefined();
    const validated = execution!.events.find((e) => e.type === 'StateExited' && e.state === 'Validate');
    expect((validated!.output as { budget: { agent_seconds: number } }).budget.agent_seconds).toBe(2);
  });

  it('a synchronous request that timed out, sent again as the 504 says (same Idempotency-Key, Prefer: respond-async), runs afresh and completes', async () => {
    // The first run's agent never answers in time; the second run's answers at once, and the budget it was given is
    // read from the run (before: an agent 3 s late in real time for both).
    process.env.MANAGER_AGENT_TIMEOUT_MS = '2000';
    world.agent.behave(() => ({ held: true, payload: { response: 'too late' } }));
    const key = { 'idempotency-key': 'slow-agent-1' };
    const first = await world.post(SEED_REQUEST, key);
    expect(first.status).toBe(504);
    world.agent.behave(() => ({ payload: { response: 'worth the wait' } }));
    const again = await world.post(SEED_REQUEST, { ...key, prefer: 'respond-async' });
    expect(again.status).toBe(202);
    expect(again.body.conversation_id).not.toBe(first.body.error.conversation_id);
    await world.gateway.idle();
    const status = await fetch(again.body.status_url);
    expect(await status.json()).toMatchObject({ status: 'completed', response: { response: 'worth the wait' } });
    // The asynchronous run gave the agent more than the 2 s the synchronous one timed out at.
    const [, run] = await world.gateway.executions.executions(again.body.conversation_id);
    const validated = run!.events.find((e) => e.type === 'StateExited' && e.state === 'Validate');
    expect((validated!.output as { budget: { agent_seconds: number } }).budget.agent_seconds).toBeGreaterThan(2);
  });

  it('agent function not found (the Lambda service answers 404) → Lambda.ResourceNotFoundException', async () => {
    world.agent.behave(() => ({
      status: 404,
      headers: { 'x-amzn-errortype': 'ResourceNotFoundException' },
      payload: { Type: 'User', message: 'Function not found: test-manager-agent' },
    }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toMatch(
      /^The manager agent failed: Lambda.ResourceNotFoundException: Function not found: test-manager-agent \(Service: AWSLambda; Status Code: 404; Error Code: ResourceNotFoundException/,
    );
    await expectExportedAsFailed(res.body.error.conversation_id, 'Lambda.ResourceNotFoundException');
  });

  it('an endpoint that is not the Lambda Invoke API (an HTML 502 page) → Lambda.SdkClientException saying so, not an SDK internals hint', async () => {
    world.agent.behave(() => ({
      status: 502,
      headers: { 'content-type': 'text/html' },
      payload: null,
      raw: '<html><body>502 Bad Gateway</body></html>',
    }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toMatch(
      /^The manager agent failed: Lambda\.SdkClientException: Unable to unmarshall error response \(.*\)\. Response Code: 502: the Lambda endpoint did not answer as the Lambda Invoke API does/,
    );
    expect(res.body.error.message).not.toMatch(/hidden field|\$response|Deserialization/);
    await expectExportedAsFailed(res.body.error.conversation_id, 'Lambda.SdkClientException');
  });

  it('a throttled agent (429: it did not run) is invoked again, and its answer used', async () => {
    let calls = 0;
    world.agent.behave(() => {
      calls += 1;
      return calls === 1
        ? {
            status: 429,
            headers: { 'x-amzn-errortype': 'TooManyRequestsException' },
            payload: { message: 'Rate Exceeded.' },
          }
        : { payload: { response: 'second time lucky' } };
    });
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.response).toEqual({ response: 'second time lucky' });
    expect(calls).toBe(2);
  });

  it.each([
    ['none', null],
    ['white space', '  \n '],
    ['an object whose fields say nothing', { response: '', analysis: {} }],
  ])('an empty answer (%s) is an agent error, not an empty delivery', async (_what, payload) => {
    world.agent.behave(() => ({ payload }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toBe(
      'The manager agent failed: AgentAnswerRejected: the manager agent returned an empty answer',
    );
    await expectExportedAsFailed(res.body.error.conversation_id, 'AgentAnswerRejected');
  });

  it('an answer over the 64 KB of the agent contract is refused, and the conversation exported as failed', async () => {
    world.agent.behave(() => ({ payload: { response: 'x'.repeat(70_000) } }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toMatch(/answered \d+ bytes, more than the 65536 a conversation can carry/);
    const record = await expectExportedAsFailed(res.body.error.conversation_id, 'AgentAnswerRejected');
    // The refused answer is not kept, and nothing of it travels further.
    expect(JSON.stringify(record)).not.toContain('xxxxxxxxxx');
  });

  it('an answer at the cap beside the largest query and metadata is carried: the state holds the answer once', async () => {
    const answer = 'y'.repeat(65_000);
    world.agent.behave(() => ({ payload: { response: answer } }));
    const largest = { ...SEED_REQUEST, query: '€'.repeat(20_000), metadata: { notes: 'm'.repeat(16_000) } };
    const res = await world.post(largest);
    expect(res.status).toBe(200);
    expect(res.body.response).toEqual({ response: answer });
    const exported = (await world.getJson(`${folderOf(res.body.conversation_id)}conversation.json`)).conversation;
    expect(exported.conversation.turns[1]).toMatchObject({ role: 'assistant', content: answer });
  });

  const nestedArray = (levels: number) => `${'['.repeat(levels)}"deep"${']'.repeat(levels)}`;
  const nestedObject = (levels: number) => `{"response":"x","data":${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}}`;

  it('an answer nested 64 levels deep is carried; one level more is refused by Classify, and exported as failed', async () => {
    world.agent.behave(() => ({ payload: null, raw: nestedArray(64) }));
    const ok = await world.post(SEED_REQUEST);
    expect(ok.status).toBe(200);
    expect(ok.body.response).toEqual({ content: nestedArray(64) });
    world.agent.behave(() => ({ payload: null, raw: nestedArray(65) }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toBe(
      'The manager agent failed: AgentAnswerRejected: the manager agent answered JSON nested more than 64 levels deep, more than a conversation can carry',
    );
    await expectExportedAsFailed(res.body.error.conversation_id, 'AgentAnswerRejected');
    const [execution] = await world.gateway.executions.executions(res.body.error.conversation_id);
    expect(execution!.events.filter((e) => e.type === 'StateEntered').map((e) => e.state)).toEqual([
      'Validate',
      'IsRequestValid',
      'InvokeManagerAgent',
      'Classify',
      'ExportFailedConversation',
      'AgentFailed',
    ]);
  });

  it.each([
    ['objects 1,000 levels deep (refused by Classify)', nestedObject(999), 'Classify'],
    ['arrays 2,500 levels deep', nestedArray(2_500), 'InvokeManagerAgent'],
    ['objects 2,500 levels deep beside its text', nestedObject(2_500), 'InvokeManagerAgent'],
    ['arrays 100,000 levels deep (200 KB)', nestedArray(100_000), 'InvokeManagerAgent'],
  ])('an answer of %s is refused as too deep, exported as failed, its history kept', async (_what, raw, failedIn) => {
    world.agent.behave(() => ({ payload: null, raw }));
    const query = `A deeply nested answer, please (${_what})`;
    const res = await world.post({ ...SEED_REQUEST, query });
    expect(res.status).toBe(502);
    expect(res.body.error.message).toMatch(/AgentAnswerRejected: .* nested more than 64 levels deep/);
    const id = res.body.error.conversation_id as string;
    const record = await expectExportedAsFailed(id, 'AgentAnswerRejected');
    expect(JSON.stringify(record)).not.toContain('[[[[');
    const [execution] = await world.gateway.executions.executions(id);
    expect(execution).toMatchObject({ status: 'FAILED', error: 'AgentError' });
    // The local engine refuses past 1,000 levels what it could not write down, where AWS carries it to Classify.
    const failed = execution!.events.find((e) => e.error === 'AgentAnswerRejected');
    expect(failed?.state).toBe(failedIn);
    const env = { LOCAL_DATA_DIR: world.dataDir, NO_COLOR: '1' };
    const shown = (await runMain(['conversations', 'show', id], env)).stdout;
    expect(shown).toMatch(/status {5}failed/);
  });

  it('an answer over 256 KB fails the execution with States.DataLimitExceeded, which no Catch handles (as on AWS) → 500', async () => {
    world.agent.behave(() => ({ payload: { response: 'z'.repeat(300_000) } }));
    const query = 'An answer over the Step Functions limit, please';
    const res = await world.post({ ...SEED_REQUEST, query });
    expect(res.status).toBe(500);
    expect(res.body.error).toMatchObject({ code: 'INTERNAL_ERROR', workflow_error: 'States.DataLimitExceeded' });
    // The operator sees it failed (not in progress for ever, with exports that were never written).
    const env = { LOCAL_DATA_DIR: world.dataDir, NO_COLOR: '1' };
    const listed = JSON.parse((await runMain(['conversations', 'list', '--json', '--status', 'failed'], env)).stdout);
    const row = listed.find((r: { query: string }) => r.query === query);
    expect(row).toMatchObject({ status: 'failed', delivery_status: 'not_attempted' });
    const shown = (await runMain(['conversations', 'show', row.conversation_id], env)).stdout;
    expect(shown).toMatch(/status {5}failed {3}delivery not_attempted/);
    expect(shown).toMatch(/error .* InvokeManagerAgent: States\.DataLimitExceeded/);
    expect(shown).toMatch(/exports {4}none in s3:\/\/.* \(its run ended before its export/);
  });

  it('an answer under 256 KB that takes the state past it beside a large question fails as on AWS: States.DataLimitExceeded → 500', async () => {
    world.agent.behave(() => ({ payload: { response: 'w'.repeat(215_000) } }));
    const res = await world.post({ ...SEED_REQUEST, query: '数'.repeat(20_000) });
    expect(res.status).toBe(500);
    expect(res.body.error).toMatchObject({ code: 'INTERNAL_ERROR', workflow_error: 'States.DataLimitExceeded' });
    const env = { LOCAL_DATA_DIR: world.dataDir, NO_COLOR: '1' };
    const listed = JSON.parse((await runMain(['conversations', 'list', '--json', '--status', 'failed'], env)).stdout);
    const row = listed.find((r: { query: string }) => r.query === '数'.repeat(20_000));
    expect(row).toMatchObject({ status: 'failed', delivery_status: 'not_attempted' });
    const [execution] = await world.gateway.executions.executions(row.conversation_id);
    expect(execution).toMatchObject({ status: 'FAILED', error: 'States.DataLimitExceeded' });
    expect(execution!.cause).toMatch(/^The state\/task 'InvokeManagerAgent' returned a result with a size exceeding/);
  });

  it("an endless answer is read only to Lambda's 6 MB, then fails as Lambda fails it: 502 Function.ResponseSizeTooLarge, exported as failed", async () => {
    // A fake agent endpoint answering 1.2 GB took the gateway to 3.8 GB and a 502 "Cannot create a string longer than
    // 0x1fffffe8 characters". Lambda returns at most 6,291,556 bytes; past them it fails the invoke itself.
    let written: (bytes: number) => void = () => {};
    const agentWrote = new Promise<number>((resolve) => {
      written = resolve;
    });
    const offered = 96 * 1024 * 1024;
    world.agent.behave(() => ({ payload: null, endless: { bytes: offered, written } }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error).toMatchObject({
      code: 'AGENT_ERROR',
      message:
        'The manager agent failed: Function.ResponseSizeTooLarge: Response payload size exceeded maximum allowed payload size (6291556 bytes).',
    });
    await expectExportedAsFailed(res.body.error.conversation_id, 'Function.ResponseSizeTooLarge');
    expect(world.receiver.received).toHaveLength(0);
    // The gateway closed the connection past the limit: the agent got out the limit and what the sockets buffer.
    expect(await agentWrote).toBeLessThan(6_291_556 + 24 * 1024 * 1024);
  });

  it('the connection to the agent drops → 502 Lambda.SdkClientException with the network reason', async () => {
    world.agent.behave(() => ({ hangUp: true, payload: null }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toMatch(
      /^The manager agent failed: Lambda.SdkClientException: .*(socket hang up|ECONNRESET)/i,
    );
    await expectExportedAsFailed(res.body.error.conversation_id, 'Lambda.SdkClientException');
  });

  it('the connection drops while the answer is read → 502 Lambda.SdkClientException, not the SDK internals hint', async () => {
    world.agent.behave(() => ({ hangUpMidAnswer: true, payload: { response: 'cut off before its end' } }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toMatch(
      /^The manager agent failed: Lambda\.SdkClientException: Unable to execute HTTP request: the connection failed while the answer was read \(.*ECONNRESET/,
    );
    expect(res.body.error.message).not.toMatch(/hidden field|\$response|Deserialization/);
    await expectExportedAsFailed(res.body.error.conversation_id, 'Lambda.SdkClientException');
  });

  it('a plain-text answer is still an answer', async () => {
    world.agent.behave(() => ({ payload: 'The pipeline looks healthy.' }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.response).toEqual({ content: 'The pipeline looks healthy.' });
  });

  it.each([
    ['a number', 42, '42'],
    ['false', false, 'false'],
    ['an array', [{ deal: 'Acme' }, 2], '[{"deal":"Acme"},2]'],
  ])(
    '%s answered is carried as its JSON text: the caller, the receiver and the export get it',
    async (_label, payload, text) => {
      world.agent.behave(() => ({ payload }));
      const res = await world.post(SEED_REQUEST);
      expect(res.status).toBe(200);
      expect(res.body.response).toEqual({ content: text });
      expect(world.receiver.received[0]!.body.response).toEqual({ content: text });
      const row = JSON.parse(await world.getText(`${folderOf(res.body.conversation_id)}analysis.json`));
      expect(row.response).toBe(text);
    },
  );
});
