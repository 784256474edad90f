import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AssetHashType, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Code, Function as LambdaFunction, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { STACK_NAME_VARIABLE } from '../../functions/domain/observability.ts';
import { POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_SERVICE_NAME } from '../config.ts';
import { BUNDLE_FILE, type HandlerDir, STAGES, UNTRACED_STAGES } from '../stage-bundle.ts';
import { secretMaskingPolicy } from './secret-masking-policy.ts';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Node's arguments that build one function into a folder (run in the project folder): infra/stage-bundle.ts. */
const bundleArgs = (dir: HandlerDir, outdir: string) => ['--import', 'tsx', 'infra/stage-bundle.ts', dir, outdir];

/**
 * The function's code: `functions/<dir>/handler.ts` built by infra/stage-bundle.ts on this machine (never Docker),
 * in a child process because esbuild runs plugins only in its asynchronous API and CDK bundles synchronously. The
 * build writes `index.mjs` and its first-use modules (`chunks/`, with their maps) into the asset's folder, all of
 * which is deployed. The asset is named after what was built (its hash), so an unchanged function is not uploaded
 * again.
 */
function bundledCode(dir: HandlerDir): Code {
  return Code.fromAsset(PROJECT_ROOT, {
    assetHashType: AssetHashType.OUTPUT,
    bundling: {
      image: Runtime.NODEJS_22_X.bundlingImage,
      // The build, as Docker would run it in the project folder. CDK caches an asset by its bundling options, where
      // a function does not count: this is also what tells one function's asset from another's.
      workingDirectory: '/asset-input',
      command: ['node', ...bundleArgs(dir, '/asset-output')],
      local: {
        tryBundle(outputDir) {
          const run = spawnSync(process.execPath, bundleArgs(dir, outputDir), {
            cwd: PROJECT_ROOT,
            encoding: 'utf8',
          });
          if (run.status !== 0)
            throw new Error(`bundling functions/${dir}/handler.ts failed: ${run.stderr || run.error?.message}`);
          return true;
        },
      },
    },
  });
}

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
 * esbuild (never Docker) into minified ESM with source maps, every SDK client it uses included, the ones only some
 * requests need in modules of their own loaded on first use (bundledCode), active X-Ray tracing, its own log group with a
 * retention, a role of its own (log writes only; callers add what the stage needs), and the Powertools settings.
 */
export class StageFunction extends LambdaFunction {
  readonly stage: HandlerDir;
  readonly stageLogGroup: LogGroup;

  constructor(scope: Construct, id: string, props: StageFunctionProps) {
    // Created beside the function (not inside it): a Function's props must exist before super().
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
      code: bundledCode(props.stage),
      handler: `${path.parse(BUNDLE_FILE).name}.handler`,
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
