/**
 * How long a conversation may take, decided once by Validate and carried in the workflow state as `budget`, so the
 * same state machine can run with other budgets (an asynchronous start may give the agent minutes) without another
 * definition. docs/deploy.md ("Timeouts") draws the timeline.
 *
 * A synchronous caller waits at most the response timeout (on AWS, the API Gateway integration timeout, 29 s by
 * default). Counted from the moment the request arrived:
 *
 *   0 ── Validate ── InvokeManagerAgent (≤ agent_seconds) ── Classify ── Deliver (attempts end by deliver_by)
 *        ── Export (S3 work ends by answer_by − FALLBACK) ── [S3 refused: close, queue] ── answer_by ── timeout
 *
 * Each reserve below is the time the states after a point need at most, so that a slow agent, a slow receiver or a
 * slow or refusing S3 still ends in the workflow's own answer (and an exported or queued record) before the caller
 * gives up, never in the gateway's own 504.
 */
export interface Budget {
  /** Whole seconds InvokeManagerAgent may wait for the agent (its TimeoutSecondsPath), at least 1. */
  agent_seconds: number;
  /** No in-workflow delivery attempt may end after this (ISO 8601); null: no caller is waiting. */
  deliver_by: string | null;
  /** The workflow's answer must be ready by this (ISO 8601); null: no caller is waiting. */
  answer_by: string | null;
}

export interface BudgetSettings {
  /** How long the caller waits for the answer, ms (API Gateway's integration timeout; RESPONSE_TIMEOUT_MS). */
  responseTimeoutMs: number;
  /** The longest the agent may take, ms (MANAGER_AGENT_TIMEOUT_MS); rounded down to whole seconds, at least 1 s. */
  agentTimeoutMs: number;
}

/** The reserves of the synchronous timeline, ms. */
export const SYNC_RESERVES = {
  /** API Gateway starting the execution and mapping its result, and clock skew between it and Lambda. */
  margin: 1_000,
  /** After the last delivery attempt: Export, and when S3 refuses, closing and queueing the record. */
  tail: 3_000,
  /** Of the tail, what the S3-refused path needs (the Export Lambda again, then one SQS send of at most 1 s). */
  fallback: 2_000,
  /**
   * Of the fallback, what QueueFailedExport needs after the closing run (CloseWithoutExport): one SQS send, at most
   * its TimeoutSeconds, 1 s, not retried (statemachine/conversation.asl.json). The closing run's store calls end
   * before it. QueueFailedDelivery is bounded the same (1 s): the slow-agent path fits it with QueueFailedExport after it in
   * the fallback (test/infra/timeout-chain.test.ts).
   */
  queue: 1_500,
  /**
   * Classify, between the agent's answer and the first delivery attempt. Its bound is its state's TimeoutSeconds, 2 s
   * (statemachine/conversation.asl.json): a slower one takes the second beyond this from the delivery's time (its
   * attempts end by deliver_by whatever), and at worst still ends by answer_by − fallback (test/infra/timeout-chain).
   */
  classify: 1_000,
  /**
   * InvokeManagerAgent's Retry: a throttled agent (Lambda.TooManyRequestsException, answered at once) is tried again
   * after at most 1 s, then 2 s (MaxDelaySeconds of statemachine/conversation.asl.json).
   */
  agentRetryWaits: 3_000,
} as const;

/**
 * The shortest response timeout whose synchronous chain holds, ms: a Validate that succeeds at the latest
 * (`validateEndsByMs` after the request arrived: its Lambda's timeout less the tail it keeps), the shortest agent
 * budget (MIN_AGENT_TIMEOUT_MS: syncBudget never gives less) with its throttling retries, Classify at its bound
 * (`classifyMs`: its state's TimeoutSeconds), then the fallback and the margin (test/infra/timeout-chain.test.ts
 * walks the same chain on the synthesized template).
 */
