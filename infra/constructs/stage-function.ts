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
/** Functions outside the workflow, built the same way (`functions/<name>/handler.ts`). */
export type HandlerDir = Stage | 'redelivery-scheduler';

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
 * esbuild (never Docker) into minified ESM with source maps, active X-Ray tracing, its own log group with a
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
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        forceDockerBundling: false,
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        target: 'node22',
        format: OutputFormat.ESM,
        mainFields: ['module', 'main'],
        charset: Charset.UTF8,
        logLevel: EsbuildLogLevel.ERROR,
        // CommonJS dependencies (the X-Ray SDK under Powertools Tracer) call require() on Node built-ins.
        banner: "import { createRequire } from 'node:module';const require = createRequire(import.meta.url);",
        // The Node.js 22 runtime provides AWS SDK v3.
        externalModules: ['@aws-sdk/*'],
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
