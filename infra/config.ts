import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Node } from 'constructs';
import {
  DELIVERY_TIMEOUT_LIMITS_MS,
  MIN_AGENT_TIMEOUT_MS,
  maxAsyncAgentTimeoutMs,
  maxSyncAgentTimeoutMs,
  minSyncResponseTimeoutMs,
  RESPONSE_TIMEOUT_LIMITS_MS,
} from '../functions/domain/budget.ts';
import { WEBHOOK_TYPES, type WebhookType } from '../functions/domain/conversation.ts';
import { unsafeDeliveryUrl } from '../functions/domain/delivery.ts';
import { parseSchedule } from '../functions/domain/failed-delivery.ts';
import { bySource } from '../functions/domain/source-identity.ts';
import { LAMBDA_TAIL_MS } from '../functions/shared/clients/request-limits.ts';
import { AGENT_FUNCTION, AGENT_FUNCTION_RULE, DEFAULTS } from '../functions/shared/settings.ts';
import { STACK_NAME } from './template-checks/name-limits.ts';

/**
 * Everything an operator can set for one deployment. Each field is a CDK context key of the same name
 * (`cdk.json` → "context", or `npx cdk deploy -c key=value`); props passed to the stack win over context.
 * The defaults below are the documented ones (docs/deploy.md has the same table); those the functions share come
 * from functions/shared/settings.ts.
 */
export interface GatewayConfig {
  /** CloudFormation stack name. */
  stackName: string;
  /** API Gateway stage; part of the URL (`https://…/prod/webhook`). */
  stageName: string;
  /** Name, `name:alias` or full ARN of the manager agent Lambda. The Invoke stage may call exactly this. */
  agentFunctionName: string;
  /** How long the InvokeManagerAgent stage waits for the agent (MANAGER_AGENT_TIMEOUT_MS). */
  agentTimeoutMs: number;
  /**
   * The agent's timeout in an asynchronous conversation (`Prefer: respond-async`, ASYNC_AGENT_TIMEOUT_MS): no caller
   * waits, so it may be longer, up to what the Express 5-minute limit leaves (functions/domain/budget.ts).
   */
  asyncAgentTimeoutMs: number;
  /** THREAD_TTL_DAYS: a thread unused this long is forgotten, a turn answered longer ago too (the thread table's TTL). */
  threadTtlDays: number;
  /**
   * Outbound URL per webhook type. `ssm:/path/to/param` reads a String SSM parameter at deploy time instead.
   * Empty: deliveries of that type go to the failed-delivery queue (a synth warning says so).
   */
  deliveryUrls: Record<WebhookType, string>;
  /** Timeout of one delivery attempt (DELIVERY_TIMEOUT_MS). */
  deliveryTimeoutMs: number;
  /** Name of an existing bucket to export into; empty: the stack creates one. */
  exportBucketName: string;
  /**
   * ARN of the customer-managed KMS key that existing bucket encrypts with by default (SSE-KMS); empty: none (SSE-S3,
   * or the AWS-managed `aws/s3` key, which need no grant). Whatever writes the exports may then GenerateDataKey with
   * it, whatever reads them Decrypt (S3's calls only). Only with exportBucketName.
   */
  exportBucketKmsKeyArn: string;
  /** ENABLE_CONVERSATION_EXPORT. */
  enableConversationExport: boolean;
  /** Days after which exports of 128 KB or more move to S3 Standard-IA (new bucket only); 0: never. */
  exportTransitionDays: number;
  /** Days after which exports are deleted (new bucket only); 0: kept forever. */
  exportExpirationDays: number;
  /** Retention of every log group of the stack (functions, workflow, API access log); a CloudWatch value. */
  logRetentionDays: number;
  /** LOG_LEVEL of the functions (Powertools). */
  logLevel: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
  /**
   * How much the workflows log and trace (OBSERVABILITY_PROFILES): `full` keeps every state's input and output in
   * the execution log and traces 5 % of conversations; `lean` logs the events without their data and traces 1 %.
   */
  observabilityProfile: ObservabilityProfileName;
  /** Stage-wide steady-state request rate (requests per second). */
  throttlingRateLimit: number;
  /** Stage-wide burst. */
  throttlingBurstLimit: number;
  /**
   * Access log and execution log (ERROR) of the API stage. API Gateway writes them with the account-wide role of
   * its account settings, which a new account does not have: a stage with logging fails to deploy there. Off by
   * default; on when the account has the role, or with createApiGatewayCloudWatchRole.
   */
  apiLogging: boolean;
  /**
   * Create that account-wide role (AWS::ApiGateway::Account: one per account and region, so it replaces whatever
   * role another stack set). Only when asked for; it turns apiLogging on.
   */
  createApiGatewayCloudWatchRole: boolean;
  /**
   * How long API Gateway waits for the conversation (the integration timeout, ms): the synchronous budget every
   * timeout of the workflow fits in (functions/domain/budget.ts). 29,000 by default, the REST API maximum unless
   * the account's quota for Regional APIs was raised.
   */
  apiIntegrationTimeoutMs: number;
  /**
   * Deploy without a delivery URL for some webhook types (say, a stack that only exports): their deliveries go
   * straight to the failed-delivery queue. Without this flag such a deploy is refused before any resource is made.
   */
  allowMissingDeliveryUrls: boolean;
  /** Reserved concurrency of the redelivery scheduler; 0 (the default): none, it uses the account's pool. */
  redeliverySchedulerConcurrency: number;
  /** REDELIVERY_SCHEDULE of the redelivery scheduler: the waits between automatic redeliveries. */
  redeliverySchedule: string;
  /** REQUIRE_SIGNED_WEBHOOKS of Validate: refuse (401) requests without a valid Standard Webhooks signature. */
  requireSignedWebhooks: boolean;
  /**
   * Per-source API Gateway usage plans, one API key each. Empty: POST /webhook needs no API key and only the
   * stage-wide throttling applies. Any entry: POST /webhook requires an API key (x-api-key).
   */
  sourceRateLimits: Record<string, SourceRateLimit>;
  /** Failed delivery attempts to one webhook type's receiver in 5 minutes that fire its DeliveryFailures-<type> alarm. */
  deliveryFailureAlarmCount: number;
  /** Threshold of the agent latency alarm: p99 of Webhook.agent_processing_time, in ms. */
  agentP99AlarmMs: number;
  /** Alarm notifications go to an SNS topic with this e-mail subscribed; empty: no topic, alarms only. */
  alarmEmail: string;
  /** ENDPOINT_FAILURE_THRESHOLD: consecutive failed attempts after which a receiver is failing (its circuit opens). */
  endpointFailureThreshold: number;
  /** ENDPOINT_DISABLE_AFTER_DAYS: days a receiver may fail before it is disabled (0: never). */
  endpointDisableAfterDays: number;
  /** ATTEMPT_LOG_RETENTION_DAYS: days the deliveries table keeps each attempt and its answer (TTL). */
  attemptLogRetentionDays: number;
  /** Athena cancels a query of the analytics workgroup that would scan more than this many GB (10 GB ≈ $0.05). */
  analyticsScanLimitGb: number;
  /** Days Athena's query results are kept in the analytics results bucket. */
  analyticsResultsExpirationDays: number;
}

