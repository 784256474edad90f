import type { Context } from 'aws-lambda';
import { parseSchedule } from '../domain/failed-delivery.ts';
import { sfn } from '../shared/clients/sfn.ts';
import { sqs } from '../shared/clients/sqs.ts';
import { SqsFailedDeliveryQueue } from '../shared/failed-delivery-queue.ts';
import { logger, stageHandler } from '../shared/powertools.ts';
import { type SweepSummary, sweep } from './sweep.ts';

/** The redelivery workflow times out at 60 s; a batch received with less than that left could be cut off. */
export const DEFAULT_RESERVE_MS = 75_000;
/** The budget when there is no Lambda context (a direct call). */
export const DEFAULT_BUDGET_MS = 120_000;

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/**
 * The automatic redelivery schedule on AWS, started every minute by an EventBridge rule: redeliver the due
 * envelopes of the failed-delivery queue through the redelivery workflow (see sweep.ts).
 */
export const handler = stageHandler(
  'RedeliveryScheduler',
  async (_event: unknown, context?: Context): Promise<SweepSummary> => {
    const queue = new SqsFailedDeliveryQueue(
      sqs,
      required('FAILED_DELIVERY_QUEUE_URL'),
      required('FAILED_DELIVERY_DLQ_URL'),
      parseSchedule(process.env.REDELIVERY_SCHEDULE),
    );
    const deadline = Date.now() + Number(process.env.REDELIVERY_SCHEDULER_BUDGET_MS || DEFAULT_BUDGET_MS);
    return sweep({
      queue,
      sfn,
      stateMachineArn: required('REDELIVERY_STATE_MACHINE_ARN'),
      remainingMs: context?.getRemainingTimeInMillis
        ? () => context.getRemainingTimeInMillis()
        : () => deadline - Date.now(),
      reserveMs: Number(process.env.REDELIVERY_SCHEDULER_RESERVE_MS || DEFAULT_RESERVE_MS),
      log: logger,
    });
  },
);
