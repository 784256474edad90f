import path from 'node:path';
import * as v from 'valibot';
import {
  DELIVERY_TIMEOUT_LIMITS_MS,
  MIN_AGENT_TIMEOUT_MS,
  maxAsyncAgentTimeoutMs,
  maxSyncAgentTimeoutMs,
  RESPONSE_TIMEOUT_LIMITS_MS,
} from '../../functions/domain/budget.ts';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { DELIVERY_URL_VARIABLES, unsafeDeliveryUrl } from '../../functions/domain/delivery.ts';
import { parseInboundSecrets, parseSecretsBySource } from '../../functions/domain/signatures.ts';
import type { RateClock } from '../../functions/shared/receivers.ts';
import type { RedeliveryResult } from '../../functions/shared/redelivery.ts';
import { DEFAULTS, flag, readEnv, type Settings, settings } from '../../functions/shared/settings.ts';
import type { HoldListener } from '../engine/journal.ts';
import type { RecoveredExecution } from '../engine/recovery.ts';
import type { StageHandlers } from '../engine/workflows.ts';
import type { WriteRetry } from '../history/summary-index.ts';
import { PROJECT_ROOT } from '../paths.ts';
import { DEFAULT_HISTORY_DAYS, type SweepResult } from '../store/retention.ts';
import { isValidBucketName } from '../store/s3-api.ts';
import { parseApiKeys } from './api-keys.ts';
import { parseRateLimits } from './rate-limiter.ts';

/** Local runtime settings (docs/configuration.md). Every one has an environment variable; explicit options win over both. */
export interface GatewayOptions {
  /** HTTP port; 0 picks a free one (tests). Env PORT, default 3000. */
  port: number;
  host: string;
  /**
   * The gateway's public base URL behind a reverse proxy (Env PUBLIC_URL, default none): the base of every URL it hands
   * out (the 202's status_url and Location) and the one host name besides loopback's that its public routes accept
   * (docs/configuration.md, docs/security.md). Normalized by publicBase: no trailing `/`.
   */
  publicUrl?: PublicBase | null;
  /** Where local state lives. Env LOCAL_DATA_DIR, default the repository's `.data`. */
  dataDir: string;
  /** Embedded S3 port; 0 picks a free one. Env LOCAL_S3_PORT, default 4569. Ignored when AWS_ENDPOINT_URL_S3 is set. */
  s3Port: number;
  /** Tests only: shorten Retry waits (ms) per state name. */
  retryIntervalOverrides?: Record<string, number | number[]>;
  /** Tests only: replace a stage's handler (to inject a Lambda that fails). */
  stageOverrides?: Partial<StageHandlers>;
  /** Tests only: the rate limits' clock (ms since the epoch), so that no token refills while a test runs. */
  rateLimitClock?: () => number;
  /**
   * Tests only: how POST /webhook times the caller's wait (RESPONSE_TIMEOUT_MS), and GET /conversations/{id} its
   * answer (9 s, as on AWS): starts a timer that calls `fire` after `ms` and returns what cancels it. Default: setTimeout.
   */
  responseTimer?: (ms: number, fire: () => void) => () => void;
  /**
   * Tests only: the clock a conversation's time budget is counted on (functions/domain/budget.ts), so that what a
   * test proves about deadlines does not depend on how busy the machine is: the request's `received_at`, Validate's
   * budget, the time Deliver and Export see left before deliver_by and answer_by (and Deliver's wait for a
   * receiver's rate: `sleep`). Default: the real clock.
   */
  budgetClock?: RateClock;
  /** Tests only: how the summary index tries a failed write again (its timer), and where it says so. */
  summaryIndexRetry?: WriteRetry;
  /** How often the automatic redelivery schedule looks for due deliveries. Env REDELIVERY_POLL_MS, default 1000; 0 turns it off. */
  redeliveryPollMs: number;
  /** Called after every automatic redelivery attempt (the CLI prints a line). */
  onRedelivery?: (result: RedeliveryResult) => void;
  /** Called after every POST /webhook (the CLI prints a line). */
  onExecution?: (summary: RequestSummary) => void;
  /** How long a client may take to send its headers (408 after): HEADERS_TIMEOUT_MS; tests shorten it. */
  headersTimeoutMs: number;
  /** How long a client may take to send its whole request, body included (408 after): REQUEST_TIMEOUT_MS. */
  requestTimeoutMs: number;
  /** Days of local history kept (store/retention.ts). Env LOCAL_HISTORY_DAYS, default 30; 0 keeps everything. */
  historyDays: number;
  /** Called after each retention sweep that removed something (the CLI prints a line). */
  onSweep?: (result: SweepResult) => void;
  /**
   * Called once at start with what crash recovery finished (the CLI prints a line per conversation), and (`running`)
   * for each execution the data folder cut that the running gateway finished once the folder took writes again.
   */
  onRecovery?: (recovered: RecoveredExecution[], durationMs: number, when?: 'running') => void;
  /**
   * Whether the operator asked to stop (Ctrl-C) while the gateway starts: crash recovery takes up no other execution,
   * and the start ends with RecoveryStopped when some were left (local/engine/recovery.ts).
   */
  stopRequested?: () => boolean;
  /**
   * Tests only: honour `[hold:before:<State>]` / `[hold:after:<State>]` markers in a request body, holding that
   * execution there until the process is killed (the chaos test). Env LOCAL_TEST_HOLDS=true (docs/development.md).
   */
  onTestHold?: HoldListener;
}

