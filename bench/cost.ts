/**
 * 4. Cost per 1 M conversations on AWS (us-east-1), from the synthesized template (function memory and
 * architecture, Express logging level and execution data, tracing, API stage settings, bucket settings) and from
 * what one local conversation measurably produces (handler log and EMF bytes, S3 PUTs and their bytes, the
 * payloads each state carries). Durations on AWS are modelled from the locally measured handler times plus stated
 * I/O assumptions; every assumption is in the output.
 */
import type { OverheadResult } from './engine-overhead.ts';
import type { RequestSizeName } from './support/requests.ts';

/** List prices, us-east-1, as known to the author (not fetched: this machine has no internet access). */
export const PRICES = {
  as_of:
    "2025-01 (list prices as of the author's knowledge; re-check https://aws.amazon.com/pricing before relying on them)",
  region: 'us-east-1',
  lambda_request: 0.2 / 1e6,
  lambda_gb_s_arm64: 0.0000133334,
  lambda_gb_s_x86_64: 0.0000166667,
  express_request: 1.0 / 1e6,
  express_gb_s: 0.00001667, // first 1,000 GB-hours a month; 0.00000833 next 4,000; 0.00000456 beyond
  api_rest_request: 3.5 / 1e6, // first 333 M requests a month
  s3_put: 0.005 / 1000,
  s3_storage_gb_month: 0.023,
  logs_ingest_gb: 0.5, // CloudWatch Logs standard ingestion (also the first tier of vended logs)
  logs_storage_gb_month: 0.03,
  logs_data_protection_scanned_gb: 0.12, // CloudWatch Logs data protection (masking), per GB scanned at ingestion
  xray_trace_recorded: 5.0 / 1e6,
  custom_metric_month: 0.3,
  data_transfer_out_gb: 0.09,
} as const;

export const PRICE_TABLE: { item: string; price: string }[] = [
  { item: 'Lambda requests', price: '$0.20 per 1 M' },
  { item: 'Lambda duration, arm64', price: '$0.0000133334 per GB-s (x86_64: $0.0000166667)' },
  { item: 'Step Functions Express requests', price: '$1.00 per 1 M' },
  {
    item: 'Step Functions Express duration',
    price: '$0.00001667 per GB-s (first 1,000 GB-h/month), billed per 100 ms, 64 MB steps',
  },
  { item: 'API Gateway REST API requests', price: '$3.50 per 1 M (first 333 M/month)' },
  { item: 'S3 Standard PUT/COPY/POST/LIST', price: '$0.005 per 1,000' },
  { item: 'S3 Standard storage', price: '$0.023 per GB-month (first 50 TB)' },
  { item: 'CloudWatch Logs ingestion (standard; vended logs first tier)', price: '$0.50 per GB' },
  { item: 'CloudWatch Logs storage', price: '$0.03 per GB-month (compressed)' },
  { item: 'CloudWatch Logs data protection (masking)', price: '$0.12 per GB scanned' },
  { item: 'X-Ray traces recorded', price: '$5.00 per 1 M' },
  { item: 'CloudWatch custom metrics', price: '$0.30 per metric-month (first 10,000)' },
  { item: 'Data transfer out to the internet', price: '$0.09 per GB (first 10 TB/month)' },
];

export interface TemplateFacts {
  source: 'synthesized' | 'fallback';
  error?: string;
  functions: { stage: string | null; memory_mb: number; architecture: string; tracing: string; log_format: string }[];
  state_machines: {
    type: string;
    log_level: string;
    include_execution_data: boolean;
    tracing: boolean;
    conversation?: boolean;
  }[];
  api_stages: {
    tracing: boolean;
    access_log_format: string | null;
    method_settings: {
      logging_level: string;
      data_trace: boolean;
      throttling_rate_limit: number | null;
      throttling_burst_limit: number | null;
    }[];
  }[];
  buckets: { versioning: string; encryption: string; bucket_key: boolean; transitions: unknown[] }[];
  /** data_protection: the log group masks signatures and secrets, so CloudWatch scans what it ingests. */
  log_groups?: { retention_days: number | null; data_protection: boolean }[];
  /** X-Ray sampling rules the stack creates (none: X-Ray's default rule, 1 request/s and 5 % of the rest). */
  sampling_rules?: {
    service_type: string;
    service_name: string;
    priority: number;
    reservoir_size: number;
    fixed_rate: number;
  }[];
}

