import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BudgetSettings,
  DELIVERY_TIMEOUT_LIMITS_MS,
  maxSyncAgentTimeoutMs,
  REDELIVERY_LIMIT_MS,
  redeliveryAnswerBy,
  SYNC_RESERVES,
  syncBudget,
} from '../../functions/domain/budget.ts';
import { STATUS_FUNCTION_TIMEOUT_MS } from '../../functions/domain/conversation-status.ts';
import { LAMBDA_TAIL_MS } from '../../functions/shared/clients/request-limits.ts';
import { START_SYNC_EXECUTION_TIMEOUT_MS } from '../../functions/shared/clients/sfn.ts';
import { type GatewayConfig, minIntegrationTimeoutMs, VALIDATE_FUNCTION_TIMEOUT_MS } from '../../infra/config.ts';
import { STATEMACHINE_DIR } from '../../local/paths.ts';
import {
  DELIVERY_URL_CONTEXT,
  functionId,
  type Json,
  logicalId,
  type Synthesized,
  synthesize,
} from './support/synth.ts';

/**
 * The timeouts chained end to end, as the template deploys them (docs/deploy.md, "Timeouts"): what API Gateway waits
 * for, what Validate budgets with, and each Lambda's timeout against the workflow that waits for it. A default
 * stack, and one whose Regional quota was raised for a slow agent (60 s) with the longest delivery attempt.
 */
const RAISED: Partial<GatewayConfig> = {
  apiIntegrationTimeoutMs: 60_000,
  agentTimeoutMs: 50_000,
  deliveryTimeoutMs: DELIVERY_TIMEOUT_LIMITS_MS.max,
};
/** The shortest integration timeout the synth takes (17.5 s), with the longest agent timeout it allows then. */
const MINIMUM_MS = minIntegrationTimeoutMs();
const MINIMUM: Partial<GatewayConfig> = {
  apiIntegrationTimeoutMs: MINIMUM_MS,
  agentTimeoutMs: maxSyncAgentTimeoutMs(MINIMUM_MS),
};
const stacks: Record<'default' | 'raised' | 'minimum', Synthesized> = {} as never;
beforeAll(() => {
  stacks.default = synthesize({ context: DELIVERY_URL_CONTEXT });
  stacks.raised = synthesize({ context: DELIVERY_URL_CONTEXT, config: RAISED });
  stacks.minimum = synthesize({ context: DELIVERY_URL_CONTEXT, config: MINIMUM });
});
afterAll(() => {
  for (const synth of Object.values(stacks)) synth?.cleanup();
});

type Resource = { Type: string; Properties: Record<string, Json> };
const resourcesOf = (synth: Synthesized) => synth.template.toJSON().Resources as Record<string, Resource>;
interface Retrier {
  ErrorEquals: string[];
  IntervalSeconds: number;
  MaxAttempts: number;
  BackoffRate: number;
  MaxDelaySeconds?: number;
}
type AslState = {
  Type: string;
  Resource?: string;
  TimeoutSeconds?: number;
  TimeoutSecondsPath?: string;
  Retry?: Retrier[];
  Catch?: { ErrorEquals: string[]; Next: string }[];
  Choices?: { Next: string }[];
  Default?: string;
  Next?: string;
};
const definition = (file: string) =>
  JSON.parse(readFileSync(path.join(STATEMACHINE_DIR, file), 'utf8')) as {
    TimeoutSeconds: number;
    States: Record<string, AslState>;
  };
const timeoutSeconds = (file: string) => definition(file).TimeoutSeconds;
const CONVERSATION = definition('conversation.asl.json').States;

/** The longest a state waits between its tries of `error`, all its Retry allows added up, ms (no jitter: the most). */
function retryWaitsMs(state: AslState, error: string): number {
  const retrier = state.Retry?.find((r) => r.ErrorEquals.includes(error) || r.ErrorEquals.includes('States.ALL'));
  return retrier ? retrierWaitsMs(retrier) : 0;
}

