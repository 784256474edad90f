import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { Charset, LogLevel as EsbuildLogLevel, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { STACK_NAME_VARIABLE } from '../../functions/domain/observability.ts';
import { POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_SERVICE_NAME } from '../config.ts';
import { secretMaskingPolicy } from './secret-masking-policy.ts';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The workflow's Lambda stages, each `functions/<stage>/handler.ts` exporting `handler`. */
export const STAGES = ['validate', 'classify', 'deliver', 'export'] as const;
export type Stage = (typeof STAGES)[number];
/**
 * Stages whose I/O is not worth the Tracer's cold start: they run with POWERTOOLS_TRACE_ENABLED=false and are built
 * without the Tracer (the X-Ray SDK, ~120 KB and 20–30 ms of each cold init); Lambda's active tracing still records
 * their segment in the conversation's trace. Classify does no I/O; Export's four S3 PUTs are timed in its
 * WEBHOOK_CONVERSATION_EXPORTED log line (`s3_write_ms`) for every conversation, where X-Ray would show them for
 * the sampled 5 % (docs/performance.md §3). bench/bundles.ts reads this list.
 */
const UNTRACED_STAGES: readonly HandlerDir[] = ['classify', 'export'];
/** Left out of the untraced stages' bundles: functions/shared/powertools.ts imports it only when tracing is on. */
const TRACER_MODULE = '@aws-lambda-powertools/tracer';
/**
 * Left to the SDK the Node.js 22 runtime provides, loaded on first use only (dynamic import): the clients of the
 * optional stores (DynamoDB for idempotency and status, Secrets Manager for signing secrets) and the credential
 * providers other than the environment's (Lambda gives credentials in the environment). bench/bundles.ts reads this list.
 */
const LAZY_MODULES = [
  '@aws-sdk/client-dynamodb',
  '@aws-sdk/client-secrets-manager',
  '@aws-sdk/credential-provider-http',
  '@aws-sdk/credential-provider-ini',
  '@aws-sdk/credential-provider-login',
  '@aws-sdk/credential-provider-process',
  '@aws-sdk/credential-provider-sso',
  '@aws-sdk/credential-provider-web-identity',
  '@aws-sdk/nested-clients',
  '@aws-sdk/token-providers',
  '@smithy/credential-provider-imds',
];

/** Functions outside the workflow, built the same way (`functions/<name>/handler.ts`). */
export type HandlerDir = Stage | 'redelivery-scheduler' | 'conversation-status';

export interface StageFunctionProps {
  readonly stage: HandlerDir;
  readonly description: string;
  readonly timeout: Duration;
  readonly memorySize?: number;
  /** Reserved concurrency (e.g. 1 for a function that must never run twice at once). */
  readonly reservedConcurrentExecutions?: number;
  /** Asynchronous invocations (schedules): retries and the age after which a queued event is dropped. */
  readonly retryAttempts?: number;
  readonly maxEventAge?: Duration;
  /** Stage-specific variables, added to the common Powertools ones. */
  readonly environment?: Record<string, string>;
  readonly logRetention: RetentionDays;
  readonly logLevel: string;
}

/**
 * One workflow stage as a Lambda, with the defaults every stage shares: Node.js 22 on ARM64, bundled locally by
 * esbuild (never Docker) into minified ESM with source maps and the SDK clients it needs at init, active X-Ray tracing, its own log group with a
 * retention, a role of its own (log writes only; callers add what the stage needs), and the Powertools settings.
 */
export class StageFunction extends NodejsFunction {
  readonly stage: HandlerDir;
  readonly stageLogGroup: LogGroup;

  constructor(scope: Construct, id: string, props: StageFunctionProps) {
    // Created beside the function (not inside it): a NodejsFunction's props must exist before super().
    const logGroup = new LogGroup(scope, `${id}LogGroup`, {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
      dataProtectionPolicy: secretMaskingPolicy(),
    });
    const untraced = UNTRACED_STAGES.includes(props.stage);
    const role = new Role(scope, `${id}Role`, {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: (STAGES as readonly string[]).includes(props.stage)
        ? `${props.stage} stage of the webhook conversation workflow`
        : `${props.stage} of the webhook conversation gateway`,
    });
    super(scope, id, {
      description: props.description,
      entry: path.join(PROJECT_ROOT, 'functions', props.stage, 'handler.ts'),
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      retryAttempts: props.retryAttempts,
      maxEventAge: props.maxEventAge,
      tracing: Tracing.ACTIVE,
      logGroup,
      role,
      environment: {
        POWERTOOLS_SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE,
        [STACK_NAME_VARIABLE]: Stack.of(scope).stackName,
        LOG_LEVEL: props.logLevel,
        ...(untraced ? { POWERTOOLS_TRACE_ENABLED: 'false' } : {}),
        ...props.environment,
      },
      bundling: {
        forceDockerBundling: false,
        minify: true,
        // Shipped beside the bundle to decode a stack trace, not loaded at runtime: NODE_OPTIONS=--enable-source-maps
        // would parse the map at every cold start (×1.3–1.7 the module init, docs/performance.md).
        sourceMap: true,
        sourcesContent: false,
        target: 'node22',
        format: OutputFormat.ESM,
        mainFields: ['module', 'main'],
        charset: Charset.UTF8,
        logLevel: EsbuildLogLevel.ERROR,
        // CommonJS dependencies (the X-Ray SDK under Powertools Tracer) call require() on Node built-ins.
        banner: "import { createRequire } from 'node:module';const require = createRequire(import.meta.url);",
        // The SDK clients a stage needs at init (S3 for Export, SQS and Step Functions for the scheduler) are
        // bundled, tree-shaken: one minified file loads several times faster than the runtime's SDK tree.
        externalModules: untraced ? [...LAZY_MODULES, TRACER_MODULE] : LAZY_MODULES,
      },
    });
    logGroup.grantWrite(role);
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Only the X-Ray statement added by active tracing (xray:PutTraceSegments, xray:PutTelemetryRecords) uses "*": X-Ray has no resource-level permissions for them.',
    });
    Validations.of(this).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'The stages are built and tested for Node.js 22 (LTS, supported by Lambda into 2027); a runtime upgrade is a deliberate change, not a side effect of a cdk-nag update.',
    });
    this.stage = props.stage;
    this.stageLogGroup = logGroup;
  }
}

/** Seconds of Lambda timeout for a stage that waits `waitMs` on something else: the wait plus headroom. */
export function timeoutAround(waitMs: number, headroomSeconds = 5): Duration {
  return Duration.seconds(Math.ceil(waitMs / 1000) + headroomSeconds);
}
