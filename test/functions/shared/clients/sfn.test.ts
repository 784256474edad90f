import { SFNClient, StartSyncExecutionCommand } from '@aws-sdk/client-sfn';
import { describe, expect, it } from 'vitest';
import { throttlingOnlyRetry } from '../../../../functions/shared/clients/throttling-retry.ts';

/**
 * The scheduler's Step Functions client retries a StartSyncExecution only when it was throttled (nothing started);
 * any other error is thrown after one try, since its execution may have started. A real SFNClient, its HTTP answered
 * in process; no delay is waited for (the jitter is drawn as 0).
 */
type Answer = { status: number; errorType?: string; body: unknown };

function clientAnswering(...answers: Answer[]) {
  const requests: string[] = [];
  const client = new SFNClient({
    region: 'us-east-1',
    retryStrategy: throttlingOnlyRetry(3, () => 0),
    requestHandler: {
      handle: async (request: { headers: Record<string, string> }) => {
        requests.push(request.headers['x-amz-target'] ?? '');
        const answer = answers.shift() ?? { status: 500, body: {} };
        return {
          response: {
            statusCode: answer.status,
            headers: {
              'content-type': 'application/x-amz-json-1.0',
              ...(answer.errorType ? { 'x-amzn-errortype': answer.errorType } : {}),
            },
            body: new TextEncoder().encode(JSON.stringify(answer.body)),
          },
        };
      },
    },
  });
  return { client, requests };
}

const start = () =>
  new StartSyncExecutionCommand({
    stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:Redelivery',
    name: 'x',
    input: '{}',
  });
const throttled: Answer = {
  status: 400,
  errorType: 'ThrottlingException',
  body: { __type: 'ThrottlingException', message: 'Rate exceeded' },
};
const succeeded: Answer = { status: 200, body: { executionArn: 'arn:x', status: 'SUCCEEDED', output: '{}' } };

describe('the Step Functions client of the redelivery scheduler', () => {
  it('tries a throttled StartSyncExecution again, up to 3 tries', async () => {
    const { client, requests } = clientAnswering(throttled, throttled, succeeded);
    expect(await client.send(start())).toMatchObject({ status: 'SUCCEEDED' });
    expect(requests).toEqual(Array(3).fill('AWSStepFunctions.StartSyncExecution'));
  });

  it('gives up after the third throttled try and throws the throttling error', async () => {
    const { client, requests } = clientAnswering(throttled, throttled, throttled, succeeded);
    await expect(client.send(start())).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(requests).toHaveLength(3);
  });

  it.each([
    ['a server error', { status: 500, errorType: 'InternalFailure', body: { __type: 'InternalFailure' } }],
    ['a 503', { status: 503, errorType: 'ServiceUnavailable', body: { __type: 'ServiceUnavailable' } }],
  ])('never tries again after %s: the execution may have started', async (_, answer: Answer) => {
    const { client, requests } = clientAnswering(answer, succeeded);
    await expect(client.send(start())).rejects.toMatchObject({ name: answer.errorType });
    expect(requests).toHaveLength(1);
  });

  it('waits at most 0.5 s, then 1 s (full jitter)', async () => {
    const strategy = throttlingOnlyRetry(3, () => 1);
    const first = await strategy.acquireInitialRetryToken('');
    const second = await strategy.refreshRetryTokenForRetry(first, { errorType: 'THROTTLING' });
    const third = await strategy.refreshRetryTokenForRetry(second, { errorType: 'THROTTLING' });
    expect([second.getRetryDelay(), third.getRetryDelay()]).toEqual([500, 1000]);
    await expect(strategy.refreshRetryTokenForRetry(first, { errorType: 'TRANSIENT' })).rejects.toThrow();
  });
});
