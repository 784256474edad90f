import type { Context } from 'aws-lambda';
import * as v from 'valibot';
import { attemptLog } from '../shared/attempt-log.ts';
import { worstCallMs } from '../shared/clients/request-limits.ts';
import { START_SYNC_EXECUTION_WORST_MS, sfn } from '../shared/clients/sfn.ts';
import { sqs } from '../shared/clients/sqs.ts';
import { endpointStore } from '../shared/endpoint-store.ts';
import { publishEndpointStates } from '../shared/events.ts';
import { REDELIVERY_VISIBILITY_SECONDS, SqsFailedDeliveryQueue } from '../shared/failed-delivery-queue.ts';
import { publishGivenUp } from '../shared/given-up.ts';
import { logger, stageHandler } from '../shared/powertools.ts';
import { endpointGate, runSchedule, type ScheduleSummary } from '../shared/redelivery.ts';
import { redeliveryClaims } from '../shared/redelivery-claim.ts';
import { stepFunctionsRedeliver } from '../shared/redelivery-execution.ts';
import { positiveInteger, readEnv, settings } from '../shared/settings.ts';

/**
 * The time a run keeps when it receives a batch: what one batch can take at worst, so that no run is cut off by its
 * Lambda timeout with redeliveries under way. The batch's redeliveries run in parallel, each its claim
 * (redelivery-claim.ts) and one read of its attempt log first (a copy already delivered is dropped: worstCallMs each),
 * then one StartSyncExecution (START_SYNC_EXECUTION_WORST_MS: the redelivery workflow times out at 60 s, but a stalled
 * answer can hold the call twice its limit); then each envelope's queue calls, at most a send and a delete, and the
 * claim's release (worstCallMs each).
 */
export const DEFAULT_RESERVE_MS = Math.ceil((START_SYNC_EXECUTION_WORST_MS + 5 * worstCallMs()) / 1000) * 1000;
/** The budget when there is no Lambda context (a direct call). */
export const DEFAULT_BUDGET_MS = 120_000;

/** The scheduler's own variables (set by infra/constructs/redelivery-scheduler.ts). */
const SchedulerEnv = v.object({
  FAILED_DELIVERY_QUEUE_URL: v.string(),
  FAILED_DELIVERY_DLQ_URL: v.string(),
  REDELIVERY_STATE_MACHINE_ARN: v.string(),
  REDELIVERY_SCHEDULER_BUDGET_MS: v.optional(positiveInteger, String(DEFAULT_BUDGET_MS)),
  REDELIVERY_SCHEDULER_RESERVE_MS: v.optional(positiveInteger, String(DEFAULT_RESERVE_MS)),
});

/**
 * The automatic redelivery schedule on AWS, started every minute by an EventBridge rule: redeliver the due
 * envelopes of the failed-delivery queue through the redelivery workflow (runSchedule, functions/shared/redelivery.ts),
 * holding back those whose receiver is paused, disabled or failing (endpointGate). Each run also publishes every
 * receiver's state as per-type metrics, which the per-type alarms watch.
 */
export const handler = stageHandler(
  'RedeliveryScheduler',
  async (_event: unknown, context?: Context): Promise<ScheduleSummary> => {
    const env = readEnv(SchedulerEnv);
    const config = settings();
    const queue = new SqsFailedDeliveryQueue(
      sqs,
      env.FAILED_DELIVERY_QUEUE_URL,
      env.FAILED_DELIVERY_DLQ_URL,
      config.redeliverySchedule,
    );
    const deadline = Date.now() + env.REDELIVERY_SCHEDULER_BUDGET_MS;
    const endpoints = endpointStore();
    const attempts = attemptLog();
    const claims = redeliveryClaims();
    if (endpoints) await publishEndpointStates(endpoints, config.breaker);
    return runSchedule(
      queue,
      stepFunctionsRedeliver(sfn, env.REDELIVERY_STATE_MACHINE_ARN, { schedule: queue.schedule }),
      {
        remainingMs: context?.getRemainingTimeInMillis
          ? () => context.getRemainingTimeInMillis()
          : () => deadline - Date.now(),
        reserveMs: env.REDELIVERY_SCHEDULER_RESERVE_MS,
        minHoldSeconds: REDELIVERY_VISIBILITY_SECONDS,
        log: logger,
        ...(endpoints ? { gate: endpointGate(endpoints, config.breaker) } : {}),
        // A delivery given up after its runs kept failing: its export and status say so (no run reached Export).
        publishGivenUp,
        // One redelivery of a conversation in flight at a time, whatever copies of its envelope overlapping runs took.
        ...(claims ? { claim: (envelope, now) => claims.claim(envelope.conversation_id, now) } : {}),
        // One consistent Query per envelope about to be redelivered: the tries its envelope lacks are counted before its
        // run is named, and one already delivered is only exported, delivered.
        ...(attempts ? { logged: (envelope) => attempts.list(envelope.conversation_id) } : {}),
      },
    );
  },
);