/** All a retrier's waits added up, ms: each IntervalSeconds × BackoffRate^n, cut at MaxDelaySeconds (FULL jitter waits less). */
function retrierWaitsMs(retrier: Retrier): number {
  let total = 0;
  for (let i = 0; i < retrier.MaxAttempts; i++) {
    const wait = retrier.IntervalSeconds * retrier.BackoffRate ** i;
    total += Math.min(wait, retrier.MaxDelaySeconds ?? wait) * 1000;
  }
  return total;
}

/**
 * The longest an SQS state of the conversation workflow takes (ms): each try bounded by its TimeoutSeconds (past it,
 * States.Timeout: the ASL's TimeoutSeconds applies to each try), each retry adding its wait. A state without
 * TimeoutSeconds waits for SQS as long as the workflow lets it: Infinity.
 */
function sendWorstMs(name: string): number {
  const state = CONVERSATION[name]!;
  if (!state.TimeoutSeconds) return Number.POSITIVE_INFINITY;
  const tries = 1 + (state.Retry ?? []).reduce((sum, r) => sum + r.MaxAttempts, 0);
  return tries * state.TimeoutSeconds * 1000 + (state.Retry ?? []).reduce((sum, r) => sum + retrierWaitsMs(r), 0);
}

/**
 * The longest a state after the agent takes on the slow-agent path, where nothing it calls does any work (ms): each
 * try of a Lambda task is answered at once (Lambda refusing to run it, or its handler past its deadline: Deliver
 * queues the delivery, Export fails into CloseWithoutExport), so only the waits of its Retry for Lambda's refusals
 * count; an SQS task waits its sendWorstMs; a Choice or a Pass nothing.
 */
function stateWorstMs(name: string): number {
  const state = CONVERSATION[name]!;
  if (state.Type !== 'Task') return 0;
  if (state.Resource?.includes(':sqs:')) return sendWorstMs(name);
  return retryWaitsMs(state, 'Lambda.ServiceException');
}

/** The slowest way from `name` to the workflow's end through every Next, Catch and Choice (ms, and its states). */
function worstPathFrom(name: string): { ms: number; path: string[] } {
  const state = CONVERSATION[name]!;
  const nexts = new Set(
    [
      state.Next,
      state.Default,
      ...(state.Catch ?? []).map((c) => c.Next),
      ...(state.Choices ?? []).map((c) => c.Next),
    ].filter((n): n is string => n !== undefined),
  );
  let slowest = { ms: 0, path: [] as string[] };
  for (const next of nexts) {
    const after = worstPathFrom(next);
    // Of paths as slow, the one through more states (each an invocation or a transition more).
    if (after.ms > slowest.ms || (after.ms === slowest.ms && after.path.length > slowest.path.length)) slowest = after;
  }
  return { ms: stateWorstMs(name) + slowest.ms, path: [name, ...slowest.path] };
}

const REDELIVERY = definition('redelivery.asl.json').States;

/**
 * Every way through the redelivery workflow (Next, Catch, Choice), with the latest it ends (ms from the run's start),
 * each state at its worst: a Lambda task's every try (the first and each retry) runs to its Lambda's timeout, with its
 * Retry's waits between; one of the Export function that is given the run's start (`started_at` from
 * `$$.Execution.StartTime`) ends by the run's deadline (redeliveryAnswerBy: its S3 work 2 s, the closing run's writes
 * 1.5 s before it, and an ExportError is retried only while a try still fits), whichever comes first.
 */
function redeliveryPaths(synth: Synthesized, name = 'IsDeliveryOwed', at = 0): { path: string[]; ms: number }[] {
  const state = REDELIVERY[name] as AslState & { Parameters?: Record<string, string> };
  let ends = at;
  if (state.Type === 'Task') {
    const fn = state.Resource === '${DeliverFunctionArn}' ? 'Deliver' : 'Export';
    expect(state.Resource, name).toBe(`\${${fn}FunctionArn}`);
    const tries = 1 + (state.Retry ?? []).reduce((sum, r) => sum + r.MaxAttempts, 0);
    const waits = (state.Retry ?? []).reduce((sum, r) => sum + retrierWaitsMs(r), 0);
    ends = at + tries * lambdaTimeoutMs(synth, fn) + waits;
    const startedAt = state.Parameters?.['started_at.$'];
    if (fn === 'Export' && startedAt === '$$.Execution.StartTime')
      ends = Math.min(ends, Date.parse(redeliveryAnswerBy(new Date(0).toISOString())!));
  }
  const nexts = [
    ...(state.Choices ?? []).map((c) => c.Next),
    state.Default,
    state.Next,
    ...(state.Catch ?? []).map((c) => c.Next),
  ].filter((n, i, all): n is string => n !== undefined && all.indexOf(n) === i);
  if (nexts.length === 0) return [{ path: [name], ms: ends }];
  return nexts.flatMap((next) =>
    redeliveryPaths(synth, next, ends).map((p) => ({ path: [name, ...p.path], ms: p.ms })),
  );
}