export interface RequestSummary {
  http_status: number;
  conversation_id: string | null;
  detail: string;
  duration_ms: number;
}

const portNumber = v.pipe(
  v.string(),
  v.regex(/^\d+$/, 'must be a port number (0-65535)'),
  v.transform(Number),
  v.maxValue(65535, 'must be a port number (0-65535)'),
);

/**
 * Where the gateway may listen: on loopback (the default), or on every interface (to take requests from other
 * machines). Bound to one other address (a LAN address, 127.0.0.2) it could not reach itself on loopback, where its
 * sample agent and built-in receiver answer: every conversation would fail.
 */
const LISTEN_HOSTS = ['127.0.0.1', 'localhost', '::1', '0.0.0.0', '::'];

const MAX_TIMER_MS = 2_147_483_647;
const POLL_RULE = `must be a whole number of milliseconds up to ${MAX_TIMER_MS} (0 turns the schedule off)`;

const endpointUrl = v.pipe(
  v.string(),
  v.regex(/^https?:\/\/[^\s/?#]+/i, 'must be an http:// or https:// URL, e.g. http://127.0.0.1:3001'),
);

/** PUBLIC_URL as the gateway uses it: `base` for the URLs it hands out, `host` for the Host its public routes accept. */
export interface PublicBase {
  /** `https://example.com/gw`: scheme, host (lower case, the scheme's default port left out) and path prefix, no `/` last. */
  base: string;
  /** `example.com` (or `example.com:8443`): what a request's Host must name, compared without case. */
  host: string;
}

const PUBLIC_URL_RULE =
  'must be the http:// or https:// URL callers reach the gateway by, a path prefix allowed and nothing else (no user, query or fragment), e.g. https://gateway.example.com/gw';

/**
 * The base URL a reverse proxy (nginx, Caddy, a tunnel) serves the gateway under: `https://example.com/gw` names the
 * status of a conversation `https://example.com/gw/conversations/…`, as API Gateway names it under a custom domain's
 * base path mapping (infra/api-templates.ts). The proxy strips the prefix: the gateway's routes stay at `/webhook`.
 */
export function publicBase(value: string): PublicBase | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  const raw = value.replace(/^[a-z]+:\/\/[^/?#]*/i, '');
  if (!/^https?:$/.test(url.protocol) || url.username || url.password || url.search || url.hash) return null;
  if (/[?#]/.test(raw) || !/^[a-z]+:\/\/[^/?#@]+(?:\/|$)/i.test(value)) return null;
  const prefix = url.pathname.replace(/\/+$/, '');
  return { base: `${url.protocol}//${url.host}${prefix}`, host: url.host };
}

/** The local runtime's own variables (the handlers' are in functions/shared/settings.ts). */
const LocalEnv = v.object({
  PORT: v.optional(portNumber, '3000'),
  HOST: v.optional(
    v.picklist(
      LISTEN_HOSTS,
      `must be one of ${LISTEN_HOSTS.join(', ')} (0.0.0.0 and :: listen on every interface): the gateway calls its own sample agent and built-in receiver on loopback`,
    ),
    '127.0.0.1',
  ),
  PUBLIC_URL: v.optional(
    v.pipe(
      v.string(),
      v.check((value) => publicBase(value) !== null, PUBLIC_URL_RULE),
      v.transform((value) => publicBase(value)),
    ),
  ),
  LOCAL_DATA_DIR: v.optional(v.string()),
  LOCAL_S3_PORT: v.optional(portNumber, '4569'),
  REDELIVERY_POLL_MS: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d+$/, POLL_RULE),
      v.transform(Number),
      // Node's timers take at most 2^31 - 1 ms: a longer interval would fire every millisecond.
      v.maxValue(MAX_TIMER_MS, POLL_RULE),
    ),
    '1000',
  ),
  LOCAL_HISTORY_DAYS: v.optional(
    v.pipe(v.string(), v.regex(/^\d+$/, 'must be a whole number of days (0 keeps everything)'), v.transform(Number)),
    String(DEFAULT_HISTORY_DAYS),
  ),
  /** Tests only: honour `[hold:…]` markers (GatewayOptions.onTestHold). */
  LOCAL_TEST_HOLDS: v.optional(flag, 'false'),
  /** Read by `start` (log-sink.ts) and the sample agent (sample-agent.ts); checked here, so a typo stops the start. */
  LOCAL_LOG_TO_STDOUT: v.optional(flag, 'false'),
  SAMPLE_AGENT_SLOW_MS: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d+$/, `must be a whole number of milliseconds up to ${MAX_TIMER_MS}`),
      v.transform(Number),
      v.maxValue(MAX_TIMER_MS, `must be a whole number of milliseconds up to ${MAX_TIMER_MS}`),
    ),
  ),
  /** The SDK's endpoints (the agent's Lambda, an S3 of your own): without a scheme, every call would fail later. */
  AWS_ENDPOINT_URL_LAMBDA: v.optional(endpointUrl),
  AWS_ENDPOINT_URL_S3: v.optional(endpointUrl),
});

