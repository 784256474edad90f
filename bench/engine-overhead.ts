/**
 * 1. Engine overhead: the five stage handlers run (a) through LocalWorkflow on statemachine/conversation.asl.json
 * and (b) chained in plain code, in this process, with an instant agent (an in-process stub of the Lambda client's
 * send), an in-memory S3 (an in-process stub of the S3 client's send) and an instant HTTP receiver on 127.0.0.1.
 * Conversations run one at a time; (a) and (b) alternate so machine noise hits both alike.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { WEBHOOK_TYPES } from '../functions/domain/conversation.ts';
import { DELIVERY_URL_VARIABLES } from '../functions/domain/delivery.ts';
import type { ExecutionInput } from '../functions/domain/gateway-contract.ts';
import { pickForwardedHeaders } from '../functions/domain/gateway-contract.ts';
import type { LocalWorkflow } from '../local/engine/engine.ts';
import { localWorkflow } from '../local/engine/workflows.ts';
import { sampleAgentAnswer } from '../local/server/sample-agent.ts';
import { logBytes, renderExpressLog, taskRecorder } from './support/express-log.ts';
import { captureHandlerLogs } from './support/log-capture.ts';
import { startInstantPeers } from './support/peers.ts';
import { PROJECT_ROOT } from './support/processes.ts';
import { makeRequest, REQUEST_SIZES, type RequestSizeName } from './support/requests.ts';
import { roundAll, type Summary, summarize } from './support/stats.ts';

type Fn = (input: unknown) => Promise<unknown>;
interface Handlers {
  validate: Fn;
  invokeAgent: Fn;
  classify: Fn;
  deliver: Fn;
  export: Fn;
}

export interface StageTimes {
  validate: Summary;
  invoke_agent: Summary;
  classify: Summary;
  deliver: Summary;
  export: Summary;
}

export interface OverheadResult {
  size: RequestSizeName;
  request_bytes: number;
  iterations: number;
  engine: Summary;
  plain: Summary;
  overhead_median_ms: number;
  overhead_p99_ms: number;
  /** CPU time (user + system) of this process per conversation: less sensitive than wall time to a busy machine. */
  engine_cpu: Summary;
  plain_cpu: Summary;
  overhead_cpu_median_ms: number;
  ratio_median: number;
  ratio_p99: number;
  /** Handler time per stage in the plain chain (what each Lambda would run, minus its I/O latency on AWS). */
  stages: StageTimes;
  /** Per conversation, from the plain chain: what the handlers print (CloudWatch Logs ingestion) and put to S3. */
  per_conversation: {
    handler_log_lines: number;
    handler_log_bytes: number;
    emf_lines: number;
    emf_bytes: number;
    s3_puts: number;
    s3_put_bytes: number;
    /** The local engine's event log of one execution (JSON), the basis of the Express execution-data estimate. */
    engine_events: number;
    engine_event_payload_bytes: number;
    /** Task states entered in one execution, and the input/output bytes they carried. */
    task_states: number;
    task_payload_bytes: number;
    /** Every state the execution entered, with its input and output as they would sit in a log event (escaped JSON). */
    states: { name: string; type: string; input_bytes: number; output_bytes: number }[];
    /**
     * The Express log events of that execution at level ALL (bench/support/express-log.ts): their count and bytes
     * with the execution data (includeExecutionData: true) and without it, and the data in the task events alone
     * (what the tasks were given and returned: LambdaFunction/Task Scheduled and Succeeded).
     */
    express_log: { events: number; bytes: number; bytes_without_data: number; task_io_data_bytes: number };
    /** Bytes of the POST to the receiver and of the HTTP answer's body (the execution output). */
    delivery_payload_bytes: number;
    answer_bytes: number;
    execution_input_bytes: number;
    execution_output_bytes: number;
  };
}

export interface OverheadOptions {
  sizes: RequestSizeName[];
  /** Measured conversations per variant for the 1 KB size; larger sizes scale down. */
  iterations: number;
  warmup: number;
}

const SERVICE_ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench',
  AWS_EC2_METADATA_DISABLED: 'true',
  POWERTOOLS_TRACE_ENABLED: 'false',
  POWERTOOLS_SERVICE_NAME: 'webhook-gateway',
  POWERTOOLS_METRICS_NAMESPACE: 'RevOps/WebhookGateway',
  LOG_LEVEL: 'INFO',
  CONVERSATION_EXPORT_S3_BUCKET: 'bench-conversations',
  ENABLE_CONVERSATION_EXPORT: 'true',
  MANAGER_AGENT_FUNCTION_NAME: 'bench-agent',
  MANAGER_AGENT_TIMEOUT_MS: '5000',
  DELIVERY_TIMEOUT_MS: '3000',
  S3_FORCE_PATH_STYLE: 'true',
};

