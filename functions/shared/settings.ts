/**
 * The gateway's settings: every environment variable the handlers read, its default and its rule, defined once
 * (docs/configuration.md). The handlers read them per invocation (`settings()`), the local runtime checks them before
 * it starts, and the CDK app takes its defaults from `DEFAULTS`, so a name or a default never differs between them.
 * A bad value is refused with the variable's name (SettingsError).
 */
import * as v from 'valibot';
import { WEBHOOK_TYPES, type WebhookType } from '../domain/conversation.ts';
import { DELIVERY_URL_VARIABLES } from '../domain/delivery.ts';
import { type BreakerPolicy, DEFAULT_DISABLE_AFTER_DAYS, DEFAULT_FAILURE_THRESHOLD } from '../domain/endpoints.ts';
import { DEFAULT_REDELIVERY_SCHEDULE, parseSchedule } from '../domain/failed-delivery.ts';
import { DEFAULT_IDEMPOTENCY_TTL_SECONDS, MIN_IDEMPOTENCY_TTL_SECONDS } from '../domain/idempotency.ts';
import { parseApiKeySources } from '../domain/source-identity.ts';

export const DEFAULTS = {
  /** CONVERSATION_EXPORT_S3_BUCKET (locally; on AWS the stack names its bucket). */
  exportBucket: 'revops-conversations',
  agentFunctionName: 'revops-manager-agent-wrapper',
  agentTimeoutMs: 20_000,
  /**
   * The agent's timeout in an asynchronous conversation (`Prefer: respond-async`): no caller waits, so it may be
   * longer, up to what the Express limit leaves (functions/domain/budget.ts, maxAsyncAgentTimeoutMs).
   */
  asyncAgentTimeoutMs: 120_000,
  deliveryTimeoutMs: 3_000,
  /**
   * How long the caller waits for its answer (on AWS, API Gateway's integration timeout): Validate's budget keeps
   * every later state inside it (functions/domain/budget.ts).
   */
  responseTimeoutMs: 29_000,
  redeliverySchedule: DEFAULT_REDELIVERY_SCHEDULE,
  idempotencyTtlSeconds: DEFAULT_IDEMPOTENCY_TTL_SECONDS,
  /** THREAD_TTL_DAYS: a thread unused this long is forgotten (DynamoDB TTL on AWS). */
  threadTtlDays: 30,
  /** ENDPOINT_FAILURE_THRESHOLD: consecutive failures after which a receiver is failing (the circuit opens). */
  endpointFailureThreshold: DEFAULT_FAILURE_THRESHOLD,
  /** ENDPOINT_DISABLE_AFTER_DAYS: days of failure after which a receiver is disabled (0: never). */
  endpointDisableAfterDays: DEFAULT_DISABLE_AFTER_DAYS,
  /** ATTEMPT_LOG_RETENTION_DAYS: how long the attempt log keeps each attempt (DynamoDB TTL). */
  attemptLogRetentionDays: 90,
  /** The CloudFormation stack (CDK) and the stack `--aws` commands read when no --stack is given. */
  stackName: 'WebhookConversationGateway',
} as const;

export class SettingsError extends Error {
  override name = 'SettingsError';
}

type Env = Record<string, string | undefined>;

/** A positive whole number given as text (milliseconds, seconds, a port above 0). */
export const positiveInteger = v.pipe(
  v.string(),
  v.regex(/^[1-9]\d*$/, 'must be a positive whole number'),
  v.transform(Number),
);
/** A whole number, 0 or more, given as text. */
const wholeNumber = v.pipe(v.string(), v.regex(/^\d+$/, 'must be a whole number (0 or more)'), v.transform(Number));
/** `true` or `false`, any case. */
export const flag = v.pipe(
  v.string(),
  v.transform((s) => s.toLowerCase()),
  v.picklist(['true', 'false'], 'must be true or false'),
  v.transform((s) => s === 'true'),
);
/**
 * What the agent may be named (MANAGER_AGENT_FUNCTION_NAME, context agentFunctionName; docs/deploy.md): a function
 * name, `name:alias` (or version), or a full function ARN; Lambda's naming rules. Anything else matches no function:
 * every agent call would fail (and on AWS, its invoke permission and Resource would name nothing).
 */
export const AGENT_FUNCTION =
  /^(arn:aws[a-z-]*:lambda:[a-z]{2}(-[a-z]+)+-\d:\d{12}:function:)?[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?$/;
export const AGENT_FUNCTION_RULE =
  'must be a Lambda function name (letters, digits, - and _, at most 64), name:alias or a full function ARN';
const schedule = v.pipe(
  v.string(),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    try {
      return parseSchedule(dataset.value);
    } catch (error) {
      addIssue({ message: (error as Error).message });
      return NEVER;
    }
  }),
);

/**
 * Read the variables `schema` names from `env`: unset and empty ones take their default, a bad one throws a
 * SettingsError naming it. Each entry of the schema is an environment variable.
 */
