import { CliError, DEFAULT_STACK_NAME } from '../shared.ts';

const NETWORK_CODES = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
/** What the services answer when a caller goes too fast (the SDK has retried these already). */
const THROTTLED = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'ProvisionedThroughputExceededException',
  'RequestThrottled',
  'SlowDown',
]);
const BAD_CREDENTIALS = new Set([
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'InvalidSignatureException',
  'IncompleteSignature',
]);

/** Connection errors of a request that never reached AWS. */
const NOT_CONNECTED_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH']);
/** Step Functions' refusals of a StartSyncExecution it did not start (besides throttling, credentials, access). */
const NOT_STARTED = new Set([
  'StateMachineDoesNotExist',
  'StateMachineDeleting',
  'StateMachineTypeNotSupported',
  'InvalidArn',
  'InvalidName',
  'InvalidExecutionInput',
  'ValidationException',
]);

/**
 * Whether a failed call surely did nothing: AWS refused it (any 4xx: throttled past the retries, credentials, access,
 * a missing resource) or it never reached AWS (no credentials, no connection). Otherwise (a server error, a
 * connection cut or timed out after the request was sent) it may have been carried out: a StartSyncExecution's
 * execution may have started.
 */
export function surelyNotDone(error: unknown): boolean {
  const e = (error ?? {}) as Error & {
    code?: string;
    cause?: { code?: string };
    $metadata?: { httpStatusCode?: number };
  };
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined) return status >= 400 && status < 500;
  const name = e.name ?? '';
  const code = e.code ?? e.cause?.code;
  return (
    name === 'CredentialsProviderError' ||
    name === 'TokenProviderError' ||
    THROTTLED.has(name) ||
    BAD_CREDENTIALS.has(name) ||
    NOT_STARTED.has(name) ||
    /AccessDenied/.test(name) ||
    (code !== undefined && NOT_CONNECTED_CODES.has(code))
  );
}

/**
 * The two files the SDK reads profiles from, as it finds them: AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE when
 * set (not empty), else ~/.aws/config and ~/.aws/credentials.
 */
function profileFiles(): string {
  const file = (variable: string, fallback: string) => {
    const set = process.env[variable];
    return set ? `${set} (${variable})` : fallback;
  };
  return `${file('AWS_CONFIG_FILE', '~/.aws/config')} or ${file('AWS_SHARED_CREDENTIALS_FILE', '~/.aws/credentials')}`;
}

/**
 * Why an export could not be read, when S3 refused the GetObject (AccessDenied): S3 answers a key that does not exist
 * so, not NoSuchKey, to a role without s3:ListBucket on the bucket, so the refusal may mean "not exported" (a wrong id,
 * a conversation still running). Null for any other error. docs/deploy.md says which permissions tell the two apart.
 */
export function exportMissingOrDenied(error: unknown): string | null {
  const e = (error ?? {}) as Error;
  if (!/AccessDenied/.test(e.name ?? '')) return null;
  return `or this role may not read it: S3 refused it (AccessDenied), which is also its answer for an object that does not exist to a role without s3:ListBucket on the bucket`;
}

/**
 * `error` with what the command did about it added to its message (a query it stopped): explainAwsError keeps the
 * message, so the user reads both on the one line.
 */
export function withAftermath(error: unknown, aftermath: string): unknown {
  if (error instanceof Error) {
    error.message = `${error.message} (${aftermath})`;
    // Kept apart too: explainAwsError's line for a network error (or rejected credentials…) does not quote the message.
    const before = (error as { aftermaths?: string[] }).aftermaths ?? [];
    Object.assign(error, { aftermaths: [...before, aftermath] });
  }
  return error;
}

/** Where the operators' policies are attached, and which one a command needs (docs/deploy.md). */
const POLICIES_DOC = 'docs/deploy.md#after-the-first-deploy';