interface S3Stats {
  puts: number;
  bytes: number;
}

async function loadStubbedHandlers(receiverUrl: string): Promise<{ handlers: Handlers; s3Stats: S3Stats }> {
  Object.assign(process.env, SERVICE_ENV);
  for (const type of WEBHOOK_TYPES) process.env[DELIVERY_URL_VARIABLES[type]] = `${receiverUrl}/hooks/${type}`;
  const [validate, classify, deliver, exportStage, s3Client] = await Promise.all([
    import('../functions/validate/handler.ts'),
    import('../functions/classify/handler.ts'),
    import('../functions/deliver/handler.ts'),
    import('../functions/export/handler.ts'),
    import('../functions/shared/clients/s3.ts'),
  ]);
  // Instant agent: InvokeManagerAgent (Step Functions' Lambda integration) answers at once with the sample agent's
  // payload, in the integration's shape with the headers a Lambda Invoke answers with (local/engine/lambda-invoke.ts).
  const invokeAgent: Fn = async (params) => {
    const request = (params as { Payload?: Record<string, unknown> }).Payload ?? {};
    const payload = sampleAgentAnswer(request).payload;
    const headers = {
      Connection: 'keep-alive',
      'Content-Length': String(Buffer.byteLength(JSON.stringify(payload))),
      'Content-Type': 'application/json',
      Date: 'Tue, 01 Dec 2026 12:00:00 GMT',
      'X-Amz-Executed-Version': '$LATEST',
      'x-amzn-Remapped-Content-Length': '0',
      'x-amzn-RequestId': '3f0e2a4c-1b2d-4e5f-8a9b-0c1d2e3f4a5b',
      'X-Amzn-Trace-Id': 'root=1-67890abc-def0123456789abcdef0123;parent=1a2b3c4d5e6f7a8b;sampled=0',
    };
    return {
      ExecutedVersion: '$LATEST',
      Payload: payload,
      SdkHttpMetadata: {
        AllHttpHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
        HttpHeaders: headers,
        HttpStatusCode: 200,
      },
      SdkResponseMetadata: { RequestId: headers['x-amzn-RequestId'] },
      StatusCode: 200,
    };
  };
  // In-memory S3: PUTs are counted and their bodies measured, nothing is kept.
  const s3Stats: S3Stats = { puts: 0, bytes: 0 };
  (s3Client.s3 as unknown as { send: (command: { input: { Body?: string } }) => Promise<unknown> }).send = async (
    command,
  ) => {
    s3Stats.puts += 1;
    s3Stats.bytes += Buffer.byteLength(String(command.input.Body ?? ''));
    return { ETag: '"bench"', $metadata: {} };
  };
  const wrap =
    (fn: (event: never) => Promise<unknown>): Fn =>
    (input) =>
      fn(input as never);
  return {
    handlers: {
      validate: wrap(validate.handler),
      invokeAgent,
      classify: wrap(classify.handler),
      deliver: wrap(deliver.handler),
      export: wrap(exportStage.handler),
    },
    s3Stats,
  };
}

function workflowFor(handlers: Handlers): LocalWorkflow {
  // Exactly as local/server/gateway.ts builds it (the same ARNs, the same file).
  const stages = {
    validate: handlers.validate,
    classify: handlers.classify,
    deliver: handlers.deliver,
    export: handlers.export,
  };
  return localWorkflow('conversation', stages, async () => ({}), undefined, handlers.invokeAgent);
}

type StageTimer = (stage: keyof StageTimes, ms: number) => void;

/** The happy path of conversation.asl.json written as plain code (Validate → … → Export). */
async function runPlain(
  h: Handlers,
  input: ExecutionInput,
  executionName: string,
  timer?: StageTimer,
): Promise<unknown> {
  const timed = async (stage: keyof StageTimes, fn: Fn, value: unknown) => {
    const t0 = performance.now();
    const out = await fn(value);
    timer?.(stage, performance.now() - t0);
    return out;
  };
  const validated = (await timed('validate', h.validate, input)) as { valid: boolean };
  if (!validated.valid) throw new Error('bench request rejected');
  const invokedAt = new Date().toISOString();
  const state = validated as unknown as { conversation: Record<string, unknown> };
  const agent = (await timed('invoke_agent', h.invokeAgent, { Payload: { query: 'bench' } })) as { Payload: unknown };
  // What InvokeManagerAgent's ResultSelector and ResultPath make of the answer, then Classify's Parameters.
  const answered = {
    ...state,
    conversation: { ...state.conversation, pending_answer: { answer: agent.Payload, invoked_at: invokedAt } },
  };
  const classified = await timed('classify', h.classify, { state: answered, answered_at: new Date().toISOString() });
  const delivered = await timed('deliver', h.deliver, {
    state: classified,
    retry_count: 0,
    execution_name: executionName,
  });
  const exported = (await timed('export', h.export, { state: delivered, execution_name: executionName })) as {
    response: unknown;
  };
  return exported.response;
}

