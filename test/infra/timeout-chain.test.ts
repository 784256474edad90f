import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DELIVERY_TIMEOUT_LIMITS_MS,
  maxSyncAgentTimeoutMs,
  SYNC_RESERVES,
  syncBudget,
} from '../../functions/domain/budget.ts';
import { STATUS_FUNCTION_TIMEOUT_MS } from '../../functions/domain/conversation-status.ts';
import { LAMBDA_TAIL_MS } from '../../functions/shared/clients/request-limits.ts';
import { START_SYNC_EXECUTION_TIMEOUT_MS } from '../../functions/shared/clients/sfn.ts';
import type { GatewayConfig } from '../../infra/config.ts';
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
const stacks: Record<'default' | 'raised', Synthesized> = {} as never;
beforeAll(() => {
  stacks.default = synthesize({ context: DELIVERY_URL_CONTEXT });
  stacks.raised = synthesize({ context: DELIVERY_URL_CONTEXT, config: RAISED });
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
type AslState = { TimeoutSeconds?: number; TimeoutSecondsPath?: string; Retry?: Retrier[] };
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
  if (!retrier) return 0;
  let total = 0;
  for (let i = 0; i < retrier.MaxAttempts; i++) {
    const wait = retrier.IntervalSeconds * retrier.BackoffRate ** i;
    total += Math.min(wait, retrier.MaxDelaySeconds ?? wait) * 1000;
  }
  return total;
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
    const arrival = Date.parse('2026-12-03T12:00:00.000Z');
    const validateLatest = lambdaTimeoutMs(synth, 'Validate') - LAMBDA_TAIL_MS;
    const agent = CONVERSATION.InvokeManagerAgent!;
    expect(agent.TimeoutSecondsPath).toBe('$.budget.agent_seconds');
    // The agent's throttled tries (answered at once) wait what the budget reserves for them.
    expect(retryWaitsMs(agent, 'Lambda.TooManyRequestsException')).toBe(SYNC_RESERVES.agentRetryWaits);
    // Classify is bounded by its state's TimeoutSeconds (a slower one is left to Deliver: its Catch), else by its
    // Lambda's 10 s, which the chain cannot hold.
    const classifyTimeout = CONVERSATION.Classify!.TimeoutSeconds;
    const classifyMs = classifyTimeout ? classifyTimeout * 1000 : lambdaTimeoutMs(synth, 'Classify');
    let latestClassifyEnd = 0;
    let answerBy = 0;
    for (let validated = 0; validated <= validateLatest; validated += 50) {
      const budget = syncBudget(settings, new Date(arrival).toISOString(), new Date(arrival + validated));
      answerBy = Date.parse(budget.answer_by!) - arrival;
      const agentEnd = validated + budget.agent_seconds * 1000 + SYNC_RESERVES.agentRetryWaits;
      latestClassifyEnd = Math.max(latestClassifyEnd, agentEnd + classifyMs);
    }
    // Then Deliver (attempts end by deliver_by, or none: queued), Export's S3 work (ends by answer_by − fallback, or
    // ExportDeadlineError at once), and the S3-refused path within the fallback: its closing run's calls, then
    // QueueFailedExport, one SQS send and its Retry within the queue's reserve.
    expect(latestClassifyEnd).toBeLessThanOrEqual(answerBy - SYNC_RESERVES.fallback);
    expect(retryWaitsMs(CONVERSATION.QueueFailedExport!, 'States.ALL')).toBeLessThan(SYNC_RESERVES.queue);
    expect(SYNC_RESERVES.queue).toBeLessThan(SYNC_RESERVES.fallback);
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

  it('a redelivery’s Deliver Lambda, then its Export Lambda, end within the redelivery workflow', () => {
    // Past it, a delivered POST followed by a slow export times out the run: counted failed, and delivered again.
    const synth = stacks[name];
    expect(lambdaTimeoutMs(synth, 'Deliver') + lambdaTimeoutMs(synth, 'Export')).toBeLessThan(
      timeoutSeconds('redelivery.asl.json') * 1000,
    );
  });

  it('the scheduler’s Lambda outlasts its one StartSyncExecution of the redelivery workflow', () => {
    const synth = stacks[name];
    expect(START_SYNC_EXECUTION_TIMEOUT_MS).toBeGreaterThan(timeoutSeconds('redelivery.asl.json') * 1000);
    expect(lambdaTimeoutMs(synth, 'RedeliveryScheduler')).toBeGreaterThan(START_SYNC_EXECUTION_TIMEOUT_MS);
  });
});
