import { randomBytes } from 'node:crypto';
import { StartSyncExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import type { ConversationRecord, RedeliveryContext } from '../domain/conversation.ts';
import {
  applyRedelivery,
  DEFAULT_RETRY_SCHEDULE_MS,
  redeliveryContext,
  redeliveryExecutionName,
  type FailedDeliveryEnvelope,
} from '../domain/failed-delivery.ts';

export type RedeliveryRun =
  | { ok: true; execution_name: string; record: ConversationRecord; updated: FailedDeliveryEnvelope }
  | { ok: false; execution_name: string; status: string; error: string };

export function randomSuffix(): string {
  return randomBytes(3).toString('hex');
}

function isRecord(value: unknown): value is ConversationRecord {
  const v = value as ConversationRecord | null;
  return !!v && typeof v === 'object' && typeof v.conversation_id === 'string' && !!v.webhook_context && Array.isArray(v.execution?.delivery_attempts);
}

/**
 * One redelivery of one envelope on AWS: a synchronous run of statemachine/redelivery.asl.json (Deliver → Export),
 * named after the conversation, the same input the local engine gets (local/redelivery.ts). On SUCCEEDED its output
 * is the updated record, folded into the envelope with applyRedelivery. A FAILED or TIMED_OUT run changes nothing.
 * SDK errors (throttling, credentials, network) are thrown to the caller.
 */
export async function runRedelivery(
  client: SFNClient,
  stateMachineArn: string,
  envelope: FailedDeliveryEnvelope,
  via: RedeliveryContext['via'],
  options: { schedule?: readonly number[]; now?: () => Date; suffix?: string } = {},
): Promise<RedeliveryRun> {
  const schedule = options.schedule ?? DEFAULT_RETRY_SCHEDULE_MS;
  const name = redeliveryExecutionName(envelope, options.suffix ?? randomSuffix());
  const result = await client.send(
    new StartSyncExecutionCommand({
      stateMachineArn,
      name,
      input: JSON.stringify({ conversation: envelope.conversation, redelivery: redeliveryContext(envelope, via, schedule) }),
    }),
  );
  const status = result.status ?? 'UNKNOWN';
  if (status !== 'SUCCEEDED') {
    return { ok: false, execution_name: name, status, error: [status, result.error, result.cause].filter(Boolean).join(': ') };
  }
  let record: unknown;
  try {
    record = JSON.parse(result.output ?? '');
  } catch {
    record = undefined;
  }
  if (!isRecord(record)) return { ok: false, execution_name: name, status, error: 'SUCCEEDED without a conversation record as output' };
  const updated = applyRedelivery(envelope, record, via, (options.now ?? (() => new Date()))(), schedule);
  return { ok: true, execution_name: name, record, updated };
}