function executionInput(body: string): ExecutionInput {
  return {
    body,
    headers: pickForwardedHeaders({ 'content-type': 'application/json', 'user-agent': 'bench' }),
    request_id: randomUUID(),
    source_ip: '127.0.0.1',
    received_at: new Date().toISOString(),
  };
}

const jsonBytes = (v: unknown) => (v === undefined ? 0 : Buffer.byteLength(JSON.stringify(v)));
/** Bytes of a value as a JSON string embedded in another JSON document (how log events carry state data). */
const embeddedBytes = (v: unknown) => (v === undefined ? 0 : Buffer.byteLength(JSON.stringify(JSON.stringify(v))) - 2);

function statesOf(events: { type: string; state?: string; state_type?: string; input?: unknown; output?: unknown }[]) {
  const states: { name: string; type: string; input_bytes: number; output_bytes: number }[] = [];
  for (const e of events) {
    if (e.type === 'StateEntered')
      states.push({
        name: e.state ?? '?',
        type: e.state_type ?? '?',
        input_bytes: embeddedBytes(e.input),
        output_bytes: 0,
      });
    if (e.type === 'StateExited') {
      const open = [...states].reverse().find((s) => s.name === e.state);
      if (open) open.output_bytes = embeddedBytes(e.output);
    }
  }
  return states;
}

const CONVERSATION_ASL = path.join(PROJECT_ROOT, 'statemachine', 'conversation.asl.json');

function expressLog(run: Awaited<ReturnType<LocalWorkflow['run']>>, calls: ReturnType<typeof taskRecorder>['calls']) {
  const { States } = JSON.parse(readFileSync(CONVERSATION_ASL, 'utf8')) as { States: Record<string, { Type: string }> };
  const withData = renderExpressLog(States, run, calls, true);
  const withoutData = renderExpressLog(States, run, calls, false);
  // The tasks' own events (what a Task was given and what it returned, before Parameters / after ResultSelector act).
  const taskIo = /"type":"(LambdaFunctionScheduled|LambdaFunctionSucceeded|TaskScheduled|TaskSucceeded)"/;
  const taskIoBytes = (lines: string[]) => logBytes(lines.filter((line) => taskIo.test(line)));
  return {
    events: withData.length,
    bytes: logBytes(withData),
    bytes_without_data: logBytes(withoutData),
    task_io_data_bytes: taskIoBytes(withData) - taskIoBytes(withoutData),
  };
}