export function minSyncResponseTimeoutMs(validateEndsByMs: number, classifyMs: number): number {
  const r = SYNC_RESERVES;
  return validateEndsByMs + MIN_AGENT_TIMEOUT_MS + r.agentRetryWaits + classifyMs + r.fallback + r.margin;
}

/** The largest agent timeout a synchronous call can honour with this response timeout, ms (whole seconds). */
export function maxSyncAgentTimeoutMs(responseTimeoutMs: number): number {
  const r = SYNC_RESERVES;
  return Math.floor((responseTimeoutMs - r.margin - r.tail - r.classify - r.agentRetryWaits) / 1000) * 1000;
}

/** The budget of a synchronous conversation whose request arrived at `receivedAt`, decided at `now`. */
export function syncBudget(settings: BudgetSettings, receivedAt: string, now: Date): Budget {
  const r = SYNC_RESERVES;
  const arrived = Date.parse(receivedAt);
  const start = Number.isNaN(arrived) ? now.getTime() : arrived;
  const answerBy = start + settings.responseTimeoutMs - r.margin;
  const deliverBy = answerBy - r.tail;
  const agentEndsBy = deliverBy - r.classify - r.agentRetryWaits;
  const configured = Math.max(1, Math.floor(settings.agentTimeoutMs / 1000));
  const left = Math.floor((agentEndsBy - now.getTime()) / 1000);
  return {
    agent_seconds: Math.max(1, Math.min(configured, left)),
    deliver_by: new Date(deliverBy).toISOString(),
    answer_by: new Date(answerBy).toISOString(),
  };
}

/**
 * An asynchronous conversation (`Prefer: respond-async`) has no caller waiting: its agent may take up to
 * ASYNC_AGENT_TIMEOUT_MS, and only the Express limit (the workflow's TimeoutSeconds, 300 s, counted from the start of
 * its run) bounds the rest. Counted from that start, the states after the agent need at most these (ms):
 */
export const EXPRESS_LIMIT_MS = 300_000;
export const ASYNC_RESERVES = {
  /** Starting the run and its Validate (which only unwraps the accepted conversation). */
  margin: 1_000,
  /** InvokeManagerAgent's Retry of a throttled agent, as in SYNC_RESERVES. */
  agentRetryWaits: 3_000,
  classify: 1_000,
  /** Deliver: the first attempt and 3 retries (full-jitter waits of at most 1, 2 and 4 s); × DELIVERY_TIMEOUT_MS. */
  deliveryAttempts: 4,
  deliveryRetryWaits: 7_000,
  /**
   * Before each attempt, the wait for a receiver's outbound rate: at most 2 s (MAX_RATE_WAIT_MS of
   * functions/domain/endpoints.ts, with no caller waiting); × deliveryAttempts.
   */
  deliveryRateWait: 2_000,
  /** Export and its retry, or the S3-refused path (close, queue). */
  tail: 5_000,
  /** Slack for what the others leave out: each state's Lambda invocation (a cold start), the store calls around them. */
  overhead: 3_000,
} as const;

/** The largest agent timeout an asynchronous conversation can honour inside the Express limit, ms (whole seconds). */
export function maxAsyncAgentTimeoutMs(deliveryTimeoutMs: number): number {
  return (
    Math.floor((EXPRESS_LIMIT_MS - ASYNC_RESERVES.margin - asyncReserveAfterAgentMs(deliveryTimeoutMs)) / 1000) * 1000
  );
}

/** What an asynchronous run reserves after its agent's timeout, ms (ASYNC_RESERVES). */
function asyncReserveAfterAgentMs(deliveryTimeoutMs: number): number {
  const r = ASYNC_RESERVES;
  const deliver = r.deliveryAttempts * (r.deliveryRateWait + deliveryTimeoutMs) + r.deliveryRetryWaits;
  return r.agentRetryWaits + r.classify + deliver + r.tail + r.overhead;
}

/**
 * The latest an asynchronous run begun at `startedMs` (ms since the epoch) ends, given its budget's `agent_seconds`:
 * its start, its agent's whole timeout and what the reserves keep after it, never past the Express limit (the
 * workflow's TimeoutSeconds, which ends it there).
 */
