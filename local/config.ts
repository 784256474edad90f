import path from 'node:path';
import { DELIVERY_URL_VARIABLES } from '../functions/domain/delivery.ts';
import { WEBHOOK_TYPES } from '../functions/domain/conversation.ts';
import type { RedriveResult } from './redelivery.ts';

/** Local runtime settings (DESIGN §6). Every one has an environment variable; explicit options win over both. */
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

export function resolveOptions(options: Partial<GatewayOptions> = {}, env: NodeJS.ProcessEnv = process.env): GatewayOptions {
  const port = options.port ?? Number(env.PORT ?? 3000);
  const s3Port = options.s3Port ?? Number(env.LOCAL_S3_PORT ?? 4569);
  for (const [name, value] of [['PORT', port], ['LOCAL_S3_PORT', s3Port]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 65535) throw new Error(`${name} must be a port number (0-65535), got "${value}"`);
  }
  return {
    port,
    host: options.host ?? env.HOST ?? '127.0.0.1',
    dataDir: path.resolve(options.dataDir ?? env.LOCAL_DATA_DIR ?? '.data'),
    s3Port,
    retryIntervalOverrides: options.retryIntervalOverrides,
    onExecution: options.onExecution,
    redeliveryPollMs: options.redeliveryPollMs ?? Number(env.REDELIVERY_POLL_MS ?? 1000),
    onRedelivery: options.onRedelivery,
  };
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
