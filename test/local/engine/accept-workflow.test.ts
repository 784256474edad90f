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
