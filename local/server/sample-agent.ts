import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody, sendJson } from './http.ts';

/**
 * SAMPLE manager agent — a local stand-in for the RevOps manager agent Lambda, served on the Lambda Invoke REST
 * path so the real LambdaClient code path runs. Its canned answers depend on the query so every webhook type can
 * be reached. Point AWS_ENDPOINT_URL_LAMBDA at `sam local start-lambda` or at AWS to use the real agent.
 *
 * For trying failure paths by hand: a query containing `[sample:error]` answers with a FunctionError,
 * `[sample:slow]` waits SAMPLE_AGENT_SLOW_MS before answering: by default 5 s, well inside the agent timeout
 * (MANAGER_AGENT_TIMEOUT_MS, 20 s), so the slow answer still arrives; set it above that timeout to see a 504.
 */
export interface AgentRequest {
  query?: string;
  conversation_id?: string;
  source_system?: string;
  /** The thread (functions/domain/thread.ts AgentThread), or null outside one. */
  thread?: { thread_id?: unknown; session_id?: unknown; turn?: unknown; earlier_turns?: unknown } | null;
}

export type SampleAnswer =
  | { kind: 'answer'; payload: Record<string, unknown> }
  | { kind: 'error'; payload: { errorType: string; errorMessage: string } }
  | { kind: 'slow'; payload: Record<string, unknown> };

export const SAMPLE_AGENT_SLOW_MS = 5_000;

/** How long `[sample:slow]` waits: SAMPLE_AGENT_SLOW_MS when it is a whole number of ms, else the default. */
export function sampleSlowMs(env: NodeJS.ProcessEnv = process.env): number {
  const ms = Number(env.SAMPLE_AGENT_SLOW_MS);
  return env.SAMPLE_AGENT_SLOW_MS && Number.isInteger(ms) && ms >= 0 ? ms : SAMPLE_AGENT_SLOW_MS;
}

const LABEL = 'sample-agent (local stand-in for the RevOps manager agent)';

export function sampleAgentAnswer(request: AgentRequest): SampleAnswer {
  const query = String(request.query ?? '');
  const q = query.toLowerCase();
  if (q.includes('[sample:error]')) {
    return {
      kind: 'error',
      payload: { errorType: 'SampleAgentError', errorMessage: 'the sample agent was asked to fail' },
    };
  }
  const seen = threadSeen(request);
  const base = { agent: LABEL, sample: true, conversation_id: request.conversation_id ?? null, ...seen };
  let payload: Record<string, unknown>;
  if (/\b(deal|deals|pipeline|opportunit)/.test(q)) {
    payload = {
      ...base,
      response:
        'Top deals closing this quarter: Acme Corp renewal ($120,000, 80%), Globex expansion ($95,000, 60%), Initech new logo ($70,000, 45%).',
      deals: [
        { name: 'Acme Corp renewal', amount: 120000, probability: 0.8, close_date: '2025-09-15' },
        { name: 'Globex expansion', amount: 95000, probability: 0.6, close_date: '2025-09-22' },
        { name: 'Initech new logo', amount: 70000, probability: 0.45, close_date: '2025-09-30' },
      ],
    };
  } else if (/\b(lead|leads|prospect)/.test(q)) {
    payload = {
      ...base,
      response: 'Lead analysis: 42 new leads this week; 12 scored above 80; top sources are webinars and referrals.',
      leads: { new_this_week: 42, high_score: 12, top_sources: ['webinar', 'referral'] },
    };
  } else if (/\b(data|metric|metrics|report|trend|trends|kpi|churn)/.test(q)) {
    payload = {
      ...base,
      response: 'Data analysis: monthly recurring revenue grew 4.2% month over month; churn held at 1.1%.',
      metrics: { mrr_growth_pct: 4.2, churn_pct: 1.1 },
    };
  } else {
    payload = { ...base, response: `General answer from the sample agent to: ${query.slice(0, 200)}` };
  }
  // Threads visibly at work: the answer says how much of the thread the agent was given.
  if (seen) {
    const n = seen.earlier_turns_received;
    payload.response = `${payload.response} (thread ${String(seen.thread_id)}, turn ${String(seen.thread_turn)}: ${n} earlier turn${n === 1 ? '' : 's'} received)`;
  }
  return { kind: q.includes('[sample:slow]') ? 'slow' : 'answer', payload };
}

/** What the sample agent says it saw of the thread (nothing outside a thread). */
function threadSeen(request: AgentRequest) {
  const thread = request.thread;
  if (!thread || typeof thread !== 'object') return null;
  const earlier = Array.isArray(thread.earlier_turns) ? thread.earlier_turns : [];
  return {
    thread_id: thread.thread_id ?? null,
    session_id: thread.session_id ?? null,
    thread_turn: thread.turn ?? null,
    earlier_turns_received: earlier.length,
    earlier_conversation_ids: earlier.map((t) => (t as { conversation_id?: unknown })?.conversation_id ?? null),
  };
}

/**
 * Waits `ms`, unless the caller goes away first: the engine gave up on it at the agent timeout (its HTTP request
 * aborted, as Step Functions abandons its call). A wait left running kept a stopped gateway's process alive for the
 * rest of SAMPLE_AGENT_SLOW_MS after Ctrl-C, with nothing in flight. True when the caller still waits.
 */
function whileCallerWaits(res: ServerResponse, ms: number): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const gone = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      res.off('close', gone);
      resolve(true);
    }, ms);
    res.once('close', gone);
  });
}

/** The Lambda Invoke REST call (`POST /2015-03-31/functions/{name}/invocations`), answered by the sample agent. */
export async function handleSampleAgentInvoke(
  functionName: string,
  expected: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const raw = (await readBody(req, 6 * 1024 * 1024)).toString('utf8');
  if (decodeURIComponent(functionName) !== expected) {
    return sendJson(
      res,
      404,
      { Type: 'User', message: `Function not found: ${functionName} (the sample agent answers as ${expected})` },
      {
        'x-amzn-errortype': 'ResourceNotFoundException',
      },
    );
  }
  let request: Record<string, unknown> = {};
  try {
    request = JSON.parse(raw || '{}');
  } catch {
    // the sample agent answers anything
  }
  const answer = sampleAgentAnswer(request);
  if (answer.kind === 'slow' && !(await whileCallerWaits(res, sampleSlowMs()))) return;
  const headers: Record<string, string> = { 'x-amz-executed-version': '$LATEST' };
  if (answer.kind === 'error') headers['x-amz-function-error'] = 'Unhandled';
  sendJson(res, 200, answer.payload, headers);
}