/**
 * What an access denied means for the operator, after AWS's own words (which name the action): the policy of the
 * stack that grants it (docs/deploy.md's `OperatorPolicyArn`, or `AnalyticsQueryPolicyArn` for Athena and Glue).
 * `cloudformation:DescribeStacks`, every command's first call, is granted on the stack's own ARN only, so a --stack
 * or --region that names no such stack is refused, not "does not exist", to a role holding only that policy. An
 * explicit deny (a service control policy, a permissions boundary) no policy attached overrides.
 */
function deniedBecause(message: string, stack: string, region: string): string {
  if (/explicit deny/i.test(message))
    return `: an explicit deny refuses it, which no policy of the stack overrides: ask the account's administrators`;
  const named = /perform:\s*([\w-]+:\w+)/i.exec(message)?.[1];
  const action = named?.toLowerCase();
  if (action === 'cloudformation:describestacks')
    return `: the stack's OperatorPolicyArn policy allows it on its own stack only: is stack "${stack}" (${stack === DEFAULT_STACK_NAME ? 'the default; --stack NAME for another' : '--stack'}) deployed in ${region} (--region R for another)? If it is, these credentials lack that policy (${POLICIES_DOC})`;
  if (action?.startsWith('kms:'))
    return `: the key that encrypts the export bucket must allow ${named} to these credentials, which the stack's policies cannot grant (${POLICIES_DOC})`;
  if (action?.startsWith('athena:') || action?.startsWith('glue:'))
    return `: these credentials need the stack's AnalyticsQueryPolicyArn policy (${POLICIES_DOC})`;
  if (action) return `: these credentials need the stack's OperatorPolicyArn policy (${POLICIES_DOC})`;
  return `: these credentials need the stack's OperatorPolicyArn policy, and AnalyticsQueryPolicyArn for conversations list | search | query (${POLICIES_DOC})`;
}

/**
 * Which credentials AWS rejected, and what to do about it by its reason: the SDK's chain took them from --profile,
 * else AWS_PROFILE, else AWS_ACCESS_KEY_ID, else the default profile or the machine's role (docs/operations.md).
 * An access key AWS does not know is also its answer in an opt-in region the account has not enabled.
 */
function rejectedCredentials(name: string, profileOption: string | undefined, region: string): string {
  const profile = profileOption ?? process.env.AWS_PROFILE;
  const keys = !profile && Boolean(process.env.AWS_ACCESS_KEY_ID);
  const which = profile
    ? `of profile "${profile}" (${profileOption ? '--profile' : 'AWS_PROFILE'})`
    : keys
      ? 'of AWS_ACCESS_KEY_ID'
      : "the SDK found (the default profile, or this machine's role)";
  let why: string;
  if (/^ExpiredToken/.test(name))
    why = `they have expired: ${
      profile
        ? `run "aws sso login --profile ${profile}" if it uses SSO, else renew its keys`
        : keys
          ? 'set new AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN'
          : 'renew them'
    }, then try again`;
  else if (name === 'InvalidClientTokenId' || name === 'UnrecognizedClientException')
    why = `AWS knows no such access key (deleted, deactivated, of another partition), or ${region} is an opt-in region the account has not enabled`;
  else why = "the secret key does not belong to the access key (mistyped?), or this machine's clock is far off";
  return `AWS rejected the credentials ${which} (${name}): ${why}`;
}

/**
 * An AWS SDK error as one clear line for the command line (`--aws`): missing or rejected credentials, no region,
 * an unknown stack, throttling, an unreachable service. Never a stack trace.
 */
export function explainAwsError(
  error: unknown,
  where: { stack: string; region?: string | undefined; profile?: string | undefined },
): CliError {
  const explained = explainOnly(error, where);
  // What the failure left behind (dead letters still hidden, and until when), said whatever the line is: before, a
  // network error's "cannot reach AWS" dropped it.
  const aftermaths = (error as { aftermaths?: unknown } | null)?.aftermaths;
  for (const aftermath of Array.isArray(aftermaths) ? aftermaths : [])
    if (typeof aftermath === 'string' && !explained.message.includes(aftermath))
      explained.message = `${explained.message} (${aftermath})`;
  return explained;
}