/** One source system's usage plan. */
export interface SourceRateLimit {
  /** Steady-state requests per second for this source's API key. */
  rateLimit: number;
  /** Burst for this source's API key. */
  burstLimit: number;
  /** Requests per day (UTC); absent: no quota. */
  quotaPerDay?: number;
}

/** Context keys of the four delivery URLs, in the order of WEBHOOK_TYPES. */
const DELIVERY_URL_CONTEXT_KEYS: Record<WebhookType, string> = {
  deal_analysis: 'dealAnalysisWebhookUrl',
  data_analysis: 'dataAnalysisWebhookUrl',
  lead_analysis: 'leadAnalysisWebhookUrl',
  general: 'generalWebhookUrl',
};

export type ObservabilityProfileName = 'full' | 'lean';

/** What each observabilityProfile sets (docs/deploy.md, docs/performance.md#4-cost-per-1-m-conversations-us-east-1). */
export const OBSERVABILITY_PROFILES: Record<
  ObservabilityProfileName,
  { includeExecutionData: boolean; traceSampleRate: number }
> = {
  full: { includeExecutionData: true, traceSampleRate: 0.05 },
  lean: { includeExecutionData: false, traceSampleRate: 0.01 },
};

export const DEFAULT_CONFIG: GatewayConfig = {
  stackName: DEFAULTS.stackName,
  stageName: 'prod',
  agentFunctionName: DEFAULTS.agentFunctionName,
  agentTimeoutMs: DEFAULTS.agentTimeoutMs,
  asyncAgentTimeoutMs: DEFAULTS.asyncAgentTimeoutMs,
  threadTtlDays: DEFAULTS.threadTtlDays,
  deliveryUrls: { deal_analysis: '', data_analysis: '', lead_analysis: '', general: '' },
  deliveryTimeoutMs: DEFAULTS.deliveryTimeoutMs,
  exportBucketName: '',
  exportBucketKmsKeyArn: '',
  enableConversationExport: true,
  exportTransitionDays: 90,
  exportExpirationDays: 0,
  logRetentionDays: 30,
  logLevel: 'INFO',
  observabilityProfile: 'full',
  throttlingRateLimit: 50,
  throttlingBurstLimit: 100,
  apiLogging: false,
  createApiGatewayCloudWatchRole: false,
  apiIntegrationTimeoutMs: 29_000,
  allowMissingDeliveryUrls: false,
  redeliverySchedulerConcurrency: 0,
  redeliverySchedule: DEFAULTS.redeliverySchedule,
  requireSignedWebhooks: false,
  sourceRateLimits: {},
  deliveryFailureAlarmCount: 5,
  agentP99AlarmMs: 15_000,
  alarmEmail: '',
  endpointFailureThreshold: DEFAULTS.endpointFailureThreshold,
  endpointDisableAfterDays: DEFAULTS.endpointDisableAfterDays,
  attemptLogRetentionDays: DEFAULTS.attemptLogRetentionDays,
  analyticsScanLimitGb: 10,
  analyticsResultsExpirationDays: 30,
};

