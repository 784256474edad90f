/**
 * The deployed stack the `--aws` commands act on: its SDK clients and its CloudFormation outputs (the names infra
 * declares in STACK_OUTPUTS), read once per command.
 */
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SQSClient } from '@aws-sdk/client-sqs';
import { throttlingOnlyRetry } from '../../../functions/shared/clients/throttling-retry.ts';
import { CliError, DEFAULT_STACK_NAME, note } from '../shared.ts';
import { explainAwsError } from './errors.ts';

/** The stack outputs the commands read, by what they are. */
export const AWS_STACK_OUTPUTS = {
  failedDeliveryQueueUrl: 'FailedDeliveryQueueUrl',
  failedDeliveryDeadLetterQueueUrl: 'FailedDeliveryDeadLetterQueueUrl',
  redeliveryStateMachineArn: 'RedeliveryStateMachineArn',
  exportBucket: 'ExportBucketName',
  executionLogGroup: 'ExecutionLogGroupName',
  redeliveryLogGroup: 'RedeliveryExecutionLogGroupName',
  acceptLogGroup: 'AcceptExecutionLogGroupName',
  analyticsDatabase: 'AnalyticsDatabaseName',
  analyticsWorkGroup: 'AnalyticsWorkGroupName',
  stateMachineArn: 'StateMachineArn',
  deliveriesTable: 'DeliveriesTableName',
  idempotencyTable: 'IdempotencyTableName',
  deliverFunction: 'DeliverFunctionName',
  deliverySigningSecretsArn: 'DeliverySigningSecretsArn',
} as const;

export type StackOutput = keyof typeof AWS_STACK_OUTPUTS;

export interface AwsClients {
  cfn: CloudFormationClient;
  sqs: SQSClient;
  sfn: SFNClient;
  s3: S3Client;
  logs: CloudWatchLogsClient;
  dynamodb: DynamoDBClient;
  lambda: LambdaClient;
  secrets: SecretsManagerClient;
}

/** Where the `--aws` flags point: the stack, its region and the profile whose credentials are used. */
export interface AwsTarget {
  stack?: string | undefined;
  region?: string | undefined;
  profile?: string | undefined;
}

/**
 * The SDK's logger for the `--aws` clients, silent as its default one is. Without a logger of its own, the SDK's
 * credential chain prints a warning of nine lines (naming AWS_PROFILE even for --profile) when a profile and
 * AWS_ACCESS_KEY_ID are both set: the profile wins, silently, as docs/operations.md says.
 */
const quiet = () => undefined;
const SDK_LOGGER = { trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet };

/**
 * The SDK clients' common configuration: `--region`, and `--profile` for the SDK's default credential chain (that
 * profile instead of AWS_PROFILE; also its region when no --region or AWS_REGION is given).
 */
export function awsClientConfig(
  region?: string,
  profile?: string,
): { region?: string; profile?: string; logger: typeof SDK_LOGGER } {
  return { ...(region ? { region } : {}), ...(profile ? { profile } : {}), logger: SDK_LOGGER };
}

export function createAwsClients(region?: string, profile?: string): AwsClients {
  const config = awsClientConfig(region, profile);
  return {
    cfn: new CloudFormationClient(config),
    sqs: new SQSClient(config),
    // StartSyncExecution is tried again only when throttled (nothing started); a retry after a lost answer would
    // deliver twice.
    sfn: new SFNClient({ ...config, retryStrategy: throttlingOnlyRetry() }),
    // The export bucket may be an existing one in another region (docs/deploy.md, "Another region").
    s3: new S3Client({ ...config, followRegionRedirects: true }),
    logs: new CloudWatchLogsClient(config),
    dynamodb: new DynamoDBClient(config),
    lambda: new LambdaClient(config),
    secrets: new SecretsManagerClient(config),
  };
}

function destroyAwsClients(clients: AwsClients): void {
  for (const client of Object.values(clients)) client.destroy();
}

/** A deployed stack's name, CloudFormation status and outputs (null where the stack does not declare one). */
export interface AwsStack {
  name: string;
  status: string;
  outputs: Record<StackOutput, string | null>;
}

