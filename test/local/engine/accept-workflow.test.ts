import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpResultForExecution } from '../../../functions/domain/gateway-contract.ts';
import { idempotencyPk } from '../../../functions/domain/idempotency.ts';
import { loadStageHandlers, localWorkflow } from '../../../local/engine/workflows.ts';
import { folderOf, NO_WAIT, SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

describe('the accept workflow when the run cannot be started', () => {
  it('exports the conversation as failed (NOT_STARTED, 503), sets its status to failed and frees its key', async () => {
    const send = (params: unknown) => world.gateway.failedDeliveries.sendMessage(params as never);
    let starts = 0;
    const accept = localWorkflow('accept', await loadStageHandlers(), send, NO_WAIT, undefined, async () => {
      starts += 1;
      throw Object.assign(new Error('Rate exceeded'), { name: 'StepFunctions.ThrottlingException' });
    });
    const key = `not-started-${randomUUID()}`;
    const execution = await accept.run(
      {
        body: JSON.stringify(SEED_REQUEST),
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        request_id: randomUUID(),
        source_ip: '127.0.0.1',
        received_at: new Date().toISOString(),
      },
      'not-started',
    );
    expect(starts).toBe(3); // the first try and the state's two retries
    expect(execution).toMatchObject({ status: 'FAILED', error: 'ConversationNotStarted' });
    const http = httpResultForExecution({ status: execution.status, error: execution.error, cause: execution.cause });
    expect(http.statusCode).toBe(503);
    const body = http.body as { error: { code: string; message: string; conversation_id: string } };
    expect(body.error.code).toBe('NOT_STARTED');
    expect(body.error.message).toMatch(/StepFunctions\.ThrottlingException: Rate exceeded.*send it again/);
    const id = body.error.conversation_id;
    const record = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(record.conversation.execution).toMatchObject({
      status: 'failed',
      errors: [expect.objectContaining({ stage: 'StartConversation', error: 'StepFunctions.ThrottlingException' })],
    });
    const status = JSON.parse(await readFile(path.join(world.dataDir, 'status', `${id}.json`), 'utf8'));
    expect(status).toMatchObject({ status: 'failed', source_system: 'testing_system' });
    const keyFile = path.join(world.dataDir, 'idempotency', `${idempotencyPk('testing_system', key)}.json`);
    await expect(readFile(keyFile)).rejects.toThrow(/ENOENT/);
    expect(world.agent.invocations).toHaveLength(0);
  });
});

/**
 * Neither the start nor the export worked (statemachine/accept.asl.json, NotStartedUnrecorded): the caller is told
 * "send it again", which is true only once the key's in-progress claim is gone — else a retry with the same key gets
 * 409 (or the 202 of a conversation that never ran) for 7 minutes. The claim is freed (FreeUnstartedKey); when that
 * fails too, the answer says when the same key will be taken.
 */
describe('the accept workflow when neither the start nor the export works', () => {
  const NOW_RETRY = { ...NO_WAIT, StartConversation: 0, ExportNotStarted: 0, FreeUnstartedKey: 0 };
  async function notStarted(freeing: 'works' | 'fails') {
    const handlers = await loadStageHandlers();
    const failingS3 = Object.assign(new Error('writing the export failed: SlowDown'), { name: 'ExportError' });
    const send = (params: unknown) => world.gateway.failedDeliveries.sendMessage(params as never);
    const workflow = localWorkflow(
      'accept',
      {
        ...handlers,
        validate: async (input, task) => {
          if (freeing === 'fails' && (input as object) && 'unstarted' in (input as object))
            throw Object.assign(new Error('Throughput exceeds the current capacity'), {
              name: 'ProvisionedThroughputExceededException',
            });
          return handlers.validate(input, task);
        },
        export: async () => {
          throw failingS3;
        },
      },
      send,
      NOW_RETRY,
      undefined,
      async () => {
        throw Object.assign(new Error('Rate exceeded'), { name: 'StepFunctions.ThrottlingException' });
      },
    );
    const key = `unrecorded-${randomUUID()}`;
    const execution = await workflow.run(
      {
        body: JSON.stringify(SEED_REQUEST),
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        request_id: randomUUID(),
        source_ip: '127.0.0.1',
        received_at: new Date().toISOString(),
      },
      `unrecorded-${freeing}`,
    );
    const http = httpResultForExecution({ status: execution.status, error: execution.error, cause: execution.cause });
    const keyFile = path.join(world.dataDir, 'idempotency', `${idempotencyPk('testing_system', key)}.json`);
    return { http, message: (http.body as { error: { message: string } }).error.message, keyFile };
  }

  it('frees the key, so that "send it again" with the same key is taken at once', async () => {
    const { http, message, keyFile } = await notStarted('works');
    expect(http.statusCode).toBe(503);
    expect(message).toMatch(/could not be started, nor recorded; send it again$/);
    await expect(readFile(keyFile)).rejects.toThrow(/ENOENT/);
  });

  it('when the key cannot be freed either, says when the same key will be taken', async () => {
    const { http, message, keyFile } = await notStarted('fails');
    expect(http.statusCode).toBe(503);
    expect(message).toMatch(/send it again with a new Idempotency-Key, or with the same one after 7 minutes/);
    expect(JSON.parse(await readFile(keyFile, 'utf8'))).toMatchObject({ status: 'in_progress' });
  });
});

/**
 * Lambda throttling Validate on every try (Lambda.TooManyRequestsException: the account's concurrency used up, as a
 * new account's quota of 10 soon is): on AWS the execution failed with that error and the caller got 500
 * INTERNAL_ERROR, which says "a bug" and not "send it again". Both workflows now answer 503 NOT_STARTED with
 * Retry-After (statemachine/*.asl.json, ValidateThrottled); nothing ran, so nothing is exported or held.
 */
describe('both workflows when Lambda throttles Validate', () => {
  for (const name of ['conversation', 'accept'] as const) {
    it(`the ${name} workflow answers 503 NOT_STARTED with Retry-After after Validate's retries`, async () => {
      const handlers = await loadStageHandlers();
      let tries = 0;
      const send = (params: unknown) => world.gateway.failedDeliveries.sendMessage(params as never);
      const validate = async () => {
        tries += 1;
        throw Object.assign(new Error('Rate Exceeded.'), { name: 'Lambda.TooManyRequestsException' });
      };
      const workflow = localWorkflow(name, { ...handlers, validate }, send, NO_WAIT);
      const execution = await workflow.run(
        {
          body: JSON.stringify(SEED_REQUEST),
          headers: { 'content-type': 'application/json', 'idempotency-key': `throttled-${randomUUID()}` },
          request_id: randomUUID(),
          source_ip: '127.0.0.1',
          received_at: new Date().toISOString(),
        },
        `throttled-${name}`,
      );
      expect(tries).toBe(3); // the first try and the state's two retries
      expect(execution).toMatchObject({ status: 'FAILED', error: 'ConversationNotStarted' });
      const http = httpResultForExecution({ status: execution.status, error: execution.error, cause: execution.cause });
      expect(http).toMatchObject({ statusCode: 503, headers: { 'retry-after': '2' } });
      const { error } = http.body as { error: { code: string; message: string } };
      expect(error.code).toBe('NOT_STARTED');
      expect(error.message).toMatch(/concurrency is used up\); send it again after Retry-After$/);
      expect(world.agent.invocations).toHaveLength(0);
    });
  }
});

