import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { StartSyncExecutionCommand } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoggedAttempt } from '../../../../functions/domain/attempt-log.ts';

/**
 * Every AWS SDK client the stages build gives up on an endpoint that accepts the connection and never answers
 * (docs/deploy.md, "Timeouts"): the call fails with a TimeoutError after 3 tries of 2 s each, instead of holding its
 * stage until the Lambda timeout. Real clients and real sockets, pointed at such an endpoint through the SDK's
 * AWS_ENDPOINT_URL_<SERVICE> variables; the limits are waited for once, all calls at the same time.
 */
const TRIES = 3;
/** 3 × 2 s, the SDK's waits between tries (≤ 0.15 s) and room for a busy machine; the limits' own bound is ≈ 6.2 s. */
const BOUND_MS = 15_000;

let server: Server;
let connections = 0;
const sockets = new Set<Socket>();
let endpoint = '';

beforeAll(async () => {
  server = createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    // Reads the request and never answers.
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  for (const service of ['DYNAMODB', 'SQS', 'S3', 'SECRETS_MANAGER', 'SFN']) {
    process.env[`AWS_ENDPOINT_URL_${service}`] = endpoint;
  }
  process.env.S3_FORCE_PATH_STYLE = 'true';
  process.env.IDEMPOTENCY_TABLE_NAME = 'idempotency';
  process.env.STATUS_TABLE_NAME = 'status';
  process.env.DELIVERY_SIGNING_SECRETS_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:delivery';
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
});

/** How the call ended and after how long; a call still waiting at BOUND_MS ends as `still waiting`. */
async function timed(call: () => Promise<unknown>): Promise<{ error: string; ms: number }> {
  const start = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('still waiting'), BOUND_MS);
  });
  const outcome = call().then(
    () => 'answered',
    (error: Error) => error.name,
  );
  const error = await Promise.race([outcome, bound]);
  clearTimeout(timer);
  return { error, ms: performance.now() - start };
}