function explainOnly(
  error: unknown,
  where: { stack: string; region?: string | undefined; profile?: string | undefined },
): CliError {
  if (error instanceof CliError) return error;
  const e = (error ?? {}) as Error & { code?: string; errno?: string; cause?: { code?: string } };
  const name = e.name ?? 'Error';
  const message = e.message ?? String(error);
  const code = e.code ?? e.cause?.code ?? e.errno;
  const region = where.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'the configured region';
  if (
    name === 'CredentialsProviderError' ||
    name === 'TokenProviderError' ||
    /could not load credentials/i.test(message)
  ) {
    const profile = where.profile ?? process.env.AWS_PROFILE;
    const from = where.profile ? '--profile' : 'AWS_PROFILE';
    // The SDK's own words when it says more than "none found": an SSO session expired or never started, and what to run.
    if (!/could not load credentials from any providers/i.test(message))
      return new CliError(`the AWS credentials${profile ? ` of profile "${profile}"` : ''} cannot be used: ${message}`);
    if (profile)
      return new CliError(
        `no AWS credentials for profile "${profile}" (${from}): is it in ${profileFiles()}? If it uses SSO, run "aws sso login --profile ${profile}"`,
      );
    return new CliError(
      'no AWS credentials: pass --profile P or set AWS_PROFILE (run "aws sso login" first if it uses SSO), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY',
    );
  }
  if (/region is missing/i.test(message)) {
    // With a profile, the region may come from it too (docs/operations.md), and a profile that does not exist has none.
    const profile = where.profile ?? process.env.AWS_PROFILE;
    const from = where.profile ? '--profile' : 'AWS_PROFILE';
    const config = process.env.AWS_CONFIG_FILE ? `${process.env.AWS_CONFIG_FILE} (AWS_CONFIG_FILE)` : '~/.aws/config';
    return new CliError(
      profile
        ? `no AWS region: pass --region R or set AWS_REGION, or give profile "${profile}" (${from}) a region in ${config} (is the profile there at all?)`
        : 'no AWS region: pass --region R or set AWS_REGION',
    );
  }
  if (name === 'ValidationError' && /does not exist/i.test(message)) {
    return new CliError(
      `stack "${where.stack}"${where.stack === DEFAULT_STACK_NAME ? ' (the default)' : ''} does not exist in ${region}: pass --stack NAME (and --region R) of a deployed webhook gateway, NAME being the context key stackName it was deployed with (cdk.json or -c stackName=…: docs/deploy.md)`,
    );
  }
  if (BAD_CREDENTIALS.has(name)) return new CliError(rejectedCredentials(name, where.profile, region));
  if (/AccessDenied/.test(name) || /not authorized/i.test(message))
    return new CliError(`access denied: ${message}${deniedBecause(message, where.stack, region)}`);
  // Logs Insights' "Account maximum query concurrency limit of [30] reached" is a throttle too.
  if (THROTTLED.has(name) || (name === 'LimitExceededException' && /concurren/i.test(message)))
    return new CliError(
      `AWS is throttling these calls (${name}: ${message}), even after retries: try again in a minute`,
    );
  if (name === 'ResourceNotFoundException' || name === 'NoSuchBucket')
    return new CliError(
      `something stack "${where.stack}" uses does not exist (${name}: ${message}): was it deleted, or is --region wrong?`,
    );
  if (/NonExistentQueue|QueueDoesNotExist/.test(name))
    return new CliError(`a queue of stack "${where.stack}" does not exist: ${message}`);
  if ((code && NETWORK_CODES.has(code)) || name === 'TimeoutError' || name === 'RequestTimeout') {
    return new CliError(
      `cannot reach AWS in ${region} (${code ?? name}): check the network, proxy settings and --region`,
    );
  }
  return new CliError(`AWS error (${name}): ${message}`);
}