export function readEnv<const TEntries extends v.ObjectEntries>(
  schema: v.ObjectSchema<TEntries, undefined>,
  env: Env = process.env,
): v.InferOutput<v.ObjectSchema<TEntries, undefined>> {
  const picked: Record<string, string> = {};
  for (const name of Object.keys(schema.entries)) {
    const value = env[name]?.trim();
    if (value) picked[name] = value;
  }
  const result = v.safeParse(schema, picked);
  if (result.success) return result.output;
  const issue = result.issues[0];
  const name = String(issue.path?.[0]?.key ?? '');
  const value = picked[name];
  if (value === undefined) throw new SettingsError(`${name} is not set`);
  // A message that already names the variable (parseSchedule's) is complete as it is.
  throw new SettingsError(issue.message.startsWith(name) ? issue.message : `${name} ${issue.message}, got "${value}"`);
}

const HandlerEnv = v.object({
  CONVERSATION_EXPORT_S3_BUCKET: v.optional(v.string()),
  ENABLE_CONVERSATION_EXPORT: v.optional(flag, 'true'),
  MANAGER_AGENT_FUNCTION_NAME: v.optional(
    v.pipe(v.string(), v.regex(AGENT_FUNCTION, AGENT_FUNCTION_RULE)),
    DEFAULTS.agentFunctionName,
  ),
  MANAGER_AGENT_TIMEOUT_MS: v.optional(positiveInteger, String(DEFAULTS.agentTimeoutMs)),
  ASYNC_AGENT_TIMEOUT_MS: v.optional(positiveInteger, String(DEFAULTS.asyncAgentTimeoutMs)),
  DEAL_ANALYSIS_WEBHOOK_URL: v.optional(v.string()),
  DATA_ANALYSIS_WEBHOOK_URL: v.optional(v.string()),
  LEAD_ANALYSIS_WEBHOOK_URL: v.optional(v.string()),
  GENERAL_WEBHOOK_URL: v.optional(v.string()),
  DELIVERY_TIMEOUT_MS: v.optional(positiveInteger, String(DEFAULTS.deliveryTimeoutMs)),
  RESPONSE_TIMEOUT_MS: v.optional(positiveInteger, String(DEFAULTS.responseTimeoutMs)),
  REDELIVERY_SCHEDULE: v.optional(schedule, DEFAULTS.redeliverySchedule),
  REQUIRE_SIGNED_WEBHOOKS: v.optional(flag, 'false'),
  IDEMPOTENCY_TTL_SECONDS: v.optional(
    v.pipe(
      positiveInteger,
      v.minValue(
        MIN_IDEMPOTENCY_TTL_SECONDS,
        `must be at least ${MIN_IDEMPOTENCY_TTL_SECONDS} (seconds: a signed request replayed within its signature's 5-minute tolerance must find its key)`,
      ),
    ),
    String(DEFAULTS.idempotencyTtlSeconds),
  ),
  IDEMPOTENCY_TABLE_NAME: v.optional(v.string()),
  IDEMPOTENCY_DIR: v.optional(v.string()),
  STATUS_TABLE_NAME: v.optional(v.string()),
  STATUS_DIR: v.optional(v.string()),
  THREAD_TABLE_NAME: v.optional(v.string()),
  THREAD_DIR: v.optional(v.string()),
  THREAD_TTL_DAYS: v.optional(positiveInteger, String(DEFAULTS.threadTtlDays)),
  SOURCE_API_KEY_IDS: v.optional(v.string()),
  S3_FORCE_PATH_STYLE: v.optional(flag, 'false'),
  DELIVERIES_TABLE_NAME: v.optional(v.string()),
  DELIVERIES_DIR: v.optional(v.string()),
  DELIVERY_SIGNING_SECRETS_FILE: v.optional(v.string()),
  ENDPOINT_FAILURE_THRESHOLD: v.optional(positiveInteger, String(DEFAULTS.endpointFailureThreshold)),
  ENDPOINT_DISABLE_AFTER_DAYS: v.optional(wholeNumber, String(DEFAULTS.endpointDisableAfterDays)),
  ATTEMPT_LOG_RETENTION_DAYS: v.optional(positiveInteger, String(DEFAULTS.attemptLogRetentionDays)),
});