/** What infra/ synthesized to when this bench was written; used only when synthesis fails. */
export const FALLBACK_FACTS: TemplateFacts = {
  source: 'fallback',
  functions: ['validate', 'classify', 'deliver', 'export'].map((stage) => ({
    stage,
    memory_mb: 256,
    architecture: 'arm64',
    tracing: 'Active',
    log_format: 'Text',
  })),
  state_machines: [
    { type: 'EXPRESS', log_level: 'ALL', include_execution_data: true, tracing: true, conversation: true },
  ],
  api_stages: [
    {
      tracing: true,
      access_log_format: null,
      method_settings: [
        { logging_level: 'ERROR', data_trace: false, throttling_rate_limit: 50, throttling_burst_limit: 100 },
      ],
    },
  ],
  buckets: [
    {
      versioning: 'Enabled',
      encryption: 'AES256',
      bucket_key: false,
      transitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: 90 }],
    },
  ],
  log_groups: [{ retention_days: 30, data_protection: true }],
};

/** I/O on AWS that a local run cannot measure; every scenario differs only in the agent's latency. */
export interface IoAssumptions {
  name: string;
  /** The agent's own time (InvokeManagerAgent waits for it; no Lambda of ours does). */
  agent_ms: number;
  receiver_ms: number;
  /** Network round trip from the Deliver function to the receiver (HTTPS, connection reused), beyond its own time. */
  receiver_rtt_ms: number;
  /** Lambda Invoke API round trip from Step Functions to the agent, beyond the agent's own time. */
  agent_invoke_overhead_ms: number;
  /** The four PUTs run in parallel: one PUT's latency. */
  s3_put_ms: number;
  /** Step Functions → Lambda invoke latency per task state (counts toward the Express duration only). */
  task_dispatch_ms: number;
  /** Local CPU time × this = time on a 256 MB Lambda (a full vCPU comes at 1,769 MB). */
  cpu_scale_at_256mb: number;
  /** Conversations a month, evenly spread: with the sampling rules, how many X-Ray records. */
  conversations_per_month: number;
}

/** The agent latencies the cost is given for (ms); the receiver answers in 200 ms in each. */
export const AGENT_LATENCIES_MS = [0, 2_500, 10_000] as const;

const scenario = (agentMs: number): IoAssumptions => ({
  name: `agent ${agentMs / 1000} s, receiver 200 ms`,
  agent_ms: agentMs,
  receiver_ms: 200,
  receiver_rtt_ms: 20,
  agent_invoke_overhead_ms: 15,
  s3_put_ms: 25,
  task_dispatch_ms: 15,
  cpu_scale_at_256mb: 1769 / 256,
  conversations_per_month: 1e6,
});
export const SCENARIOS: IoAssumptions[] = AGENT_LATENCIES_MS.map(scenario);

/** X-Ray's default rule where the stack has none for its API stage: 1 request a second, then 5 %. */
const DEFAULT_SAMPLING = { reservoir_size: 1, fixed_rate: 0.05 };

/**
 * Share of conversations X-Ray records. The trace starts at the API stage (its sampling decision travels with the
 * request to the state machine and the functions), so the rule for `AWS::ApiGateway::Stage` (or `*`) with the lowest
 * priority number applies: each second its reservoir first, then the fixed rate of the rest.
 */
export function sampledShare(facts: TemplateFacts, conversationsPerMonth: number): number {
  const rule =
    [...(facts.sampling_rules ?? [])]
      .filter((r) => r.service_type === 'AWS::ApiGateway::Stage' || r.service_type === '*')
      .sort((a, b) => a.priority - b.priority)[0] ?? DEFAULT_SAMPLING;
  const perSecond = conversationsPerMonth / (30 * 86_400);
  const reserved = Math.min(perSecond, rule.reservoir_size);
  return (reserved + rule.fixed_rate * (perSecond - reserved)) / perSecond;
}

export interface CostLine {
  item: string;
  quantity_per_conversation: string;
  usd_per_million: number;
  share: number;
}