/** Service name and metrics namespace of the functions (the same as functions/shared/powertools.ts). */
export {
  METRICS_NAMESPACE as POWERTOOLS_METRICS_NAMESPACE,
  SERVICE_NAME as POWERTOOLS_SERVICE_NAME,
} from '../functions/domain/observability.ts';

/** The integration timeout's bounds and the longest delivery attempt (functions/domain/budget.ts says why). */
const MIN_INTEGRATION_TIMEOUT_MS = RESPONSE_TIMEOUT_LIMITS_MS.min;
const MAX_INTEGRATION_TIMEOUT_MS = RESPONSE_TIMEOUT_LIMITS_MS.max;
export const MAX_DELIVERY_TIMEOUT_MS = DELIVERY_TIMEOUT_LIMITS_MS.max;

/** The Validate Lambda's timeout (infra/constructs/conversation-functions.ts), ms. */
export const VALIDATE_FUNCTION_TIMEOUT_MS = 10_000;
/** The conversation workflow's one ASL definition, shared with the local engine (infra/constructs/conversation-workflow.ts). */
export const CONVERSATION_DEFINITION_FILE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'statemachine',
  'conversation.asl.json',
);

/**
 * The shortest apiIntegrationTimeoutMs the synchronous chain holds in, ms, from the template's own figures: the
 * Validate Lambda's timeout less the tail its calls keep (LAMBDA_TAIL_MS), and Classify's TimeoutSeconds as the
 * definition says (docs/deploy.md, "Timeouts"). Below it a request Validate passed late gets the agent's 1 s and still
 * runs past API Gateway's timeout: its own 504, without a conversation id.
 */
export function minIntegrationTimeoutMs(): number {
  const definition = JSON.parse(readFileSync(CONVERSATION_DEFINITION_FILE, 'utf8')) as {
    States: { Classify: { TimeoutSeconds: number } };
  };
  return minSyncResponseTimeoutMs(
    VALIDATE_FUNCTION_TIMEOUT_MS - LAMBDA_TAIL_MS,
    definition.States.Classify.TimeoutSeconds * 1000,
  );
}

const VALID_RETENTION_DAYS = new Set(Object.values(RetentionDays).filter((v): v is number => typeof v === 'number'));
const LOG_LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR'] as const;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function text(key: string, value: unknown, fallback: string): string {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'string') throw new ConfigError(`context ${key} must be a string`);
  return value.trim();
}