/**
 * The latest Classify ends and when the answer is due (ms from the request's arrival), for a Validate that succeeds
 * at any moment up to `validateLatest` (every 50 ms), each given the budget syncBudget decides then.
 */
function classifyChain(settings: BudgetSettings, validateLatest: number, classifyMs: number) {
  const arrival = Date.parse('2026-12-03T12:00:00.000Z');
  let latestClassifyEnd = 0;
  let answerBy = 0;
  for (let validated = 0; validated <= validateLatest; validated += 50) {
    const budget = syncBudget(settings, new Date(arrival).toISOString(), new Date(arrival + validated));
    answerBy = Date.parse(budget.answer_by!) - arrival;
    const agentEnd = validated + budget.agent_seconds * 1000 + SYNC_RESERVES.agentRetryWaits;
    latestClassifyEnd = Math.max(latestClassifyEnd, agentEnd + classifyMs);
  }
  return { latestClassifyEnd, answerBy };
}

/** A function's logical id: a stage (`Functions<Stage>`) or the redelivery scheduler. */
const idOf = (synth: Synthesized, name: string) =>
  name === 'RedeliveryScheduler'
    ? logicalId(synth.template, 'AWS::Lambda::Function', 'RedeliverySchedulerFunction')
    : functionId(synth.template, name);
function lambdaTimeoutMs(synth: Synthesized, name: string): number {
  return Number(resourcesOf(synth)[idOf(synth, name)]!.Properties.Timeout) * 1000;
}
function environment(synth: Synthesized, stage: string): Record<string, string> {
  const props = resourcesOf(synth)[functionId(synth.template, stage)]!.Properties;
  return (props.Environment as { Variables: Record<string, string> }).Variables;
}
/** The method's integration timeout (API Gateway's default, 29 s, when the template leaves it out). */
function integrationTimeoutMs(synth: Synthesized, httpMethod: string, action: string): number {
  const methods = Object.values(resourcesOf(synth)).filter(
    (r) => r.Type === 'AWS::ApiGateway::Method' && r.Properties.HttpMethod === httpMethod,
  );
  const method = methods.find((r) => JSON.stringify(r.Properties.Integration).includes(action));
  if (!method) throw new Error(`no ${httpMethod} method integrating ${action}`);
  return Number((method.Properties.Integration as { TimeoutInMillis?: number }).TimeoutInMillis ?? 29_000);
}