export interface CostResult {
  size: RequestSizeName;
  scenario: string;
  lines: CostLine[];
  total_usd_per_million: number;
  biggest: string;
  /** Bytes per conversation that each log source sends to CloudWatch Logs (estimates marked in the item names). */
  log_bytes: Record<string, number>;
  /** Every byte the conversation sends to CloudWatch Logs. */
  log_bytes_total: number;
  /** Modelled billed durations (ms) per stage and of the Express execution. */
  durations_ms: Record<string, number>;
  /** Changes to the stack or the code and what each would save per 1 M conversations (same model). */
  alternatives: { change: string; usd_per_million_saved: number; total_after: number }[];
  /** What the execution history costs and what everything else does: how many KB a cost target leaves it. */
  history: {
    /** The total without the execution history (its ingestion, scan and storage). */
    usd_without_history: number;
    /** One KB of history per conversation: USD per 1 M (ingestion, the masking scan when on, storage). */
    usd_per_kb: number;
    kb: number;
    events: number;
    /** Of `kb`, the events' envelopes: what the same events weigh without execution data. */
    envelope_kb: number;
  };
}

/** The log line of the Express execution history: the events of the local run rendered as Express logs them. */
export const EXPRESS_LOG_ITEM = 'Express execution history (measured)';
/** Lambda platform lines per invocation in Text format: START, END, REPORT (with the X-Ray line when tracing). */
const LAMBDA_PLATFORM_BYTES = 90 + 60 + 260;

/** Typical values for the $context variables of the access-log format (lengths matter, not values). */
const CONTEXT_SAMPLES: Record<string, string> = {
  requestId: '3f0e2a4c-1b2d-4e5f-8a9b-0c1d2e3f4a5b',
  extendedRequestId: 'AbCdEfGhIjKlMnO=',
  'identity.sourceIp': '203.0.113.10',
  'identity.userAgent': 'python-requests/2.32.3',
  requestTime: '29/Nov/2026:12:32:13 +0000',
  httpMethod: 'POST',
  resourcePath: '/webhook',
  status: '200',
  responseLength: '1024',
  responseLatency: '180',
  'integration.status': '200',
  'integration.latency': '175',
  'integration.error': '-',
  'error.responseType': '-',
  'error.message': '-',
  xrayTraceId: 'Root=1-67890abc-def0123456789abcdef0123',
};

export function accessLogLineBytes(format: string | null): number {
  if (!format) return 0;
  const line = format.replace(/\$context\.([A-Za-z.]+)/g, (_, name: string) => CONTEXT_SAMPLES[name] ?? 'x'.repeat(10));
  return Buffer.byteLength(line) + 1;
}