export async function measureEngineOverhead(
  options: OverheadOptions,
  log: (line: string) => void = () => undefined,
): Promise<OverheadResult[]> {
  const peers = await startInstantPeers();
  const capture = captureHandlerLogs();
  try {
    const { handlers, s3Stats } = await loadStubbedHandlers(peers.receiverUrl);
    const workflow = workflowFor(handlers);
    const results: OverheadResult[] = [];
    for (const size of options.sizes) {
      const request = makeRequest(REQUEST_SIZES[size]);
      const scale = Math.max(1, Math.round(Math.sqrt(REQUEST_SIZES[size] / 1024)));
      const iterations = Math.max(100, Math.round(options.iterations / scale));
      const warmup = Math.max(50, Math.round(options.warmup / scale));

      // Sanity + one execution's shape (events and payload sizes) for the cost model.
      const receivedBefore = { ...peers.counts };
      const recorder = taskRecorder();
      const probe = await workflow.run(executionInput(request.body), 'probe', { observer: recorder.observer });
      const deliveryBytes = peers.counts.receiver_bytes - receivedBefore.receiver_bytes;
      if (probe.status !== 'SUCCEEDED') throw new Error(`engine run ${probe.status}: ${probe.error} ${probe.cause}`);
      const taskEvents = probe.events.filter(
        (e) => e.state_type === 'Task' && (e.type === 'StateEntered' || e.type === 'StateExited'),
      );

      for (let i = 0; i < warmup; i++) {
        await workflow.run(executionInput(request.body), `warm-${i}`);
        await runPlain(handlers, executionInput(request.body), `warm-${i}`);
      }
      // Per-conversation logs and S3 bytes, from the plain chain.
      capture.reset();
      s3Stats.puts = s3Stats.bytes = 0;
      const stageSamples: Record<keyof StageTimes, number[]> = {
        validate: [],
        invoke_agent: [],
        classify: [],
        deliver: [],
        export: [],
      };
      const timer: StageTimer = (stage, ms) => stageSamples[stage].push(ms);
      const engineMs: number[] = [];
      const plainMs: number[] = [];
      const engineCpu: number[] = [];
      const plainCpu: number[] = [];
      const cpuMs = (from: NodeJS.CpuUsage) => {
        const d = process.cpuUsage(from);
        return (d.user + d.system) / 1000;
      };
      let plainLogs = { log_lines: 0, log_bytes: 0, emf_lines: 0, emf_bytes: 0 };
      let plainPuts = { puts: 0, bytes: 0 };
      for (let i = 0; i < iterations; i++) {
        const engineFirst = i % 2 === 0;
        for (const variant of engineFirst ? ['engine', 'plain'] : ['plain', 'engine']) {
          const input = executionInput(request.body);
          if (variant === 'engine') {
            const c0 = process.cpuUsage();
            const t0 = performance.now();
            const record = await workflow.run(input, input.request_id);
            engineMs.push(performance.now() - t0);
            engineCpu.push(cpuMs(c0));
            if (record.status !== 'SUCCEEDED') throw new Error(`engine run ${record.status}`);
          } else {
            const before = { ...capture.counts };
            const puts = { ...s3Stats };
            const c0 = process.cpuUsage();
            const t0 = performance.now();
            await runPlain(handlers, input, input.request_id, timer);
            plainMs.push(performance.now() - t0);
            plainCpu.push(cpuMs(c0));
            plainLogs = {
              log_lines: plainLogs.log_lines + capture.counts.log_lines - before.log_lines,
              log_bytes: plainLogs.log_bytes + capture.counts.log_bytes - before.log_bytes,
              emf_lines: plainLogs.emf_lines + capture.counts.emf_lines - before.emf_lines,
              emf_bytes: plainLogs.emf_bytes + capture.counts.emf_bytes - before.emf_bytes,
            };
            plainPuts = {
              puts: plainPuts.puts + s3Stats.puts - puts.puts,
              bytes: plainPuts.bytes + s3Stats.bytes - puts.bytes,
            };
          }
        }
      }
      const engine = summarize(engineMs);
      const plain = summarize(plainMs);
      const n = plainMs.length;
      const result: OverheadResult = {
        size,
        request_bytes: request.bytes,
        iterations,
        engine: roundAll(engine),
        plain: roundAll(plain),
        overhead_median_ms: Number((engine.median - plain.median).toFixed(3)),
        overhead_p99_ms: Number((engine.p99 - plain.p99).toFixed(3)),
        ratio_median: Number((engine.median / plain.median).toFixed(2)),
        ratio_p99: Number((engine.p99 / plain.p99).toFixed(2)),
        engine_cpu: roundAll(summarize(engineCpu)),
        plain_cpu: roundAll(summarize(plainCpu)),
        overhead_cpu_median_ms: Number((summarize(engineCpu).median - summarize(plainCpu).median).toFixed(3)),
        stages: {
          validate: roundAll(summarize(stageSamples.validate)),
          invoke_agent: roundAll(summarize(stageSamples.invoke_agent)),
          classify: roundAll(summarize(stageSamples.classify)),
          deliver: roundAll(summarize(stageSamples.deliver)),
          export: roundAll(summarize(stageSamples.export)),
        },
        per_conversation: {
          handler_log_lines: plainLogs.log_lines / n,
          handler_log_bytes: Math.round(plainLogs.log_bytes / n),
          emf_lines: plainLogs.emf_lines / n,
          emf_bytes: Math.round(plainLogs.emf_bytes / n),
          s3_puts: plainPuts.puts / n,
          s3_put_bytes: Math.round(plainPuts.bytes / n),
          engine_events: probe.events.length,
          engine_event_payload_bytes: probe.events.reduce(
            (sum, e) => sum + jsonBytes(e.input) + jsonBytes(e.output),
            0,
          ),
          task_states: taskEvents.filter((e) => e.type === 'StateEntered').length,
          task_payload_bytes: taskEvents.reduce((sum, e) => sum + jsonBytes(e.input) + jsonBytes(e.output), 0),
          states: statesOf(probe.events),
          express_log: expressLog(probe, recorder.calls),
          delivery_payload_bytes: deliveryBytes,
          answer_bytes: jsonBytes(probe.output),
          execution_input_bytes: embeddedBytes(probe.input),
          execution_output_bytes: embeddedBytes(probe.output),
        },
      };
      results.push(result);
      log(
        `  engine overhead ${size}: engine median ${result.engine.median} ms p99 ${result.engine.p99} ms; plain median ${result.plain.median} ms p99 ${result.plain.p99} ms; overhead ${result.overhead_median_ms} ms (x${result.ratio_median}); CPU overhead ${result.overhead_cpu_median_ms} ms`,
      );
    }
    return results;
  } finally {
    capture.restore();
    await peers.close();
  }
}
