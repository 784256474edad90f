import { randomBytes } from 'node:crypto';
import { type SFNClient, StartSyncExecutionCommand } from '@aws-sdk/client-sfn';
import type { RedeliveryContext } from '../domain/conversation.ts';
import {
  DEFAULT_RETRY_SCHEDULE_MS,
  type FailedDeliveryEnvelope,
  redeliveryContext,
  redeliveryExecutionName,
  settleRedelivery,
} from '../domain/failed-delivery.ts';
import type { Redeliver, RedeliveryRun } from './redelivery.ts';

function randomSuffix(): string {
  return randomBytes(3).toString('hex');
}

/** The Redeliver port on AWS: each redelivery a synchronous run of the redelivery state machine. */
export function stepFunctionsRedeliver(
  client: SFNClient,
  stateMachineArn: string,
  options: { schedule?: readonly number[]; now?: () => Date; suffix?: () => string } = {},
): Redeliver {
  const { suffix, ...rest } = options;
  return (envelope, via) =>
    runRedelivery(client, stateMachineArn, envelope, via, { ...rest, ...(suffix ? { suffix: suffix() } : {}) });
}

/**
 * One redelivery of one envelope on AWS: a synchronous run of statemachine/redelivery.asl.json (Deliver → Export),
 * named after the conversation, the same input the local engine gets (local/engine/redelivery.ts). On SUCCEEDED its output
 * is the updated record (or, when S3 refused it, `{conversation, export_error}`), folded into the envelope with
 * applyRedelivery. A FAILED or TIMED_OUT run changes nothing here: the caller decides (the schedule counts it as a
 * failed run, redeliverHeld in redelivery.ts). SDK errors (throttling the client's retries did not outlast,
 * credentials, network) are thrown to the caller.
 */
async function runRedelivery(
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
      input: JSON.stringify({
        conversation: envelope.conversation,
        redelivery: redeliveryContext(envelope, via, schedule),
      }),
    }),
  );
  const status = result.status ?? 'UNKNOWN';
  if (status !== 'SUCCEEDED') {
    return {
      ok: false,
      execution_name: name,
      status,
      error: [status, result.error, result.cause].filter(Boolean).join(': '),
    };
  }
  let output: unknown;
  try {
    output = JSON.parse(result.output ?? '');
  } catch {
    output = undefined;
  }
  const settled = settleRedelivery(envelope, output, via, (options.now ?? (() => new Date()))(), schedule);
  // A run whose Deliver Lambda would not run comes with its envelope as a failed run of the schedule (settleRedelivery).
  if (!settled.ok)
    return {
      ok: false,
      execution_name: name,
      status,
      error: settled.error,
      ...(settled.updated ? { updated: settled.updated } : {}),
      ...(settled.refused ? { refused: true as const } : {}),
    };
  return { ok: true, execution_name: name, record: settled.record, updated: settled.updated };
}