describe.each([
  ['default', 29_000],
  ['raised', 60_000],
  ['minimum', MINIMUM_MS],
] as const)('the %s stack', (name, apiTimeoutMs) => {
  it('API Gateway waits for POST /webhook exactly what Validate budgets the conversation with', () => {
    const synth = stacks[name];
    expect(integrationTimeoutMs(synth, 'POST', 'StartSyncExecution')).toBe(apiTimeoutMs);
    const validate = environment(synth, 'Validate');
    expect(Number(validate.RESPONSE_TIMEOUT_MS)).toBe(apiTimeoutMs);
    expect(Number(validate.MANAGER_AGENT_TIMEOUT_MS)).toBeLessThanOrEqual(maxSyncAgentTimeoutMs(apiTimeoutMs));
    // No synchronous execution outlives the Express limit, the conversation workflow's own TimeoutSeconds.
    expect(apiTimeoutMs).toBeLessThanOrEqual(timeoutSeconds('conversation.asl.json') * 1000);
  });

  it('the synchronous chain, written down: the latest Classify ends leaves Export and the S3-refused path their reserve', () => {
    // From the request's arrival (ms). Validate succeeds at the latest when its calls are cut (its Lambda's timeout
    // less LAMBDA_TAIL_MS: after that only its own work, no AWS call); cut, it answers 503 itself then.
    const synth = stacks[name];
    const validate = environment(synth, 'Validate');
    const settings = {
      responseTimeoutMs: Number(validate.RESPONSE_TIMEOUT_MS),
      agentTimeoutMs: Number(validate.MANAGER_AGENT_TIMEOUT_MS),
    };
    const validateLatest = lambdaTimeoutMs(synth, 'Validate') - LAMBDA_TAIL_MS;
    const agent = CONVERSATION.InvokeManagerAgent!;
    expect(agent.TimeoutSecondsPath).toBe('$.budget.agent_seconds');
    // The agent's throttled tries (answered at once) wait what the budget reserves for them.
    expect(retryWaitsMs(agent, 'Lambda.TooManyRequestsException')).toBe(SYNC_RESERVES.agentRetryWaits);
    // Classify is bounded by its state's TimeoutSeconds (a slower one is left to Deliver: its Catch), else by its
    // Lambda's 10 s, which the chain cannot hold.
    const classifyTimeout = CONVERSATION.Classify!.TimeoutSeconds;
    const classifyMs = classifyTimeout ? classifyTimeout * 1000 : lambdaTimeoutMs(synth, 'Classify');
    const { latestClassifyEnd, answerBy } = classifyChain(settings, validateLatest, classifyMs);
    // Then Deliver (attempts end by deliver_by, or none: queued), Export's S3 work (ends by answer_by − fallback, or
    // ExportDeadlineError at once), and the S3-refused path within the fallback: its closing run's calls, then
    // QueueFailedExport, one SQS send and its Retry within the queue's reserve.
    expect(latestClassifyEnd).toBeLessThanOrEqual(answerBy - SYNC_RESERVES.fallback);
    // The S3-refused path: the closing run's calls end by answer_by − 1.5 s (LAMBDA_TAIL_MS), then one send.
    expect(LAMBDA_TAIL_MS).toBeLessThanOrEqual(SYNC_RESERVES.queue);
    expect(sendWorstMs('QueueFailedExport')).toBeLessThanOrEqual(SYNC_RESERVES.queue);
    expect(SYNC_RESERVES.queue).toBeLessThan(SYNC_RESERVES.fallback);
    // The slow-agent path: Classify ends past deliver_by, so Deliver queues the delivery without an attempt, at once
    // (DeliveryDeferredError), and Export, past its deadline, fails at once into CloseWithoutExport; the sends in
    // between are what takes time: QueueFailedDelivery, and when it fails, QueueFailedExport. Each bounded by its
    // TimeoutSeconds, neither retried: before, no TimeoutSeconds (a hung send held the caller to the workflow's own
    // 300 s) and one retry each (up to 2 × hang + 1 s).
    const sendsAfterClassify = sendWorstMs('QueueFailedDelivery') + sendWorstMs('QueueFailedExport');
    expect(latestClassifyEnd + sendsAfterClassify).toBeLessThanOrEqual(answerBy);
    // answer_by leaves API Gateway its margin: the workflow's own answer, with its conversation id, comes first.
    expect(answerBy + SYNC_RESERVES.margin).toBe(apiTimeoutMs);
  });

  it('the status route’s Lambda times out before API Gateway gives up on it, so its own 504 is the answer', () => {
    const synth = stacks[name];
    expect(lambdaTimeoutMs(synth, 'ConversationStatus')).toBe(STATUS_FUNCTION_TIMEOUT_MS);
    expect(integrationTimeoutMs(synth, 'GET', 'FunctionsConversationStatus')).toBeGreaterThan(
      STATUS_FUNCTION_TIMEOUT_MS,
    );
  });

  it('each stage Lambda ends within every workflow that waits for it', () => {
    const synth = stacks[name];
    const invokedBy: Record<string, string[]> = {
      Validate: ['conversation', 'accept'],
      Classify: ['conversation'],
      Deliver: ['conversation', 'redelivery'],
      Export: ['conversation', 'accept', 'redelivery'],
    };
    for (const [stage, workflows] of Object.entries(invokedBy))
      for (const workflow of workflows)
        expect(lambdaTimeoutMs(synth, stage), `${stage} in ${workflow}`).toBeLessThan(
          timeoutSeconds(`${workflow}.asl.json`) * 1000,
        );
  });

  it('Deliver’s Lambda keeps room beside its attempt for the receiver’s rate (2 s) and its 1.5 s after the POST', () => {
    const synth = stacks[name];
    const attemptMs = Number(environment(synth, 'Deliver').DELIVERY_TIMEOUT_MS);
    expect(attemptMs).toBe(name === 'raised' ? DELIVERY_TIMEOUT_LIMITS_MS.max : 3_000);
    expect(lambdaTimeoutMs(synth, 'Deliver') - attemptMs).toBeGreaterThanOrEqual(2_000 + 1_500);
  });

  it('every path of the redelivery workflow, worst case from the template, ends before its TimeoutSeconds', () => {
    // Past it, a delivered POST followed by a slow export times out the run: counted failed, and delivered again.
    // Before: Deliver, Export and CloseWithoutExport retried Lambda's refusals 3 times (after 2, 4 and 8 s), Export
    // its ExportError twice, and only the Lambdas' timeouts bounded each try: Export alone 197 s, the worst path 461 s
    // on the raised stack (377 s on the default one), where the run ends at 60 s.
    const synth = stacks[name];
    const limitMs = timeoutSeconds('redelivery.asl.json') * 1000;
    expect(limitMs).toBe(REDELIVERY_LIMIT_MS);
    const paths = redeliveryPaths(synth);
    expect(paths.map((p) => p.path)).toEqual([
      ['IsDeliveryOwed', 'Export', 'Redelivered'],
      ['IsDeliveryOwed', 'Export', 'CloseWithoutExport', 'RedeliveredWithoutExport'],
      ['IsDeliveryOwed', 'Deliver', 'Export', 'Redelivered'],
      ['IsDeliveryOwed', 'Deliver', 'Export', 'CloseWithoutExport', 'RedeliveredWithoutExport'],
    ]);
    for (const { path: states, ms } of paths) expect(ms, states.join(' → ')).toBeLessThan(limitMs);
    // The slowest: Deliver at its Lambda's timeout, then the Export function's runs up to the run's deadline.
    const deadline = Date.parse(redeliveryAnswerBy(new Date(0).toISOString())!);
    expect(Math.max(...paths.map((p) => p.ms))).toBe(deadline);
    // Without the run's deadline, Export's two tries and CloseWithoutExport would each take their Lambda's 30 s.
    const deliverMs = lambdaTimeoutMs(synth, 'Deliver');
    expect(deliverMs + 3 * lambdaTimeoutMs(synth, 'Export') + 1_000).toBeGreaterThan(limitMs);
    // Deliver alone, at its longest, leaves Export at least 28 s before its S3 deadline (DELIVERY_TIMEOUT_LIMITS_MS).
    expect(deadline - SYNC_RESERVES.fallback - deliverMs).toBeGreaterThanOrEqual(name === 'raised' ? 28_000 : 49_000);
  });

  it('the scheduler’s Lambda outlasts its one StartSyncExecution of the redelivery workflow', () => {
    const synth = stacks[name];
    expect(START_SYNC_EXECUTION_TIMEOUT_MS).toBeGreaterThan(timeoutSeconds('redelivery.asl.json') * 1000);
    expect(lambdaTimeoutMs(synth, 'RedeliveryScheduler')).toBeGreaterThan(START_SYNC_EXECUTION_TIMEOUT_MS);
  });
});