/**
 * Read the stack's outputs (SDK errors are the caller's to explain: see withAws). A stack in the middle of an update
 * (or of a rollback, or being deleted) still has the outputs of its last deploy: the command goes on, and says so.
 */
export async function readStack(clients: Pick<AwsClients, 'cfn'>, name: string): Promise<AwsStack> {
  const result = await clients.cfn.send(new DescribeStacksCommand({ StackName: name }));
  const described = result.Stacks?.[0];
  const declared = new Map((described?.Outputs ?? []).map((o) => [o.OutputKey, o.OutputValue]));
  const outputs = Object.fromEntries(
    Object.entries(AWS_STACK_OUTPUTS).map(([what, key]) => [what, declared.get(key) || null]),
  ) as AwsStack['outputs'];
  const status = described?.StackStatus ?? 'UNKNOWN';
  if (status.endsWith('_IN_PROGRESS') && declared.size > 0)
    note(`stack "${name}" is ${status}: acting on the resources of its last deploy`);
  return { name, status, outputs };
}

/** Why a stack in this status may have no outputs yet (or any more), or null when nothing explains it. */
function statusWithoutOutputs(status: string): string | null {
  if (status === 'REVIEW_IN_PROGRESS') return 'a change set was made but never executed: deploy it';
  if (status.endsWith('_IN_PROGRESS')) return 'try again once it is deployed';
  if (/^(CREATE_FAILED|ROLLBACK_)/.test(status)) return 'its first deploy failed: see its events, then deploy it again';
  if (status.startsWith('DELETE_')) return 'it is being deleted';
  return null;
}

/** An output the command cannot work without. */
export function requireOutput(stack: AwsStack, what: StackOutput): string {
  const value = stack.outputs[what];
  if (!value) {
    const why = statusWithoutOutputs(stack.status);
    throw new CliError(
      why
        ? `stack "${stack.name}" is ${stack.status} and has no ${AWS_STACK_OUTPUTS[what]} output: ${why}`
        : `stack "${stack.name}" has no ${AWS_STACK_OUTPUTS[what]} output: is it a webhook gateway stack, deployed from this version?`,
    );
  }
  return value;
}

/** Where a command's clients act: the stack, the region they resolved and the profile of --profile. */
async function awsWhere(
  clients: Pick<AwsClients, 'cfn'>,
  options: AwsTarget,
  stack: string,
): Promise<{ stack: string; region: string | undefined; profile: string | undefined }> {
  // The region the clients used (from --region, AWS_REGION or the profile), so "does not exist in …" names it.
  const region = options.region ?? (await clients.cfn.config.region().catch(() => undefined));
  return { stack, region, profile: options.profile };
}

/**
 * An AWS error met by one item of a command that goes on with the others (a redrive's delivery): the line the
 * command would end with, and the region and profile it was met with, since no later line says them.
 */
export type ItemErrorExplainer = (error: unknown) => Promise<string>;

function itemErrorExplainer(clients: Pick<AwsClients, 'cfn'>, options: AwsTarget): ItemErrorExplainer {
  return async (error) => {
    const where = await awsWhere(clients, options, options.stack ?? DEFAULT_STACK_NAME);
    const profile = where.profile ?? process.env.AWS_PROFILE;
    const credentials = profile ? `profile "${profile}"${where.profile ? '' : ' (AWS_PROFILE)'}` : 'no profile';
    return `${explainAwsError(error, where).message} [region ${where.region ?? 'not set'}, ${credentials}]`;
  };
}

/** Run one `--aws` command with fresh clients: clear one-line errors, clients closed afterwards. */
export async function withAws<T>(
  options: AwsTarget,
  fn: (clients: AwsClients, stack: string, explainItemError: ItemErrorExplainer) => Promise<T>,
): Promise<T> {
  const stack = options.stack ?? DEFAULT_STACK_NAME;
  const clients = createAwsClients(options.region, options.profile);
  try {
    return await fn(clients, stack, itemErrorExplainer(clients, { ...options, stack }));
  } catch (error) {
    throw explainAwsError(error, await awsWhere(clients, options, stack));
  } finally {
    destroyAwsClients(clients);
  }
}
