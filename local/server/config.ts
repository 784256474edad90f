import path from 'node:path';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { DELIVERY_URL_VARIABLES, unsafeDeliveryUrl } from '../../functions/domain/delivery.ts';
import { parseSchedule } from '../../functions/domain/failed-delivery.ts';
import { parseSecretsBySource } from '../../functions/domain/signatures.ts';
import type { RedriveResult } from '../engine/redelivery.ts';
import { parseRateLimits } from './rate-limiter.ts';

/** Local runtime settings (docs/configuration.md). Every one has an environment variable; explicit options win over both. */
export interface GatewayOptions {
  /** HTTP port; 0 picks a free one (tests). Env PORT, default 3000. */
  port: number;
  host: string;
  /** Where local state lives. Env LOCAL_DATA_DIR, default `.data`. */
  dataDir: string;
  /** Embedded S3 port; 0 picks a free one. Env LOCAL_S3_PORT, default 4569. Ignored when AWS_ENDPOINT_URL_S3 is set. */
  s3Port: number;
  /** Tests only: shorten Retry waits (ms) per state name. */
  retryIntervalOverrides?: Record<string, number | number[]>;
  /** How often the automatic redelivery schedule looks for due deliveries. Env REDELIVERY_POLL_MS, default 1000; 0 turns it off. */
  redeliveryPollMs: number;
  /** Called after every automatic redelivery attempt (the CLI prints a line). */
  onRedelivery?: (result: RedriveResult) => void;
  /** Called after every POST /webhook (the CLI prints a line). */
  onExecution?: (summary: RequestSummary) => void;
}

export interface RequestSummary {
  http_status: number;
  conversation_id: string | null;
  detail: string;
  duration_ms: number;
}

export function resolveOptions(
  options: Partial<GatewayOptions> = {},
  env: NodeJS.ProcessEnv = process.env,
): GatewayOptions {
  const portOf = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) > 65535)
      throw new Error(`${name} must be a port number (0-65535), got "${raw}"`);
    return Number(raw);
  };
  const port = options.port ?? portOf('PORT', 3000);
  const s3Port = options.s3Port ?? portOf('LOCAL_S3_PORT', 4569);
  return {
    port,
    host: options.host ?? env.HOST ?? '127.0.0.1',
    dataDir: path.resolve(options.dataDir ?? env.LOCAL_DATA_DIR ?? '.data'),
    s3Port,
    retryIntervalOverrides: options.retryIntervalOverrides,
    onExecution: options.onExecution,
    redeliveryPollMs: options.redeliveryPollMs ?? pollOf(env.REDELIVERY_POLL_MS),
    onRedelivery: options.onRedelivery,
  };
}

function pollOf(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 1000;
  if (!/^\d+$/.test(raw))
    throw new Error(
      `REDELIVERY_POLL_MS must be a whole number of milliseconds (0 turns the schedule off), got "${raw}"`,
    );
  return Number(raw);
}

/**
 * Check every setting a handler or the gateway would only read later, so a typo stops `start` at once with its
 * name instead of failing conversations one by one.
 */
export function checkEnvironment(env: NodeJS.ProcessEnv = process.env): void {
  parseRateLimits(env.RATE_LIMITS);
  parseSchedule(env.REDELIVERY_SCHEDULE);
  parseSecretsBySource(env.INBOUND_WEBHOOK_SECRETS, 'INBOUND_WEBHOOK_SECRETS');
  parseSecretsBySource(env.DELIVERY_SIGNING_SECRETS, 'DELIVERY_SIGNING_SECRETS');
  for (const name of ['MANAGER_AGENT_TIMEOUT_MS', 'DELIVERY_TIMEOUT_MS', 'IDEMPOTENCY_TTL_SECONDS']) {
    const raw = env[name];
    if (raw !== undefined && raw !== '' && !/^[1-9]\d*$/.test(raw))
      throw new Error(`${name} must be a positive whole number, got "${raw}"`);
  }
  for (const type of WEBHOOK_TYPES) {
    const url = env[DELIVERY_URL_VARIABLES[type]];
    const unsafe = url ? unsafeDeliveryUrl(url) : null;
    if (unsafe) throw new Error(`${DELIVERY_URL_VARIABLES[type]}: ${unsafe}`);
  }
}

export const DEFAULT_BUCKET = 'revops-conversations';
export const DEFAULT_AGENT_FUNCTION = 'revops-manager-agent-wrapper';

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
    CONVERSATION_EXPORT_S3_BUCKET: DEFAULT_BUCKET,
    ENABLE_CONVERSATION_EXPORT: 'true',
    MANAGER_AGENT_FUNCTION_NAME: DEFAULT_AGENT_FUNCTION,
    LOG_LEVEL: 'INFO',
    POWERTOOLS_SERVICE_NAME: 'webhook-gateway',
    POWERTOOLS_METRICS_NAMESPACE: 'RevOps/WebhookGateway',
    POWERTOOLS_TRACE_ENABLED: 'false',
    S3_FORCE_PATH_STYLE: 'true',
  };
  if (s3Endpoint) defaults.AWS_ENDPOINT_URL_S3 = s3Endpoint;
  for (const type of WEBHOOK_TYPES) defaults[DELIVERY_URL_VARIABLES[type]] = `${gatewayUrl}/local/receiver/${type}`;
  return defaults;
}

/** Fill in what is unset; never overwrite what the user chose. Returns the names that were filled. */
export function applyDefaults(env: NodeJS.ProcessEnv, defaults: Record<string, string>): string[] {
  const filled: string[] = [];
  for (const [name, value] of Object.entries(defaults)) {
    if (env[name] === undefined || env[name] === '') {
      env[name] = value;
      filled.push(name);
    }
  }
  return filled;
}