/** Slow clients (slowloris) are cut off: the headers within 10 s, the whole request within 30 s (docs/security.md). */
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 30_000;

/** Where local state lives without LOCAL_DATA_DIR: the project's `.data`, wherever the command runs. */
export const DEFAULT_DATA_DIR = path.join(PROJECT_ROOT, '.data');

/**
 * The headers in which `webhook-gateway deliveries` names the data folder it acts on (local/cli/deliveries.ts), both
 * URI-encoded: its path, and the gateway its gateway.pid names (local/server/operator-routes.ts compares that one).
 */
export const DATA_DIR_HEADER = 'x-local-data-dir';
export const DATA_DIR_HOLDER_HEADER = 'x-local-data-dir-gateway';

export function resolveOptions(
  options: Partial<GatewayOptions> = {},
  env: NodeJS.ProcessEnv = process.env,
): GatewayOptions {
  const local = readEnv(LocalEnv, env);
  return {
    port: options.port ?? local.PORT,
    host: options.host ?? local.HOST,
    publicUrl: options.publicUrl === undefined ? (local.PUBLIC_URL ?? null) : options.publicUrl,
    // A LOCAL_DATA_DIR given is relative to the cwd.
    dataDir: path.resolve(options.dataDir ?? local.LOCAL_DATA_DIR ?? DEFAULT_DATA_DIR),
    s3Port: options.s3Port ?? local.LOCAL_S3_PORT,
    retryIntervalOverrides: options.retryIntervalOverrides,
    stageOverrides: options.stageOverrides,
    rateLimitClock: options.rateLimitClock,
    responseTimer: options.responseTimer,
    budgetClock: options.budgetClock,
    summaryIndexRetry: options.summaryIndexRetry,
    onExecution: options.onExecution,
    redeliveryPollMs: options.redeliveryPollMs ?? local.REDELIVERY_POLL_MS,
    onRedelivery: options.onRedelivery,
    onRecovery: options.onRecovery,
    stopRequested: options.stopRequested,
    historyDays: options.historyDays ?? local.LOCAL_HISTORY_DAYS,
    headersTimeoutMs: options.headersTimeoutMs ?? HEADERS_TIMEOUT_MS,
    requestTimeoutMs: options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
    onSweep: options.onSweep,
    onTestHold:
      options.onTestHold ??
      (local.LOCAL_TEST_HOLDS
        ? (point, execution) => process.stderr.write(`webhook-gateway: test hold: ${execution} at ${point}\n`)
        : undefined),
  };
}