export function asyncRunEndsBy(startedMs: number, agentSeconds: number, deliveryTimeoutMs: number): number {
  const needed = ASYNC_RESERVES.margin + agentSeconds * 1000 + asyncReserveAfterAgentMs(deliveryTimeoutMs);
  return startedMs + Math.min(EXPRESS_LIMIT_MS, needed);
}

/**
 * The settings' bounds, the same for the synth (infra/config.ts) and `npm start` (local/server/config.ts), in ms.
 * The shortest response timeout leaves room for every reserve of the synchronous budget and a 1 s agent; the longest
 * is the Express limit (a synchronous execution ends there whatever the caller would still wait, without the
 * workflow's own answer).
 */
export const RESPONSE_TIMEOUT_LIMITS_MS = { min: 9_000, max: EXPRESS_LIMIT_MS } as const;
/**
 * The redelivery workflow's limit, ms: its TimeoutSeconds (statemachine/redelivery.asl.json). Past it a run is
 * TIMED_OUT, counted a failed run, and its delivery, which may have landed, is made again.
 */
export const REDELIVERY_LIMIT_MS = 60_000;

/**
 * A redelivery has no caller waiting, but its run ends at REDELIVERY_LIMIT_MS: Deliver ends within its Lambda's
 * timeout (DELIVERY_TIMEOUT_LIMITS_MS), and its Export and the closing run after S3 refused count down to this, from
 * the run's start (`$$.Execution.StartTime`, Step Functions' clock), as a synchronous conversation's count down to its
 * answer_by: the S3 work ends SYNC_RESERVES.fallback before it, the closing run's writes SYNC_RESERVES.queue before it,
 * and the run's own end comes before the workflow's (test/infra/timeout-chain.test.ts walks every path). Null: no start.
 */
export function redeliveryAnswerBy(startedAt: string | undefined): string | null {
  const started = startedAt ? Date.parse(startedAt) : Number.NaN;
  if (Number.isNaN(started)) return null;
  return new Date(started + REDELIVERY_LIMIT_MS - SYNC_RESERVES.margin).toISOString();
}

/**
 * A delivery attempt: at most 24 s, since a redelivery's Deliver is the attempt's whole seconds and 5 s
 * (infra/constructs/stage-function.ts, timeoutAround), 29 s, before its Export, whose S3 work must end by
 * redeliveryAnswerBy − SYNC_RESERVES.fallback, 57 s after the run's start: 28 s are left for it (Export's own Lambda
 * allows 28.5 s). A longer attempt would leave a slow receiver's redelivery next to no time to export it.
 */
export const DELIVERY_TIMEOUT_LIMITS_MS = { min: 100, max: 24_000 } as const;
/** An agent timeout is whole seconds, at least 1 (the Task's TimeoutSeconds). */
export const MIN_AGENT_TIMEOUT_MS = 1_000;

export interface AsyncBudgetSettings {
  /** ASYNC_AGENT_TIMEOUT_MS. */
  asyncAgentTimeoutMs: number;
  deliveryTimeoutMs: number;
}

/** The budget of an asynchronous conversation: no deadlines (no caller waits), the agent's longer timeout. */
export function asyncBudget(settings: AsyncBudgetSettings): Budget {
  const allowed = Math.min(settings.asyncAgentTimeoutMs, maxAsyncAgentTimeoutMs(settings.deliveryTimeoutMs));
  return { agent_seconds: Math.max(1, Math.floor(allowed / 1000)), deliver_by: null, answer_by: null };
}

/** Milliseconds left until `deadline` (an ISO time from the budget); Infinity when there is none. */
export function msLeft(deadline: string | null | undefined, now: Date): number {
  if (!deadline) return Number.POSITIVE_INFINITY;
  const at = Date.parse(deadline);
  return Number.isNaN(at) ? Number.POSITIVE_INFINITY : at - now.getTime();
}
