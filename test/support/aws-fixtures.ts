import type { Message } from '@aws-sdk/client-sqs';
import type { ConversationRecord, DeliveryAttempt } from '../../functions/domain/conversation.ts';
import { attemptError } from '../../functions/domain/delivery.ts';
import {
  envelopeFromQueuedMessage,
  type FailedDeliveryEnvelope,
  type QueuedFailedDelivery,
} from '../../functions/domain/failed-delivery.ts';
import { withAgentAnswer, withClassification, withDeliveryAttempt } from '../../functions/domain/lifecycle.ts';
import { startedRecord } from './fixtures.ts';

/** Fixtures of the AWS failed-delivery tests: workflow messages, envelopes, SQS messages, execution outputs. */
export const QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/failed-deliveries';
export const DLQ_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/failed-deliveries-dlq';
export const STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:Redelivery';
const TARGET = 'https://crm.example.com/hooks/deals';
export const T0 = new Date('2025-08-13T10:31:00Z');

function attempt(outcome: DeliveryAttempt['outcome'], extra: Partial<DeliveryAttempt> = {}): DeliveryAttempt {
  return {
    attempt: 1,
    at: T0.toISOString(),
    duration_ms: 12,
    outcome,
    ...(outcome === 'delivered'
      ? { status_code: 200 }
      : { status_code: outcome === 'permanent' ? 410 : 503, error: `HTTP ${outcome === 'permanent' ? 410 : 503}` }),
    ...extra,
  };
}

/** What the conversation workflow's QueueFailedDelivery state sends. `suffix` makes a different conversation. */
export function workflowMessage(
  outcome: 'retryable' | 'permanent' = 'retryable',
  suffix = 'abc123',
  extra: Partial<DeliveryAttempt> = {},
): QueuedFailedDelivery & { conversation: ConversationRecord } {
  const record = withClassification(
    withAgentAnswer(startedRecord(undefined, { ids: { suffix } }), { response: 'deals' }, 5, T0),
  );
  const error = attemptError(attempt(outcome, extra), TARGET);
  return {
    kind: 'failed_delivery',
    conversation: record,
    delivery_error: { Error: error.name, Cause: error.message },
    execution_name: 'exec-1',
  };
}

export function pendingEnvelope(
  suffix = 'abc123',
  at = T0,
  overrides: Partial<FailedDeliveryEnvelope> = {},
): FailedDeliveryEnvelope {
  return { ...envelopeFromQueuedMessage(workflowMessage('retryable', suffix), at), ...overrides };
}

export function deadEnvelope(suffix = 'abc123', at = T0): FailedDeliveryEnvelope {
  return envelopeFromQueuedMessage(workflowMessage('permanent', suffix), at);
}

/** The record a redelivery execution outputs after one more attempt. */
export function afterAttempt(
  envelope: FailedDeliveryEnvelope,
  outcome: DeliveryAttempt['outcome'],
  extra: Partial<DeliveryAttempt> = {},
): ConversationRecord {
  const status = outcome === 'delivered' ? 'delivered' : outcome === 'permanent' ? 'failed' : 'retrying';
  return withDeliveryAttempt(
    envelope.conversation,
    attempt(outcome, { attempt: envelope.attempts.length + 1, at: new Date(T0.getTime() + 1).toISOString(), ...extra }),
    TARGET,
    status,
  );
}

let counter = 0;
export function sqsMessage(
  body: unknown,
  options: { receiveCount?: number; sentAt?: Date; id?: string } = {},
): Message {
  counter += 1;
  const id = options.id ?? `msg-${counter}`;
  return {
    MessageId: id,
    ReceiptHandle: `rh-${id}-${counter}`,
    Body: typeof body === 'string' ? body : JSON.stringify(body),
    Attributes: {
      ApproximateReceiveCount: String(options.receiveCount ?? 1),
      SentTimestamp: String((options.sentAt ?? T0).getTime()),
    },
  };
}

export function succeeded(record: ConversationRecord) {
  return { status: 'SUCCEEDED' as const, output: JSON.stringify(record), executionArn: `${STATE_MACHINE_ARN}:x` };
}

/** DescribeStacks' answer for a deployed stack with these outputs (what the `--aws` commands read). */
export function describedStack(outputs: Record<string, string>, StackName = 'WebhookConversationGateway') {
  return {
    Stacks: [
      {
        StackName,
        CreationTime: new Date(),
        StackStatus: 'CREATE_COMPLETE' as const,
        Outputs: Object.entries(outputs).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })),
      },
    ],
  };
}