function integer(key: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined || value === null || value === '') return fallback;
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new ConfigError(
      `context ${key} must be an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`}, got ${String(value)}`,
    );
  return n;
}

function flag(key: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null || value === '') return fallback;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new ConfigError(`context ${key} must be true or false, got ${String(value)}`);
}

/** The same names the request accepts as source_system (functions/domain/request.ts). */
const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
/** An S3 general purpose bucket name (S3's bucket naming rules). */
const S3_BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/**
 * `{"source": {"rateLimit", "burstLimit", "quotaPerDay"?}}`, as an object (cdk.json) or JSON text (`-c`); sources
 * keyed by their canonical name (functions/domain/source-identity.ts).
 */
function sourceRateLimits(value: unknown, fallback: Record<string, SourceRateLimit>): Record<string, SourceRateLimit> {
  const key = 'sourceRateLimits';
  if (value === undefined || value === null || value === '') return fallback;
  let parsed: unknown = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value) as unknown;
    } catch {
      throw new ConfigError(`context ${key} must be a JSON object, got ${value}`);
    }
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new ConfigError(`context ${key} must be an object of source systems`);
  const out: Record<string, SourceRateLimit> = {};
  for (const [source, limits] of Object.entries(parsed as Record<string, unknown>)) {
    if (!SOURCE_NAME.test(source))
      throw new ConfigError(
        `context ${key}: "${source}" is not a source_system name (letters, digits, _ - ., at most 64)`,
      );
    const l = (limits ?? {}) as Record<string, unknown>;
    if (typeof l !== 'object' || Array.isArray(l))
      throw new ConfigError(`context ${key}.${source} must be {rateLimit, burstLimit, quotaPerDay?}`);
    const unknown = Object.keys(l).filter((k) => !['rateLimit', 'burstLimit', 'quotaPerDay'].includes(k));
    if (unknown.length > 0) throw new ConfigError(`context ${key}.${source}: unknown field ${unknown.join(', ')}`);
    const rateLimit = Number(l.rateLimit);
    if (!(rateLimit > 0)) throw new ConfigError(`context ${key}.${source}.rateLimit must be a number > 0`);
    const burstLimit = integer(`${key}.${source}.burstLimit`, l.burstLimit ?? 'missing', 0, 1);
    const quotaPerDay =
      l.quotaPerDay === undefined
        ? undefined
        : integer(`${key}.${source}.quotaPerDay`, l.quotaPerDay ?? 'missing', 0, 1);
    out[source] = { rateLimit, burstLimit, ...(quotaPerDay === undefined ? {} : { quotaPerDay }) };
  }
  // One API key and usage plan per source, named by its canonical name: `Crm.Sync` and `crm_sync` cannot be two.
  try {
    return bySource(out, `context ${key}`);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
}

/**
 * Read the configuration: explicit overrides first, then CDK context, then DEFAULT_CONFIG. Values from
 * `-c key=value` arrive as strings and are parsed here; anything invalid fails the synth with the key's name.
 */
export function resolveConfig(node: Node, overrides: Partial<GatewayConfig> = {}): GatewayConfig {
  const get = (key: string): unknown =>
    key in overrides ? (overrides as Record<string, unknown>)[key] : node.tryGetContext(key);
  const d = DEFAULT_CONFIG;
  const deliveryUrls = { ...d.deliveryUrls };
  for (const type of WEBHOOK_TYPES) {
    const key = DELIVERY_URL_CONTEXT_KEYS[type];
    const url = overrides.deliveryUrls?.[type] ?? text(key, node.tryGetContext(key), d.deliveryUrls[type]);
    // Deliver refuses such a URL on every attempt (functions/domain/delivery.ts): refuse it here, before a deploy.
    const parameter = ssmParameterName(url);
    const problem =
      url === 'ssm:'
        ? 'ssm: needs a parameter name'
        : parameter !== null
          ? unusableParameterName(parameter)
          : url && unsafeDeliveryUrl(url);
    if (problem) throw new ConfigError(`context ${key}: ${problem}`);
    deliveryUrls[type] = url;
  }
  const logLevel = text('logLevel', get('logLevel'), d.logLevel).toUpperCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    throw new ConfigError(`context logLevel must be one of ${LOG_LEVELS.join(', ')}`);
  const observabilityProfile = text('observabilityProfile', get('observabilityProfile'), d.observabilityProfile);
  if (!(observabilityProfile in OBSERVABILITY_PROFILES))
    throw new ConfigError(
      `context observabilityProfile must be one of ${Object.keys(OBSERVABILITY_PROFILES).join(', ')}, got ${observabilityProfile}`,
    );
  const config: GatewayConfig = {
    stackName: text('stackName', get('stackName'), d.stackName) || d.stackName,
    stageName: text('stageName', get('stageName'), d.stageName) || d.stageName,
    agentFunctionName: text('agentFunctionName', get('agentFunctionName'), d.agentFunctionName) || d.agentFunctionName,
    agentTimeoutMs: integer('agentTimeoutMs', get('agentTimeoutMs'), d.agentTimeoutMs, MIN_AGENT_TIMEOUT_MS),
    asyncAgentTimeoutMs: integer(
      'asyncAgentTimeoutMs',
      get('asyncAgentTimeoutMs'),
      d.asyncAgentTimeoutMs,
      MIN_AGENT_TIMEOUT_MS,
    ),
    threadTtlDays: integer('threadTtlDays', get('threadTtlDays'), d.threadTtlDays, 1),
    deliveryUrls,
    deliveryTimeoutMs: integer(
      'deliveryTimeoutMs',
      get('deliveryTimeoutMs'),
      d.deliveryTimeoutMs,
      DELIVERY_TIMEOUT_LIMITS_MS.min,
      MAX_DELIVERY_TIMEOUT_MS,
    ),
    exportBucketName: text('exportBucketName', get('exportBucketName'), d.exportBucketName),
    exportBucketKmsKeyArn: text('exportBucketKmsKeyArn', get('exportBucketKmsKeyArn'), d.exportBucketKmsKeyArn),
    enableConversationExport: flag(
      'enableConversationExport',
      get('enableConversationExport'),
      d.enableConversationExport,
    ),
    exportTransitionDays: integer('exportTransitionDays', get('exportTransitionDays'), d.exportTransitionDays, 0),
    exportExpirationDays: integer('exportExpirationDays', get('exportExpirationDays'), d.exportExpirationDays, 0),
    logRetentionDays: integer('logRetentionDays', get('logRetentionDays'), d.logRetentionDays, 1),
    logLevel: logLevel as GatewayConfig['logLevel'],
    observabilityProfile: observabilityProfile as ObservabilityProfileName,
    throttlingRateLimit: integer('throttlingRateLimit', get('throttlingRateLimit'), d.throttlingRateLimit, 1),
    throttlingBurstLimit: integer('throttlingBurstLimit', get('throttlingBurstLimit'), d.throttlingBurstLimit, 1),
    apiLogging: flag('apiLogging', get('apiLogging'), d.apiLogging),
    createApiGatewayCloudWatchRole: flag(
      'createApiGatewayCloudWatchRole',
      get('createApiGatewayCloudWatchRole'),
      d.createApiGatewayCloudWatchRole,
    ),
    apiIntegrationTimeoutMs: integer(
      'apiIntegrationTimeoutMs',
      get('apiIntegrationTimeoutMs'),
      d.apiIntegrationTimeoutMs,
      MIN_INTEGRATION_TIMEOUT_MS,
      MAX_INTEGRATION_TIMEOUT_MS,
    ),
    allowMissingDeliveryUrls: flag(
      'allowMissingDeliveryUrls',
      get('allowMissingDeliveryUrls'),
      d.allowMissingDeliveryUrls,
    ),
    redeliverySchedulerConcurrency: integer(
      'redeliverySchedulerConcurrency',
      get('redeliverySchedulerConcurrency'),
      d.redeliverySchedulerConcurrency,
      0,
    ),
    redeliverySchedule:
      text('redeliverySchedule', get('redeliverySchedule'), d.redeliverySchedule) || d.redeliverySchedule,
    requireSignedWebhooks: flag('requireSignedWebhooks', get('requireSignedWebhooks'), d.requireSignedWebhooks),
    sourceRateLimits: sourceRateLimits(get('sourceRateLimits'), d.sourceRateLimits),
    deliveryFailureAlarmCount: integer(
      'deliveryFailureAlarmCount',
      get('deliveryFailureAlarmCount'),
      d.deliveryFailureAlarmCount,
      1,
    ),
    agentP99AlarmMs: integer('agentP99AlarmMs', get('agentP99AlarmMs'), d.agentP99AlarmMs, 1),
    alarmEmail: text('alarmEmail', get('alarmEmail'), d.alarmEmail),
    endpointFailureThreshold: integer(
      'endpointFailureThreshold',
      get('endpointFailureThreshold'),
      d.endpointFailureThreshold,
      1,
    ),
    endpointDisableAfterDays: integer(
      'endpointDisableAfterDays',
      get('endpointDisableAfterDays'),
      d.endpointDisableAfterDays,
      0,
    ),
    attemptLogRetentionDays: integer(
      'attemptLogRetentionDays',
      get('attemptLogRetentionDays'),
      d.attemptLogRetentionDays,
      1,
    ),
    analyticsScanLimitGb: integer('analyticsScanLimitGb', get('analyticsScanLimitGb'), d.analyticsScanLimitGb, 1),
    analyticsResultsExpirationDays: integer(
      'analyticsResultsExpirationDays',
      get('analyticsResultsExpirationDays'),
      d.analyticsResultsExpirationDays,
      1,
    ),
  };
  if (!VALID_RETENTION_DAYS.has(config.logRetentionDays)) {
    throw new ConfigError(
      `context logRetentionDays must be a CloudWatch Logs retention (1, 3, 5, 7, 14, 30, 60, 90, …), got ${config.logRetentionDays}`,
    );
  }
  if (config.exportTransitionDays > 0 && config.exportTransitionDays < 30) {
    throw new ConfigError('context exportTransitionDays must be 0 (off) or at least 30 (S3 Standard-IA minimum)');
  }
  if (
    config.exportExpirationDays > 0 &&
    config.exportTransitionDays > 0 &&
    config.exportExpirationDays <= config.exportTransitionDays
  ) {
    throw new ConfigError('context exportExpirationDays must be greater than exportTransitionDays');
  }
  try {
    parseSchedule(config.redeliverySchedule);
  } catch (error) {
    throw new ConfigError(`context redeliverySchedule: ${(error as Error).message}`);
  }
  if (config.alarmEmail && !EMAIL.test(config.alarmEmail))
    throw new ConfigError(`context alarmEmail must be an e-mail address, got ${config.alarmEmail}`);
  if (config.exportBucketName && !(S3_BUCKET.test(config.exportBucketName) && !config.exportBucketName.includes('..')))
    throw new ConfigError(
      `context exportBucketName must be the name of an S3 bucket (3-63 lowercase letters, digits, . and -; not s3:// or an ARN), got ${config.exportBucketName}`,
    );
  const keyProblem = kmsKeyArnProblem(config);
  if (keyProblem) throw new ConfigError(`context exportBucketKmsKeyArn ${keyProblem}`);
  if (!AGENT_FUNCTION.test(config.agentFunctionName))
    throw new ConfigError(`context agentFunctionName ${AGENT_FUNCTION_RULE}, got ${config.agentFunctionName}`);
  if (!/^[A-Za-z0-9_]+$/.test(config.stageName))
    throw new ConfigError('context stageName may contain only letters, digits and _');
  if (!STACK_NAME.test(config.stackName)) {
    throw new ConfigError(
      `context stackName must be 1-128 letters, digits and hyphens, starting with a letter (CloudFormation), got ${config.stackName}`,
    );
  }
  if (config.createApiGatewayCloudWatchRole) config.apiLogging = true;
  const minIntegrationMs = minIntegrationTimeoutMs();
  if (config.apiIntegrationTimeoutMs < minIntegrationMs) {
    throw new ConfigError(
      `context apiIntegrationTimeoutMs (${config.apiIntegrationTimeoutMs}) is shorter than the synchronous chain needs: ` +
        `use at least ${minIntegrationMs} (Validate's Lambda timeout less its ${LAMBDA_TAIL_MS} ms tail, a 1 s agent and its throttling retries, ` +
        `Classify's TimeoutSeconds, then the reserves of the S3-refused path and API Gateway's margin; docs/deploy.md, "Timeouts")`,
    );
  }
  const maxAgentMs = maxSyncAgentTimeoutMs(config.apiIntegrationTimeoutMs);
  if (config.agentTimeoutMs > maxAgentMs) {
    throw new ConfigError(
      `context agentTimeoutMs (${config.agentTimeoutMs}) does not fit in apiIntegrationTimeoutMs (${config.apiIntegrationTimeoutMs}): ` +
        `a synchronous caller could get API Gateway's own 504. Use at most ${maxAgentMs}, or raise apiIntegrationTimeoutMs (docs/deploy.md, "Timeouts")`,
    );
  }
  const maxAsyncMs = maxAsyncAgentTimeoutMs(config.deliveryTimeoutMs);
  if (config.asyncAgentTimeoutMs > maxAsyncMs) {
    throw new ConfigError(
      `context asyncAgentTimeoutMs (${config.asyncAgentTimeoutMs}) does not fit in an Express execution (5 minutes) with its deliveries: use at most ${maxAsyncMs} (docs/deploy.md, "Timeouts")`,
    );
  }
  return config;
}