/**
 * The timeouts the synth refuses (docs/deploy.md, "Timeouts") stop `start` too: otherwise the budget would quietly cut
 * them (an agent timeout past what the response timeout leaves, a response timeout with no room for the agent).
 */
function checkTimeouts(s: Settings): void {
  const within = (name: string, value: number, limits: { min: number; max: number }) => {
    if (value < limits.min || value > limits.max)
      throw new Error(`${name} must be from ${limits.min} to ${limits.max} (ms), got ${value}`);
  };
  within('RESPONSE_TIMEOUT_MS', s.responseTimeoutMs, RESPONSE_TIMEOUT_LIMITS_MS);
  within('DELIVERY_TIMEOUT_MS', s.deliveryTimeoutMs, DELIVERY_TIMEOUT_LIMITS_MS);
  for (const [name, value] of [
    ['MANAGER_AGENT_TIMEOUT_MS', s.agentTimeoutMs],
    ['ASYNC_AGENT_TIMEOUT_MS', s.asyncAgentTimeoutMs],
  ] as const)
    if (value < MIN_AGENT_TIMEOUT_MS)
      throw new Error(`${name} must be at least ${MIN_AGENT_TIMEOUT_MS} (ms), got ${value}`);
  const syncMax = maxSyncAgentTimeoutMs(s.responseTimeoutMs);
  if (s.agentTimeoutMs > syncMax)
    throw new Error(
      `MANAGER_AGENT_TIMEOUT_MS (${s.agentTimeoutMs}) does not fit in RESPONSE_TIMEOUT_MS (${s.responseTimeoutMs}): at most ${syncMax}, or raise RESPONSE_TIMEOUT_MS (docs/deploy.md, "Timeouts")`,
    );
}

/** The log levels the synth takes for LOG_LEVEL (docs/deploy.md, `logLevel`), in any case. */
const LOG_LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR'];

/**
 * LOG_LEVEL as the handlers' logger reads it: upper case (Powertools ignores `debug` or any unknown level, and logs at
 * INFO). An unknown level stops the start.
 */