export interface Settings {
  /** No default for the handlers: on AWS the stack names its bucket; locally the runtime sets DEFAULTS.exportBucket. */
  exportBucket: string | undefined;
  exportEnabled: boolean;
  agentFunctionName: string;
  agentTimeoutMs: number;
  asyncAgentTimeoutMs: number;
  /** Each type's outbound webhook URL; null: not configured (its deliveries go to the failed-delivery store). */
  deliveryUrls: Record<WebhookType, string | null>;
  deliveryTimeoutMs: number;
  responseTimeoutMs: number;
  redeliverySchedule: readonly number[];
  requireSignedWebhooks: boolean;
  idempotencyTtlSeconds: number;
  /** Where idempotency keys are kept: a DynamoDB table (AWS) or a folder (local); neither: not kept. */
  idempotencyTableName: string | undefined;
  idempotencyDir: string | undefined;
  /** Where the status of asynchronous conversations is kept: a DynamoDB table (AWS) or a folder (local). */
  statusTableName: string | undefined;
  statusDir: string | undefined;
  /** Where the turns of threads are kept: a DynamoDB table (AWS) or a folder (local); neither: threads are off. */
  threadTableName: string | undefined;
  threadDir: string | undefined;
  /** How long an unused thread is kept (days since its last turn). */
  threadTtlDays: number;
  /** API key id → its source_system, canonical (SOURCE_API_KEY_IDS; empty when no API keys are in use). */
  apiKeySources: Record<string, string>;
  s3ForcePathStyle: boolean;
  /**
   * Where the delivery attempt log and the receivers' configuration and health are kept: a DynamoDB table (AWS) or a
   * folder (local); neither: no attempt log, no run-time receiver configuration, no circuit breaker.
   */
  deliveriesTableName: string | undefined;
  deliveriesDir: string | undefined;
  /** Locally, the file holding the delivery signing secrets (re-read when it changes): `endpoints set --secret`. */
  deliverySigningSecretsFile: string | undefined;
  breaker: BreakerPolicy;
  attemptLogRetentionDays: number;
}

const HANDLER_VARIABLES = Object.keys(HandlerEnv.entries);
/** The last settings read, and the value each of HANDLER_VARIABLES had then. */
let last: { values: (string | undefined)[]; read: Settings } | undefined;

/**
 * The handlers' settings from `env` (the process environment by default). Cheap: read it per invocation. The last
 * read is kept while every variable it reads has the same value (a comparison, no parse), so a variable the CLI or
 * a test changes is seen at the next call; the settings given out are frozen, being shared.
 */
export function settings(env: Env = process.env): Settings {
  if (last && HANDLER_VARIABLES.every(sameAsLast, env)) return last.read;
  const values = HANDLER_VARIABLES.map((name) => env[name]);
  const read = readSettings(env);
  last = { values, read };
  return read;
}

function sameAsLast(this: Env, name: string, i: number): boolean {
  return this[name] === last?.values[i];
}

function readSettings(env: Env): Settings {
  const e = readEnv(HandlerEnv, env);
  const deliveryUrls = {} as Record<WebhookType, string | null>;
  const urls = e as Record<string, unknown>;
  for (const type of WEBHOOK_TYPES)
    deliveryUrls[type] = (urls[DELIVERY_URL_VARIABLES[type]] as string | undefined) ?? null;
  Object.freeze(deliveryUrls);
  return Object.freeze({
    exportBucket: e.CONVERSATION_EXPORT_S3_BUCKET,
    exportEnabled: e.ENABLE_CONVERSATION_EXPORT,
    agentFunctionName: e.MANAGER_AGENT_FUNCTION_NAME,
    agentTimeoutMs: e.MANAGER_AGENT_TIMEOUT_MS,
    asyncAgentTimeoutMs: e.ASYNC_AGENT_TIMEOUT_MS,
    deliveryUrls,
    deliveryTimeoutMs: e.DELIVERY_TIMEOUT_MS,
    responseTimeoutMs: e.RESPONSE_TIMEOUT_MS,
    redeliverySchedule: Object.freeze(e.REDELIVERY_SCHEDULE),
    requireSignedWebhooks: e.REQUIRE_SIGNED_WEBHOOKS,
    idempotencyTtlSeconds: e.IDEMPOTENCY_TTL_SECONDS,
    idempotencyTableName: e.IDEMPOTENCY_TABLE_NAME,
    idempotencyDir: e.IDEMPOTENCY_DIR,
    statusTableName: e.STATUS_TABLE_NAME,
    statusDir: e.STATUS_DIR,
    threadTableName: e.THREAD_TABLE_NAME,
    threadDir: e.THREAD_DIR,
    threadTtlDays: e.THREAD_TTL_DAYS,
    apiKeySources: Object.freeze(parseApiKeySources(e.SOURCE_API_KEY_IDS)),
    s3ForcePathStyle: e.S3_FORCE_PATH_STYLE,
    deliveriesTableName: e.DELIVERIES_TABLE_NAME,
    deliveriesDir: e.DELIVERIES_DIR,
    deliverySigningSecretsFile: e.DELIVERY_SIGNING_SECRETS_FILE,
    breaker: Object.freeze({
      failureThreshold: e.ENDPOINT_FAILURE_THRESHOLD,
      disableAfterMs: e.ENDPOINT_DISABLE_AFTER_DAYS * 86_400_000,
    }),
    attemptLogRetentionDays: e.ATTEMPT_LOG_RETENTION_DAYS,
  });
}
