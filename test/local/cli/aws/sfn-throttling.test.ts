import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { exportKey, structuredJson } from '../../../../functions/domain/export-formats.ts';
import {
  completeConversation,
  withAgentAnswer,
  withClassification,
  withDeliveryAttempt,
} from '../../../../functions/domain/lifecycle.ts';
import { awsDeliveriesResend } from '../../../../local/cli/aws/deliveries.ts';
import { type AwsClients, createAwsClients } from '../../../../local/cli/aws/stack.ts';
import { describedStack, STATE_MACHINE_ARN, succeeded } from '../../../support/aws-fixtures.ts';
import { startedRecord } from '../../../support/fixtures.ts';

/**
 * The command line's Step Functions client (`deliveries redrive | resend --aws`) tries a throttled
 * StartSyncExecution again (nothing was started), and never any other failure (its execution may have started).
 * The command's own SFNClient, its HTTP answered in process; the stack and the export are mocked.
 */
const cfn = mockClient(CloudFormationClient);
const s3 = mockClient(S3Client);
const ID = 'webhook_20250813_103045_testing_phase3valid_abc123';
const BUCKET = 'prod-exports';
const TARGET = 'https://crm.example.com/hooks/deals';
const attempt = (n: number, at: string) => ({
  attempt: n,
  at,
  duration_ms: 30,
  outcome: 'delivered' as const,
  status_code: 200,
});
const delivered = completeConversation(
  withDeliveryAttempt(
    withClassification(withAgentAnswer(startedRecord(), { response: 'deals' }, 40, new Date('2025-08-13T10:30:46Z'))),
    attempt(1, '2025-08-13T10:30:46.500Z'),
    TARGET,
    'delivered',
  ),
  false,
  'req-1',
  new Date('2025-08-13T10:30:47Z'),
);
const resent = withDeliveryAttempt(delivered, attempt(2, '2026-11-29T12:00:00.000Z'), TARGET, 'delivered');

type Answer = { status: number; type?: string; body: unknown };
const throttled: Answer = { status: 400, type: 'ThrottlingException', body: { message: 'Rate exceeded' } };
const ok: Answer = { status: 200, body: succeeded(resent) };
let targets: string[] = [];

/** The stack's clients, Step Functions' HTTP answered here in turn (what it was asked recorded in `targets`). */
function clientsAnswering(...answers: Answer[]): AwsClients {
  const clients = createAwsClients('us-east-1');
  (clients.sfn.config as { requestHandler: unknown }).requestHandler = {
    handle: async (request: { headers: Record<string, string> }) => {
      targets.push(request.headers['x-amz-target'] ?? '');
      const answer = answers.shift() ?? { status: 500, type: 'InternalFailure', body: {} };
      return {
        response: {
          statusCode: answer.status,
          headers: {
            'content-type': 'application/x-amz-json-1.0',
            ...(answer.type ? { 'x-amzn-errortype': answer.type } : {}),
          },
          body: new TextEncoder().encode(
            JSON.stringify(answer.type ? { __type: answer.type, ...(answer.body as object) } : answer.body),
          ),
        },
      };
    },
  };
  return clients;
}

beforeEach(() => {
  cfn.reset();
  s3.reset();
  targets = [];
  // The retry's full jitter drawn as 0: nothing is waited for.
  vi.spyOn(Math, 'random').mockReturnValue(0);
  cfn
    .on(DescribeStacksCommand)
    .resolves(describedStack({ ExportBucketName: BUCKET, RedeliveryStateMachineArn: STATE_MACHINE_ARN }));
  s3.on(GetObjectCommand, { Bucket: BUCKET, Key: exportKey(ID, 'conversation.json') }).resolves({
    Body: { transformToString: async () => JSON.stringify(structuredJson(delivered, '2025-08-13T10:30:47Z')) } as never,
  });
});

describe('deliveries resend --aws when Step Functions throttles', () => {
  it('a throttled StartSyncExecution is tried again, and the resend delivers once', async () => {
    const result = await awsDeliveriesResend(clientsAnswering(throttled, ok), 'WebhookConversationGateway', ID);
    expect(result.status).toBe('delivered');
    expect(targets).toEqual(['AWSStepFunctions.StartSyncExecution', 'AWSStepFunctions.StartSyncExecution']);
  });

  it('a server error is not tried again (its execution may have started)', async () => {
    const failed: Answer = { status: 500, type: 'InternalFailure', body: { message: 'internal' } };
    await expect(
      awsDeliveriesResend(clientsAnswering(failed, ok), 'WebhookConversationGateway', ID),
    ).rejects.toMatchObject({ name: 'InternalFailure' });
    expect(targets).toHaveLength(1);
  });
});