/**
 * A KMS key's ARN (`arn:<partition>:kms:<region>:<account>:key/<key id>`: a key id, or a multi-Region key's `mrk-…`).
 * An IAM policy grants the use of a key only by its ARN: a statement naming an alias applies to the alias, not to
 * the key behind it (AWS KMS developer guide, "Use aliases to control access to KMS keys").
 */
const KMS_KEY_ARN =
  /^arn:aws(-[a-z]+)*:kms:[a-z]{2}(-[a-z]+)+-\d:\d{12}:key\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$/;

/** Why exportBucketKmsKeyArn cannot be used as given, or null (also when it is not set). */
function kmsKeyArnProblem(config: GatewayConfig): string | null {
  const arn = config.exportBucketKmsKeyArn;
  if (!arn) return null;
  if (!config.exportBucketName)
    return 'is the key of an existing bucket (exportBucketName): the bucket the stack creates is encrypted with SSE-S3, no key';
  if (/^arn:[^:]+:kms:[^:]*:[^:]*:alias\//.test(arn) || arn.startsWith('alias/'))
    return `must be the key's ARN, not an alias (an IAM policy naming an alias does not grant the use of its key: aws kms describe-key --key-id ${arn} --query KeyMetadata.Arn), got ${arn}`;
  if (!KMS_KEY_ARN.test(arn)) return `must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>), got ${arn}`;
  return null;
}

/** Every context key this stack reads: the fields of GatewayConfig, the delivery URLs under their own keys. */
export const CONFIG_CONTEXT_KEYS: readonly string[] = [
  ...Object.keys(DEFAULT_CONFIG).filter((key) => key !== 'deliveryUrls'),
  ...Object.values(DELIVERY_URL_CONTEXT_KEYS),
];

/**
 * A context key shaped like this stack's own (a plain camelCase word) that it does not read is a typo or a setting
 * of another version: refused rather than ignored, so `-c logRetentionDay=7` does not deploy 30 days. CDK's own keys
 * (`@aws-cdk/…` feature flags, `aws:cdk:…`, `cli-telemetry`, lookups such as `availability-zones:…`) are left alone.
 */
export function checkContextKeys(context: Record<string, unknown>): void {
  const known = new Set(CONFIG_CONTEXT_KEYS);
  for (const key of Object.keys(context)) {
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(key) || known.has(key)) continue;
    const near = CONFIG_CONTEXT_KEYS.find((k) => k.toLowerCase() === key.toLowerCase()) ?? closestKey(key);
    throw new ConfigError(
      `context ${key} is not a setting of this stack${near ? ` (did you mean ${near}?)` : ''}: docs/deploy.md, "Configuration", lists them`,
    );
  }
}

