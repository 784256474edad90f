import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DELIVERY_TIMEOUT_LIMITS_MS,
  maxSyncAgentTimeoutMs,
  REDELIVERY_LIMIT_MS,
  SYNC_RESERVES,
} from '../../functions/domain/budget.ts';
import { LAMBDA_TAIL_MS } from '../../functions/shared/clients/request-limits.ts';
import { DEFAULT_CONFIG, minIntegrationTimeoutMs, VALIDATE_FUNCTION_TIMEOUT_MS } from '../../infra/config.ts';
import { PROJECT_ROOT, STATEMACHINE_DIR } from '../../local/paths.ts';

/**
 * docs/deploy.md's "Timeouts" and the settings that point at it give the synchronous chain in seconds: each figure
 * here is computed from what the template and the budget use (statemachine/conversation.asl.json,
 * functions/domain/budget.ts, infra/config.ts), so a change to one that leaves the page behind fails.
 */
const read = (file: string) => readFileSync(path.join(PROJECT_ROOT, 'docs', file), 'utf8');
const flat = (text: string) => text.replace(/\s+/g, ' ');
const DEPLOY = read('deploy.md');
const TIMEOUTS = flat(DEPLOY.slice(DEPLOY.indexOf('### Timeouts'), DEPLOY.indexOf('**AWS calls.**')));
const CONFIGURATION = flat(read('configuration.md'));
type State = { TimeoutSeconds?: number; Retry?: { ErrorEquals: string[] }[] };
const STATES = (
  JSON.parse(readFileSync(path.join(STATEMACHINE_DIR, 'conversation.asl.json'), 'utf8')) as {
    States: Record<string, State>;
  }
).States;

const s = (ms: number) => `${ms / 1000} s`;
const API_MS = DEFAULT_CONFIG.apiIntegrationTimeoutMs;
const R = SYNC_RESERVES;
const answerBy = API_MS - R.margin;
const deliverBy = answerBy - R.tail;
const classifyMs = STATES.Classify!.TimeoutSeconds! * 1000;