/**
 * The accept workflow run for SEED_REQUEST with `key`, its StartExecution caught: the run's input (what Step
 * Functions would start the conversation workflow with) and its conversation id, with the stage handlers.
 */
async function acceptedRun(key: string, name: string) {
  const handlers = await loadStageHandlers();
  const send = (params: unknown) => world.gateway.failedDeliveries.sendMessage(params as never);
  let run: unknown;
  const accept = localWorkflow('accept', handlers, send, NO_WAIT, undefined, async (params) => {
    run = (params as { Input: unknown }).Input;
    return {};
  });
  const accepted = await accept.run(
    {
      body: JSON.stringify(SEED_REQUEST),
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      request_id: randomUUID(),
      source_ip: '127.0.0.1',
      received_at: new Date().toISOString(),
    },
    name,
  );
  expect(accepted.status).toBe('SUCCEEDED');
  const id = (run as { accepted: { conversation: { conversation_id: string } } }).accepted.conversation.conversation_id;
  return { handlers, send, run, id };
}

/**
 * An accepted conversation (202 given, its status `running`) whose run Lambda throttled at Validate on every try: the
 * run used to end in ValidateThrottled, nothing exported, its key held, its status `running` until it read failed 7
 * minutes after it was accepted. It is now exported as failed, not started (statemachine/conversation.asl.json,
 * ExportNotStarted): its status failed with NOT_STARTED at once, its key freed.
 */