describe('the conversation workflow after the agent', () => {
  it('every path from Classify’s latest end to the answer, worst case from the template, fits the fallback before answer_by', () => {
    // Lambda refusing to run a state (Lambda.ServiceException, throttling and the like) answers each try at once: the
    // Step Functions docs ("Handle Lambda service exceptions") have them retried or caught. Retried after the agent,
    // their waits came on top of a slow agent's whole budget: Deliver, Export, CloseWithoutExport and RecordOnlyInLogs
    // retried them up to 1 s then 2 s each, and the worst path (every send hanging, every Lambda refused) took 14 s
    // where the budget leaves 2 s: the caller got API Gateway's bare 504 while the execution went on. Now none is
    // retried (their Catch queues the delivery, or CloseWithoutExport, the same function's next invocation, answers
    // and queues the record, else ConversationUnanswered, 500), and the worst path is the two 1 s sends.
    const worst = worstPathFrom('Deliver');
    expect(worst.ms).toBe(2_000);
    expect(worst.ms).toBeLessThanOrEqual(SYNC_RESERVES.fallback);
    // The longest path through the graph (each state on it at its worst): both sends hanging, and the most states.
    expect(worst.path).toEqual([
      'Deliver',
      'DeliveryFailed',
      'QueueFailedDelivery',
      'Export',
      'ExportFailedConversation',
      'CloseWithoutExport',
      'IsRedeliveryQueued',
      'QueueFailedExport',
      'RecordOnlyInLogs',
      'RecordOnlyInHistory',
      'AnswerWithoutExport',
      'ConversationUnanswered',
    ]);
    // The agent's own failure (its timeout at its latest ends before Classify's latest) is answered within it too,
    // and so is an answer refused after a failed Classify (Export → ExportFailedConversation).
    expect(worstPathFrom('ExportFailedConversation').ms).toBeLessThanOrEqual(SYNC_RESERVES.fallback);
    for (const name of ['Deliver', 'Export', 'ExportFailedConversation', 'CloseWithoutExport', 'RecordOnlyInLogs'])
      expect(retryWaitsMs(CONVERSATION[name]!, 'Lambda.ServiceException'), name).toBe(0);
  });

  it('each state that Lambda may refuse after the agent has a Catch for it, so nothing waits and nothing is lost', () => {
    // Classify's refusal: Deliver does its work; Deliver's: the failed-delivery queue; Export's: CloseWithoutExport;
    // CloseWithoutExport's: the unclosed record queued (QueueFailedExport); RecordOnlyInLogs': the caller's answer,
    // after RecordOnlyInHistory (a Pass state: the event its alarm counts, test/infra/operations.test.ts).
    const caught: Record<string, string> = {
      Classify: 'Deliver',
      Deliver: 'DeliveryFailed',
      Export: 'CloseWithoutExport',
      ExportFailedConversation: 'CloseWithoutExport',
      CloseWithoutExport: 'QueueFailedExport',
      RecordOnlyInLogs: 'RecordOnlyInHistory',
    };
    for (const [name, next] of Object.entries(caught)) {
      const state = CONVERSATION[name]!;
      expect(state.Retry?.some((r) => r.ErrorEquals.includes('Lambda.TooManyRequestsException')) ?? false, name).toBe(
        false,
      );
      expect(state.Catch?.find((c) => c.ErrorEquals.includes('States.ALL'))?.Next, name).toBe(next);
    }
  });
});

describe('the shortest apiIntegrationTimeoutMs the synth takes', () => {
  it('is where the chain holds exactly, from the template’s figures: 1 ms less and Classify would end too late', () => {
    // Before: 9000 was taken, where a Validate ending at 8.5 s, the agent's 1 s and its retries, then Classify, ran past
    // API Gateway's timeout. Now the synth refuses less than this (test/infra/config.test.ts).
    expect(MINIMUM_MS).toBe(17_500);
    const validateLatest = VALIDATE_FUNCTION_TIMEOUT_MS - LAMBDA_TAIL_MS;
    const classifyMs = CONVERSATION.Classify!.TimeoutSeconds! * 1000;
    const chain = (responseTimeoutMs: number) => {
      const settings = { responseTimeoutMs, agentTimeoutMs: maxSyncAgentTimeoutMs(responseTimeoutMs) };
      const { latestClassifyEnd, answerBy } = classifyChain(settings, validateLatest, classifyMs);
      return answerBy - SYNC_RESERVES.fallback - latestClassifyEnd;
    };
    expect(chain(MINIMUM_MS)).toBe(0);
    expect(chain(MINIMUM_MS - 1)).toBeLessThan(0);
  });
});