describe('the stages’ AWS SDK clients against an endpoint that never answers', () => {
  it('fail each call with a TimeoutError after 3 tries, well before the caller’s deadline', async () => {
    const { DynamoAttemptLog } = await import('../../../../functions/shared/attempt-log.ts');
    const { idempotencyStore } = await import('../../../../functions/shared/idempotency-store.ts');
    const { conversationStatusStore } = await import('../../../../functions/shared/conversation-status-store.ts');
    const { DynamoThreadStore } = await import('../../../../functions/shared/thread-store.ts');
    const { deliverySecrets } = await import('../../../../functions/shared/secrets.ts');
    const { s3 } = await import('../../../../functions/shared/clients/s3.ts');
    const { sqs } = await import('../../../../functions/shared/clients/sqs.ts');
    const { SqsFailedDeliveryQueue } = await import('../../../../functions/shared/failed-delivery-queue.ts');
    const now = new Date();
    const entry = { conversation_id: 'conv', at: now.toISOString(), attempt: 1 } as LoggedAttempt;

    const calls = {
      // Deliver's write after a POST (the endpoint store shares this client: functions/shared/clients/dynamodb.ts).
      attemptLog: () => new DynamoAttemptLog('deliveries', 30).append(entry),
      idempotency: () => idempotencyStore()!.claim('key', { conversationId: 'conv', requestId: 'req' }, now),
      status: () => conversationStatusStore()!.get('conv'),
      thread: () => new DynamoThreadStore('threads', 30).claimTurn('crm', 'thread-1', 'req', now),
      secrets: () => deliverySecrets('general'),
      s3: () => s3.send(new PutObjectCommand({ Bucket: 'exports', Key: 'conv.json', Body: '{}' })),
      // The scheduler's receive waits 1 s for messages: allowed on top of the request limit (3 s), but the 2 s silence
      // limit cuts each try of this silent endpoint first (3 tries of 2 s).
      sqsReceive: () => new SqsFailedDeliveryQueue(sqs, `${endpoint}/123456789012/failed`, 'dlq').receive(),
    };
    const results = Object.fromEntries(
      await Promise.all(Object.entries(calls).map(async ([name, call]) => [name, await timed(call)] as const)),
    );

    for (const [name, { error, ms }] of Object.entries(results)) {
      expect({ name, error }).toEqual({ name, error: 'TimeoutError' });
      expect(ms, name).toBeLessThan(BOUND_MS);
      // Each try is cut at its limit, not earlier: 3 tries of at least 2 s.
      expect(ms, name).toBeGreaterThanOrEqual(TRIES * 2_000 - 50);
    }
    // One connection per try (a cut try's socket is destroyed): the SDK tried each call 3 times, no more.
    expect(connections).toBe(Object.keys(calls).length * TRIES);
  }, 30_000);

  it('give the scheduler’s StartSyncExecution longer than the redelivery workflow may run', async () => {
    const { sfn, START_SYNC_EXECUTION_TIMEOUT_MS } = await import('../../../../functions/shared/clients/sfn.ts');
    const definition = JSON.parse(readFileSync('statemachine/redelivery.asl.json', 'utf8')) as {
      TimeoutSeconds: number;
    };
    expect(START_SYNC_EXECUTION_TIMEOUT_MS).toBeGreaterThan(definition.TimeoutSeconds * 1000);

    // The handler resolves its settings on its first request: one, cut short here, against the silent endpoint.
    const cut = sfn.send(new StartSyncExecutionCommand({ stateMachineArn: 'arn:aws:states:::x', name: 'x' }), {
      abortSignal: AbortSignal.timeout(200),
    });
    await expect(cut).rejects.toThrow();
    const handler = sfn.config.requestHandler as unknown as { httpHandlerConfigs(): Record<string, unknown> };
    expect(handler.httpHandlerConfigs()).toMatchObject({
      connectionTimeout: 1_000,
      requestTimeout: START_SYNC_EXECUTION_TIMEOUT_MS,
      throwOnRequestTimeout: true,
      // Silent until the execution ends: the silence limit is as long.
      socketTimeout: START_SYNC_EXECUTION_TIMEOUT_MS,
    });
  });
});

describe('budgetSignal: the conversation’s deadline for one call', () => {
  it('is undefined without a deadline (no caller waits: only the client’s own limits apply)', async () => {
    const { budgetSignal } = await import('../../../../functions/shared/clients/request-limits.ts');
    expect(budgetSignal(null, new Date())).toBeUndefined();
    expect(budgetSignal(undefined, new Date(), 2_000)).toBeUndefined();
  });

  it('is already aborted when the deadline, less the reserve, has passed', async () => {
    const { budgetSignal } = await import('../../../../functions/shared/clients/request-limits.ts');
    const now = new Date();
    expect(budgetSignal(new Date(now.getTime() - 1).toISOString(), now)?.aborted).toBe(true);
    expect(budgetSignal(new Date(now.getTime() + 1_500).toISOString(), now, 2_000)?.aborted).toBe(true);
  });

  it('ends a real call against the silent endpoint at the deadline less the reserve, with an AbortError', async () => {
    const { budgetSignal } = await import('../../../../functions/shared/clients/request-limits.ts');
    const { DynamoAttemptLog } = await import('../../../../functions/shared/attempt-log.ts');
    const now = new Date();
    // Cut 300 ms from now. Without the reserve it would be at 10.3 s, after the client's own limits (≈ 6.2 s): the
    // call would fail with their TimeoutError instead. The bound leaves a loaded machine seconds, not the 700 ms it had.
    const signal = budgetSignal(new Date(now.getTime() + 10_300).toISOString(), now, 10_000);
    const { error, ms } = await timed(() => new DynamoAttemptLog('deliveries', 30).list('conv', signal));
    expect(error).toBe('AbortError');
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(5_000);
  });
});