/** The known key at most 3 edits from `key`, if any. */
function closestKey(key: string): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of CONFIG_CONTEXT_KEYS) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance <= 3 && (!best || distance < best.distance)) best = { key: candidate, distance };
  }
  return best?.key;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** Context keys of the webhook types without a delivery URL (neither a URL nor an `ssm:` parameter). */
export function missingDeliveryUrlKeys(config: GatewayConfig): string[] {
  return WEBHOOK_TYPES.filter((type) => !config.deliveryUrls[type]).map((type) => DELIVERY_URL_CONTEXT_KEYS[type]);
}

/**
 * Why CloudFormation could not read `name` from Parameter Store, or null: SSM's naming rules (docs/deploy.md,
 * "Configuration": a name of letters, digits, `_ . -`, a hierarchy of `/`-separated levels that starts with `/`, at
 * most 15 levels and 1011 characters). Such a name would stop the deploy at CloudFormation's first read of it.
 */
function unusableParameterName(name: string): string | null {
  const reason = !/^\/?[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(name)
    ? 'letters, digits and _ . - only, levels separated by single /'
    : name.includes('/') && !name.startsWith('/')
      ? 'a name with levels starts with /'
      : name.split('/').filter(Boolean).length > 15
        ? 'at most 15 levels'
        : name.length > 1011
          ? 'at most 1011 characters'
          : null;
  return reason && `ssm:${name} is not an SSM parameter name (${reason})`;
}

/** `ssm:/name` → the SSM parameter name; anything else → null (a literal URL). */
export function ssmParameterName(value: string): string | null {
  return value.startsWith('ssm:') ? value.slice('ssm:'.length) : null;
}