describe('docs/deploy.md, Timeouts: the figures are the template’s', () => {
  it('the timeline, from the default apiIntegrationTimeoutMs and the budget’s reserves', () => {
    expect(TIMEOUTS).toContain(`waits \`apiIntegrationTimeoutMs\` (${s(API_MS)})`);
    expect(TIMEOUTS).toContain(`| ≤ ${s(maxSyncAgentTimeoutMs(API_MS))} | InvokeManagerAgent`);
    expect(TIMEOUTS).toContain(`minus ${s(R.agentRetryWaits)} for two throttling retries`);
    expect(TIMEOUTS).toContain(`| + ${s(R.classify)} | Classify (at most ${s(classifyMs)}, its state's`);
    expect(TIMEOUTS).toContain(`| ${s(deliverBy)} | \`deliver_by\``);
    expect(TIMEOUTS).toContain(`| ${s(answerBy - R.fallback)} | Export's S3 work`);
    expect(TIMEOUTS).toContain(`(\`answer_by\` − ${s(R.fallback)})`);
    expect(TIMEOUTS).toContain(`| ${s(answerBy)} | \`answer_by\``);
    expect(TIMEOUTS).toContain(`(${s(R.margin)} margin for API Gateway)`);
  });

  it('the chain written down, the states after the agent, and the shortest integration timeout', () => {
    expect(TIMEOUTS).toContain(
      `cut ${s(LAMBDA_TAIL_MS)} before its ${s(VALIDATE_FUNCTION_TIMEOUT_MS)}), the agent's whole \`agent_seconds\``,
    );
    expect(TIMEOUTS).toContain(`then Classify's ${s(classifyMs)}, end by ${s(answerBy - R.fallback)}`);
    const sends = ['QueueFailedDelivery', 'QueueFailedExport'].map((name) => STATES[name]!.TimeoutSeconds! * 1000);
    expect(new Set(sends)).toEqual(new Set([1_000]));
    expect(TIMEOUTS).toContain(`one SQS send of at most ${s(sends[1]!)}`);
    expect(TIMEOUTS).toContain(`QueueFailedExport), ${s(sends[0]!)} each at most`);
    expect(TIMEOUTS).toContain(`is the two ${s(sends[0]!)} sends`);
    // No state after the agent retries Lambda's refusals (the page says none does).
    const afterAgent = ['Classify', 'Deliver', 'Export', 'ExportFailedConversation', 'CloseWithoutExport'];
    for (const name of [...afterAgent, 'RecordOnlyInLogs'])
      expect(STATES[name]!.Retry?.some((r) => r.ErrorEquals.includes('Lambda.ServiceException')) ?? false, name).toBe(
        false,
      );
    expect(TIMEOUTS).toContain('No state after the agent is retried when Lambda will not run it');
    // What a raised timeout always keeps from the agent, and the smallest the synth takes, with its figures.
    expect(TIMEOUTS).toContain(
      `\`agentTimeoutMs\` may be: ${s(API_MS - maxSyncAgentTimeoutMs(API_MS))} are always reserved`,
    );
    const min = minIntegrationTimeoutMs();
    expect(TIMEOUTS).toContain(`one under ${min},`);
    expect(TIMEOUTS).toContain(
      `a Validate that succeeds at ${s(VALIDATE_FUNCTION_TIMEOUT_MS - LAMBDA_TAIL_MS)}, the agent's shortest 1 s and its ${s(R.agentRetryWaits)} of throttling retries, Classify's ${s(classifyMs)}, then the ${s(R.fallback)} fallback and the ${s(R.margin)} margin`,
    );
  });

  it('the settings that refer to it say the same', () => {
    const maxAgent = maxSyncAgentTimeoutMs(API_MS);
    expect(flat(DEPLOY)).toContain(`at most ${maxAgent} at ${API_MS}`);
    expect(flat(DEPLOY)).toContain(`at least ${minIntegrationTimeoutMs()}, where the synchronous chain still holds`);
    expect(flat(DEPLOY)).toContain(`the agent needs more than ${s(maxAgent)}`);
    expect(CONFIGURATION).toContain(`${maxAgent} at ${API_MS}`);
    expect(CONFIGURATION).toContain(`deliveries end ${s(R.tail + R.margin)} before it`);
    // RESPONSE_TIMEOUT_MS's documented minimum with the default agent timeout stopped the start ("does not fit"): its
    // row says below which one the agent's must come down, and to what at that minimum.
    let least = API_MS;
    while (maxSyncAgentTimeoutMs(least - 1) >= DEFAULT_CONFIG.agentTimeoutMs) least -= 1;
    expect(CONFIGURATION).toContain(
      `9000 to 300000, under ${least} with a lower \`MANAGER_AGENT_TIMEOUT_MS\` (at 9000: ${maxSyncAgentTimeoutMs(9000)})`,
    );
  });
  it('the redelivery workflow’s paragraph, from its definition and the budget', () => {
    const redelivery = JSON.parse(readFileSync(path.join(STATEMACHINE_DIR, 'redelivery.asl.json'), 'utf8')) as {
      TimeoutSeconds: number;
    };
    expect(redelivery.TimeoutSeconds * 1000).toBe(REDELIVERY_LIMIT_MS);
    expect(TIMEOUTS).toContain(`its \`TimeoutSeconds\`, ${s(REDELIVERY_LIMIT_MS)}: past it a run is \`TIMED_OUT\``);
    const deadline = REDELIVERY_LIMIT_MS - R.margin;
    expect(TIMEOUTS).toContain(`${s(deadline)} (${s(R.margin)} margin), the S3 work ending ${s(R.fallback)} before it`);
    expect(TIMEOUTS).toContain(`the closing run's writes ${s(R.queue)} before it`);
    // The longest Deliver (the attempt's whole seconds and 5 s) and what it leaves Export before its S3 deadline.
    const deliverMs = DELIVERY_TIMEOUT_LIMITS_MS.max + 5_000;
    expect(TIMEOUTS).toContain(`8 s by default, ${s(deliverMs)} at most`);
    expect(TIMEOUTS).toContain(`would leave its Export less than ${s(deadline - R.fallback - deliverMs)} before`);
    expect(flat(DEPLOY)).toContain(`leaves its Export ${s(deadline - R.fallback - deliverMs)} in its workflow's`);
  });
});