export function costPerMillion(facts: TemplateFacts, measured: OverheadResult, io: IoAssumptions): CostResult {
  const M = 1e6;
  const pc = measured.per_conversation;
  const lines: CostLine[] = [];
  const add = (item: string, quantity: string, usdPerConversation: number) =>
    lines.push({ item, quantity_per_conversation: quantity, usd_per_million: usdPerConversation * M, share: 0 });
  const fnOf = (stage: string) =>
    facts.functions.find((f) => f.stage === stage) ?? {
      memory_mb: 256,
      architecture: 'arm64',
      tracing: 'Active',
      log_format: 'Text',
    };

  // Lambda: one invocation of each stage function (4 on the happy path: the agent is invoked by the state machine
  // itself, so no function of ours waits for it; its own bill is the agent's owner's), memory from the template. Each stage's
  // locally measured median (instant peers, so nearly all of it is CPU; for Deliver it includes the loopback
  // receiver, an upper bound) is scaled to a 256 MB function's CPU share, plus the I/O it waits for on AWS.
  const cpu = (ms: number) => ms * io.cpu_scale_at_256mb;
  const stageMs: Record<string, number> = {
    validate: cpu(measured.stages.validate.median),
    classify: cpu(measured.stages.classify.median),
    deliver: cpu(measured.stages.deliver.median) + io.receiver_rtt_ms + io.receiver_ms,
    export: cpu(measured.stages.export.median) + io.s3_put_ms,
  };
  const billed: Record<string, number> = {};
  let gbs = 0;
  let lambdaUsd = 0;
  for (const [stage, ms] of Object.entries(stageMs)) {
    const f = fnOf(stage);
    billed[stage] = Math.max(1, Math.ceil(ms));
    const stageGbs = (f.memory_mb / 1024) * (billed[stage] / 1000);
    gbs += stageGbs;
    lambdaUsd += stageGbs * (f.architecture === 'arm64' ? PRICES.lambda_gb_s_arm64 : PRICES.lambda_gb_s_x86_64);
  }
  const invocations = Object.keys(stageMs).length;
  // The execution waits for the agent (InvokeManagerAgent): Express duration, not Lambda duration.
  const agentWaitMs = io.agent_ms + io.agent_invoke_overhead_ms;
  add('Lambda requests', `${invocations} invocations`, invocations * PRICES.lambda_request);
  add(
    'Lambda duration',
    `${Object.values(billed).reduce((a, b) => a + b, 0)} ms billed, ${gbs.toFixed(4)} GB-s`,
    lambdaUsd,
  );

  // Step Functions Express: one request; duration = the tasks plus dispatch, in 100 ms steps at 64 MB.
  const expressMs =
    Object.values(stageMs).reduce((a, b) => a + b, 0) + agentWaitMs + io.task_dispatch_ms * (invocations + 1);
  const expressBilledS = Math.ceil(expressMs / 100) / 10;
  billed.express = expressBilledS * 1000;
  add('Step Functions Express requests', '1 execution', PRICES.express_request);
  add(
    'Step Functions Express duration',
    `${expressBilledS.toFixed(1)} s billed × 64 MB`,
    0.0625 * expressBilledS * PRICES.express_gb_s,
  );

  add('API Gateway REST requests', '1 request', PRICES.api_rest_request);

  // S3: the Export stage's PUTs (measured) and the bytes they keep (a month of Standard storage).
  add('S3 PUT requests (export objects)', `${pc.s3_puts} PUTs`, pc.s3_puts * PRICES.s3_put);
  add(
    'S3 storage, per month kept',
    `${(pc.s3_put_bytes / 1024).toFixed(1)} KB`,
    (pc.s3_put_bytes / 1024 ** 3) * PRICES.s3_storage_gb_month,
  );

  // CloudWatch Logs ingestion.
  const machine =
    facts.state_machines.find((m) => m.conversation) ??
    facts.state_machines.find((m) => m.type === 'EXPRESS') ??
    facts.state_machines[0];
  // Measured: the events the local engine's run of the same ASL becomes in the Express log (level ALL).
  const logged = pc.express_log;
  const express = {
    events: machine && machine.log_level === 'ALL' ? logged.events : 0,
    bytes:
      machine && machine.log_level === 'ALL'
        ? machine.include_execution_data
          ? logged.bytes
          : logged.bytes_without_data
        : 0,
  };
  const stage = facts.api_stages[0];
  const logBytes: Record<string, number> = {
    [EXPRESS_LOG_ITEM]: express.bytes,
    'handler log lines (measured)': pc.handler_log_bytes,
    'EMF metric lines (measured)': pc.emf_bytes,
    'Lambda START/END/REPORT lines (estimate)': invocations * LAMBDA_PLATFORM_BYTES,
    'API access log line (estimate from the format)': accessLogLineBytes(stage?.access_log_format ?? null),
  };
  for (const [name, bytes] of Object.entries(logBytes)) {
    add(
      `CloudWatch Logs ingestion: ${name}`,
      name === EXPRESS_LOG_ITEM
        ? `${(bytes / 1024).toFixed(1)} KB in ${express.events} events${machine?.include_execution_data ? ' with data' : ', no data'}`
        : `${(bytes / 1024).toFixed(1)} KB`,
      (bytes / 1024 ** 3) * PRICES.logs_ingest_gb,
    );
  }
  const totalLogBytes = Object.values(logBytes).reduce((a, b) => a + b, 0);
  // Stored compressed (~6:1 for JSON), kept for the retention (30 days: ~1 month).
  add(
    'CloudWatch Logs storage, 30-day retention (~6:1 compression)',
    `${(totalLogBytes / 6 / 1024).toFixed(1)} KB`,
    (totalLogBytes / 6 / 1024 ** 3) * PRICES.logs_storage_gb_month,
  );
  // The secret-masking data protection policy scans every byte its log groups ingest (all of the gateway's).
  const masking = facts.log_groups?.some((g) => g.data_protection) ?? false;
  const maskingUsd = masking ? (totalLogBytes / 1024 ** 3) * PRICES.logs_data_protection_scanned_gb : 0;
  if (masking)
    add(
      'CloudWatch Logs data protection scan (signature masking)',
      `${(totalLogBytes / 1024).toFixed(1)} KB`,
      maskingUsd,
    );

  const traced = facts.functions.some((f) => f.tracing === 'Active') || machine?.tracing || stage?.tracing;
  const sampled = traced ? sampledShare(facts, io.conversations_per_month) : 0;
  if (traced)
    add(
      'X-Ray traces recorded',
      `${(sampled * 100).toFixed(1)} % of conversations (sampling rule, ${(io.conversations_per_month / 1e6).toFixed(0)} M/month)`,
      sampled * PRICES.xray_trace_recorded,
    );

  // Data out: the HTTP answer to the caller and the delivery to the receiver (both leave AWS).
  const outBytes = pc.answer_bytes + pc.delivery_payload_bytes;
  add(
    'Data transfer out (answer + delivery)',
    `${(outBytes / 1024).toFixed(1)} KB`,
    (outBytes / 1024 ** 3) * PRICES.data_transfer_out_gb,
  );

  const total = lines.reduce((a, l) => a + l.usd_per_million, 0);
  for (const l of lines) {
    l.share = Math.round((l.usd_per_million / total) * 1000) / 1000;
    l.usd_per_million = Math.round(l.usd_per_million * 100) / 100;
  }
  const biggest = [...lines].sort((a, b) => b.usd_per_million - a.usd_per_million)[0]!;
  const putsSaved = Math.max(0, pc.s3_puts - 1) * PRICES.s3_put * M;
  const perGb = (bytes: number) => (bytes / 1024 ** 3) * PRICES.logs_ingest_gb * M;
  // A logged byte costs its ingestion and, with the masking policy, its scan.
  const perLoggedGb = (bytes: number) =>
    perGb(bytes) * (masking ? 1 + PRICES.logs_data_protection_scanned_gb / PRICES.logs_ingest_gb : 1);
  const withoutData = machine?.include_execution_data ? logged.bytes_without_data : express.bytes;
  const historyUsdPerKb = perLoggedGb(1024) + (1024 / 6 / 1024 ** 3) * PRICES.logs_storage_gb_month * M;
  const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;
  const alternative = (change: string, saved: number) => ({
    change,
    usd_per_million_saved: Math.round(saved * 100) / 100,
    total_after: Math.round((total - saved) * 100) / 100,
  });
  return {
    size: measured.size,
    scenario: io.name,
    lines,
    total_usd_per_million: Math.round(total * 100) / 100,
    biggest: `${biggest.item} ($${biggest.usd_per_million.toFixed(2)}, ${(biggest.share * 100).toFixed(0)} %)`,
    log_bytes: logBytes,
    log_bytes_total: totalLogBytes,
    durations_ms: Object.fromEntries(Object.entries(billed).map(([k, v]) => [k, Math.round(v)])),
    history: {
      usd_without_history: round(total - (express.bytes / 1024) * historyUsdPerKb, 2),
      usd_per_kb: round(historyUsdPerKb, 3),
      kb: round(express.bytes / 1024, 1),
      events: express.events,
      envelope_kb: round(withoutData / 1024, 1),
    },
    alternatives: [
      alternative(
        'Express logging without execution data (includeExecutionData: false, level ALL)',
        perLoggedGb(express.bytes - withoutData),
      ),
      alternative(
        "every task given and returning nothing (upper bound of Parameters / ResultSelector: the Scheduled and Succeeded events' data)",
        machine?.include_execution_data ? perLoggedGb(logged.task_io_data_bytes) : 0,
      ),
      alternative(
        'Express logging at level ERROR (successful executions not logged; failures keep their data)',
        perLoggedGb(express.bytes),
      ),
      alternative(
        'no secret-masking data protection policy (signatures then readable in the execution history)',
        maskingUsd * M,
      ),
      alternative(
        `one export object per conversation instead of ${pc.s3_puts} (${pc.s3_puts - 1} fewer PUTs)`,
        putsSaved,
      ),
      alternative(
        'X-Ray off (Tracing.DISABLED on functions, workflow and API stage)',
        sampled * PRICES.xray_trace_recorded * M,
      ),
    ],
  };
}