export function handlerLogLevel(env: NodeJS.ProcessEnv = process.env): string {
  const level = (env.LOG_LEVEL?.trim() || 'INFO').toUpperCase();
  if (!LOG_LEVELS.includes(level))
    throw new Error(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (any case), got "${env.LOG_LEVEL}"`);
  return level;
}

/**
 * Check every setting a handler or the gateway would only read later, so a typo stops `start` at once with its
 * name instead of failing conversations one by one.
 */
export function checkEnvironment(env: NodeJS.ProcessEnv = process.env): Settings {
  parseRateLimits(env.RATE_LIMITS);
  parseApiKeys(env.API_KEYS);
  handlerLogLevel(env);
  const checked = settings(env);
  checkTimeouts(checked);
  const asyncMax = maxAsyncAgentTimeoutMs(checked.deliveryTimeoutMs);
  if (checked.asyncAgentTimeoutMs > asyncMax)
    throw new Error(
      `ASYNC_AGENT_TIMEOUT_MS (${checked.asyncAgentTimeoutMs}) does not fit in the 5-minute Express limit with DELIVERY_TIMEOUT_MS ${checked.deliveryTimeoutMs}: at most ${asyncMax}`,
    );
  if (env.OUTBOUND_WEBHOOK_QUEUE_URL)
    throw new Error(
      "OUTBOUND_WEBHOOK_QUEUE_URL is not used by this gateway: each answer is delivered by the workflow (Deliver, with Retry) straight to its type's *_WEBHOOK_URL, and a failed one goes to the failed-delivery store; unset it (docs/configuration.md)",
    );
  // Checked by the embedded S3 too, whose message could not name the variable.
  if (env.CONVERSATION_EXPORT_S3_BUCKET && !isValidBucketName(env.CONVERSATION_EXPORT_S3_BUCKET))
    throw new Error(
      `CONVERSATION_EXPORT_S3_BUCKET must be an S3 bucket name (3 to 63 lower-case letters, digits, dots and hyphens), got "${env.CONVERSATION_EXPORT_S3_BUCKET}"`,
    );
  parseInboundSecrets(env.INBOUND_WEBHOOK_SECRETS);
  parseSecretsBySource(env.DELIVERY_SIGNING_SECRETS, 'DELIVERY_SIGNING_SECRETS');
  if (env.DELIVERY_SIGNING_SECRETS_FILE && (env.DELIVERY_SIGNING_SECRETS || env.DELIVERY_SIGNING_SECRETS_ARN))
    throw new Error(
      `DELIVERY_SIGNING_SECRETS_FILE and ${env.DELIVERY_SIGNING_SECRETS ? 'DELIVERY_SIGNING_SECRETS' : 'DELIVERY_SIGNING_SECRETS_ARN'} are both set: deliveries are signed with one of them; unset the other`,
    );
  for (const type of WEBHOOK_TYPES) {
    const url = checked.deliveryUrls[type];
    const unsafe = url ? unsafeDeliveryUrl(url) : null;
    if (unsafe) throw new Error(`${DELIVERY_URL_VARIABLES[type]}: ${unsafe}`);
  }
  return checked;
}

/**
 * The environment the handlers read, with local defaults filled in where the user set nothing. Handlers never ask
 * whether they run locally: they only see endpoints and settings.
 */
export function localEnvironmentDefaults(gatewayUrl: string, s3Endpoint: string | null): Record<string, string> {
  const defaults: Record<string, string> = {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_ENDPOINT_URL_LAMBDA: gatewayUrl,
    CONVERSATION_EXPORT_S3_BUCKET: DEFAULTS.exportBucket,
    ENABLE_CONVERSATION_EXPORT: 'true',
    MANAGER_AGENT_FUNCTION_NAME: DEFAULTS.agentFunctionName,
    LOG_LEVEL: 'INFO',
    POWERTOOLS_SERVICE_NAME: 'webhook-gateway',
    POWERTOOLS_METRICS_NAMESPACE: 'RevOps/WebhookGateway',
    POWERTOOLS_TRACE_ENABLED: 'false',
    // Powertools' default, said: unset, its isDevMode() throws and catches an Error (a stack captured) each time a
    // Metrics is made, two per delivery (functions/shared/events.ts; docs/performance.md §2, perf24).
    POWERTOOLS_DEV: 'false',
    S3_FORCE_PATH_STYLE: 'true',
  };
  if (s3Endpoint) defaults.AWS_ENDPOINT_URL_S3 = s3Endpoint;
  for (const type of WEBHOOK_TYPES) defaults[DELIVERY_URL_VARIABLES[type]] = `${gatewayUrl}/local/receiver/${type}`;
  return defaults;
}

/** Each default's variable as the user set it, or the default where the user set nothing. */
export function withDefaults(env: NodeJS.ProcessEnv, defaults: Record<string, string>): Record<string, string> {
  const chosen: Record<string, string> = {};
  for (const [name, value] of Object.entries(defaults)) chosen[name] = env[name] || value;
  return chosen;
}
