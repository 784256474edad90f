import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld({ MANAGER_AGENT_TIMEOUT_MS: '300' });
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  world.agent.reset();
  world.receiver.reset();
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
}

describe('InvokeManagerAgent failures → 502 AGENT_ERROR, conversation exported as failed, nothing delivered', () => {
  it('FunctionError from the agent', async () => {
    world.agent.behave(() => ({
      functionError: 'Unhandled',
      payload: { errorType: 'KeyError', errorMessage: "'opportunities'" },
    }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.success).toBe(false);
    expect(res.body.error.code).toBe('AGENT_ERROR');
    expect(res.body.error.message).toMatch(/KeyError: 'opportunities'/);
    const id = res.body.error.conversation_id as string;
    expect(id).toMatch(/^webhook_\d{8}_\d{6}_testing_phase3valid_/);
    await expectExportedAsFailed(id, 'AgentInvocationError');
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

  it('agent slower than MANAGER_AGENT_TIMEOUT_MS', async () => {
    world.agent.behave(() => ({ delayMs: 1500, payload: { response: 'too late' } }));
    const started = Date.now();
    const res = await world.post(SEED_REQUEST);
    expect(Date.now() - started).toBeLessThan(1400);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toMatch(/did not answer within 300 ms/);
    await expectExportedAsFailed(res.body.error.conversation_id, 'AgentTimeoutError');
  });

  it('agent function not found (the Lambda service answers 404)', async () => {
    world.agent.behave(() => ({
      status: 404,
      headers: { 'x-amzn-errortype': 'ResourceNotFoundException' },
      payload: { Type: 'User', message: 'Function not found: test-manager-agent' },
    }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toMatch(/ResourceNotFoundException: Function not found/);
    await expectExportedAsFailed(res.body.error.conversation_id, 'AgentInvocationError');
  });

  it('an empty answer is an agent error, not an empty delivery', async () => {
    world.agent.behave(() => ({ payload: null }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toMatch(/empty answer/);
  });

  it('an answer too large for the workflow state is refused, and the conversation exported as failed', async () => {
    world.agent.behave(() => ({ payload: { response: 'x'.repeat(120_000) } }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toMatch(/answered \d+ bytes, more than the 98304 a conversation can carry/);
    await expectExportedAsFailed(res.body.error.conversation_id, 'AgentInvocationError');
  });

  it('an answer under the cap that, beside the largest query and metadata, would overflow the 256 KB state is refused too', async () => {
    world.agent.behave(() => ({ payload: { response: 'y'.repeat(90_000) } }));
    const largest = { ...SEED_REQUEST, query: '€'.repeat(20_000), metadata: { notes: 'm'.repeat(16_000) } };
    const res = await world.post(largest);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toMatch(
      /which makes this conversation \d+ bytes, more than the 237568 a workflow state can carry/,
    );
    await expectExportedAsFailed(res.body.error.conversation_id, 'AgentInvocationError');
    // The same answer to the example's short question fits.
    expect((await world.post(SEED_REQUEST)).status).toBe(200);
  });

  it('the connection to the agent drops → 502 with the network reason, exported as failed', async () => {
    world.agent.behave(() => ({ hangUp: true, payload: null }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    // The SDK retries once; with this file's 300 ms agent timeout the retry may be cut short by the timeout.
    expect(res.body.error.message).toMatch(/socket hang up|ECONNRESET|did not answer within 300 ms/i);
    await expectExportedAsFailed(res.body.error.conversation_id, /^Agent(Invocation|Timeout)Error$/);
  });

  it('a plain-text answer is still an answer', async () => {
    world.agent.behave(() => ({ payload: 'The pipeline looks healthy.' }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.response).toEqual({ content: 'The pipeline looks healthy.' });
  });
});