describe('the run of an accepted conversation when Lambda throttles its Validate', () => {
  it('is exported as not started: status failed (NOT_STARTED), key freed, no agent call', async () => {
    const key = `throttled-run-${randomUUID()}`;
    const { handlers, send, run, id } = await acceptedRun(key, 'throttled-run-accept');

    const validate = async () => {
      throw Object.assign(new Error('Rate Exceeded.'), { name: 'Lambda.TooManyRequestsException' });
    };
    const conversation = localWorkflow('conversation', { ...handlers, validate }, send, NO_WAIT);
    const execution = await conversation.run(run, id);

    expect(execution).toMatchObject({ status: 'FAILED', error: 'ConversationNotStarted' });
    const record = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(record.conversation.execution).toMatchObject({
      status: 'failed',
      errors: [expect.objectContaining({ error: 'Lambda.TooManyRequestsException' })],
    });
    const status = JSON.parse(await readFile(path.join(world.dataDir, 'status', `${id}.json`), 'utf8'));
    expect(status).toMatchObject({ status: 'failed' });
    expect(JSON.parse(status.body)).toMatchObject({ error: { code: 'NOT_STARTED', conversation_id: id } });
    const keyFile = path.join(world.dataDir, 'idempotency', `${idempotencyPk('testing_system', key)}.json`);
    await expect(readFile(keyFile)).rejects.toThrow(/ENOENT/);
    expect(world.agent.invocations).toHaveLength(0);
  });
});

/**
 * An asynchronous Express execution runs at least once (docs/deploy.md, "Started at least once"): one accepted
 * conversation may run twice, the same input under the same name. The contract promises deliveries at least once
 * (docs/contract.md#deliveries): the second run invokes the agent and delivers again, under the same webhook-id, so
 * the receiver can tell it is the same delivery.
 */
describe('two runs of one accepted conversation (Express runs an asynchronous start at least once)', () => {
  it('both deliver, under one webhook-id and delivery_id: the receiver deduplicates on it', async () => {
    world.agent.reset();
    world.receiver.reset();
    const { handlers, send, run, id } = await acceptedRun(`twice-${randomUUID()}`, 'run-twice-accept');

    const conversation = localWorkflow('conversation', handlers, send, NO_WAIT);
    const first = await conversation.run(run, id);
    const second = await conversation.run(run, id);

    expect([first.status, second.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect(world.agent.invocations).toHaveLength(2);
    const deliveries = world.receiver.received;
    expect(deliveries).toHaveLength(2);
    const ids = deliveries.map((d) => d.headers['webhook-id']);
    const bodyIds = deliveries.map((d) => (d.body as { delivery_id: string }).delivery_id);
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set([...ids, ...bodyIds])).toEqual(new Set([ids[0]]));
    // One conversation: one record, at the same keys, whichever run wrote last.
    const record = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(record.conversation.webhook_context).toMatchObject({ delivery_id: ids[0], delivery_status: 'delivered' });
  });
});
