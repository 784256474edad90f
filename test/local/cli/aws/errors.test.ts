import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DLQ_URL, describedStack, QUEUE_URL } from '../../../support/aws-fixtures.ts';
import { runMain } from '../../../support/cli.ts';

/** What an operator sees when AWS refuses a `--aws` command: one line on stderr, exit code 1 (never real AWS). */
const cfn = mockClient(CloudFormationClient);
const sqs = mockClient(SQSClient);

const sdkError = (name: string, message: string) => Object.assign(new Error(message), { name });

beforeEach(() => {
  cfn.reset();
  sqs.reset();
});
afterEach(() => cfn.reset());

async function refused(error: Error, env: Record<string, string | undefined> = {}): Promise<string> {
  cfn.on(DescribeStacksCommand).rejects(error);
  const result = await runMain(['deliveries', 'list', '--aws'], env);
  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr.split('\n')).toHaveLength(2); // one line and its newline
  return result.stderr.trim();
}

describe('--aws credentials', () => {
  it('an SSO session that expired or was never started: the SDK says what to run, not "set AWS_PROFILE"', async () => {
    const message =
      "The SSO session token associated with profile=prod was not found or is invalid. To refresh this SSO session run 'aws sso login' with the corresponding profile.";
    expect(await refused(sdkError('CredentialsProviderError', message), { AWS_PROFILE: 'prod' })).toBe(
      `webhook-gateway: the AWS credentials of profile "prod" cannot be used: ${message}`,
    );
    expect(
      await refused(
        sdkError('CredentialsProviderError', 'The SSO session associated with this profile has expired. To refresh…'),
        { AWS_PROFILE: 'prod' },
      ),
    ).toMatch(/^webhook-gateway: the AWS credentials of profile "prod" cannot be used: The SSO session .* has expired/);
  });

  it('no region: names the profile it may come from, when there is one', async () => {
    const noRegion = sdkError('Error', 'Region is missing');
    expect(await refused(noRegion, { AWS_PROFILE: undefined, AWS_REGION: undefined })).toBe(
      'webhook-gateway: no AWS region: pass --region R or set AWS_REGION',
    );
    expect(await refused(noRegion, { AWS_PROFILE: 'nope', AWS_REGION: undefined, AWS_CONFIG_FILE: undefined })).toBe(
      'webhook-gateway: no AWS region: pass --region R or set AWS_REGION, or give profile "nope" (AWS_PROFILE) a region in ~/.aws/config (is the profile there at all?)',
    );
  });

  it('a profile that gives none names the profile', async () => {
    expect(
      await refused(sdkError('CredentialsProviderError', 'Could not load credentials from any providers'), {
        AWS_PROFILE: 'prod',
        AWS_CONFIG_FILE: undefined,
        AWS_SHARED_CREDENTIALS_FILE: undefined,
      }),
    ).toBe(
      'webhook-gateway: no AWS credentials for profile "prod" (AWS_PROFILE): is it in ~/.aws/config or ~/.aws/credentials? If it uses SSO, run "aws sso login --profile prod"',
    );
    expect(
      await refused(sdkError('CredentialsProviderError', 'Could not load credentials from any providers'), {
        AWS_PROFILE: undefined,
      }),
    ).toMatch(/^webhook-gateway: no AWS credentials: pass --profile P or set AWS_PROFILE/);
  });

  it('a profile that gives none: names the files AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE point at, not ~/.aws', async () => {
    const none = sdkError('CredentialsProviderError', 'Could not load credentials from any providers');
    expect(
      await refused(none, {
        AWS_PROFILE: 'prod',
        AWS_CONFIG_FILE: '/etc/aws/config',
        AWS_SHARED_CREDENTIALS_FILE: '/etc/aws/credentials',
      }),
    ).toBe(
      'webhook-gateway: no AWS credentials for profile "prod" (AWS_PROFILE): is it in /etc/aws/config (AWS_CONFIG_FILE) or /etc/aws/credentials (AWS_SHARED_CREDENTIALS_FILE)? If it uses SSO, run "aws sso login --profile prod"',
    );
    expect(
      await refused(none, { AWS_PROFILE: 'prod', AWS_CONFIG_FILE: '/etc/aws/config', AWS_SHARED_CREDENTIALS_FILE: '' }),
    ).toMatch(/is it in \/etc\/aws\/config \(AWS_CONFIG_FILE\) or ~\/\.aws\/credentials\?/);
  });

  it('expired session credentials (ExpiredToken): which ones, and how to renew them', async () => {
    const expired = sdkError('ExpiredToken', 'The security token included in the request is expired');
    expect(await refused(expired, { AWS_PROFILE: undefined, AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE' })).toBe(
      'webhook-gateway: AWS rejected the credentials of AWS_ACCESS_KEY_ID (ExpiredToken): they have expired: set new AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, then try again',
    );
    expect(
      await refused(sdkError('ExpiredTokenException', 'The security token included in the request is expired'), {
        AWS_PROFILE: 'prod',
      }),
    ).toBe(
      'webhook-gateway: AWS rejected the credentials of profile "prod" (AWS_PROFILE) (ExpiredTokenException): they have expired: run "aws sso login --profile prod" if it uses SSO, else renew its keys, then try again',
    );
  });

  it('an access key AWS does not know (InvalidClientTokenId, UnrecognizedClientException): also a region not enabled', async () => {
    for (const name of ['InvalidClientTokenId', 'UnrecognizedClientException'])
      expect(
        await refused(sdkError(name, 'The security token included in the request is invalid.'), {
          AWS_PROFILE: undefined,
          AWS_ACCESS_KEY_ID: undefined,
          AWS_REGION: 'me-south-1',
        }),
      ).toBe(
        `webhook-gateway: AWS rejected the credentials the SDK found (the default profile, or this machine's role) (${name}): AWS knows no such access key (deleted, deactivated, of another partition), or me-south-1 is an opt-in region the account has not enabled`,
      );
  });

  it('a secret key that does not match (SignatureDoesNotMatch): mistyped, or the clock', async () => {
    expect(
      await refused(sdkError('SignatureDoesNotMatch', 'The request signature we calculated does not match'), {
        AWS_PROFILE: undefined,
        AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
      }),
    ).toBe(
      "webhook-gateway: AWS rejected the credentials of AWS_ACCESS_KEY_ID (SignatureDoesNotMatch): the secret key does not belong to the access key (mistyped?), or this machine's clock is far off",
    );
  });
});

describe('--aws access denied: names the policy of the stack that grants the action (docs/deploy.md)', () => {
  const denied = (action: string, resource: string, name = 'AccessDenied') =>
    sdkError(
      name,
      `User: arn:aws:iam::123456789012:user/ops is not authorized to perform: ${action} on resource: ${resource} because no identity-based policy allows the ${action} action`,
    );
  const POLICIES = '(docs/deploy.md#after-the-first-deploy)';

  it('DescribeStacks of a stack the operator policy does not name: asks whether --stack and --region are right', async () => {
    // The operator policy grants DescribeStacks on its own stack's ARN only: another name or region is refused so,
    // not "does not exist".
    const other = 'arn:aws:cloudformation:us-east-1:123456789012:stack/WebhookConversationGateway/*';
    expect(
      await refused(denied('cloudformation:DescribeStacks', other), {
        AWS_REGION: 'us-east-1',
        AWS_PROFILE: undefined,
      }),
    ).toBe(
      `webhook-gateway: access denied: ${denied('cloudformation:DescribeStacks', other).message}: the stack's OperatorPolicyArn policy allows it on its own stack only: is stack "WebhookConversationGateway" (the default; --stack NAME for another) deployed in us-east-1 (--region R for another)? If it is, these credentials lack that policy ${POLICIES}`,
    );
    cfn.on(DescribeStacksCommand).rejects(denied('cloudformation:DescribeStacks', other));
    const named = await runMain(['deliveries', 'list', '--aws', '--stack', 'Prod', '--region', 'eu-west-1']);
    expect(named.stderr).toContain(
      `: is stack "Prod" (--stack) deployed in eu-west-1 (--region R for another)? If it is, these credentials lack that policy ${POLICIES}\n`,
    );
  });

  it('an action of the operator policy: names OperatorPolicyArn', async () => {
    expect(
      await refused(denied('sqs:receivemessage', 'arn:aws:sqs:eu-west-1:123456789012:dlq', 'AccessDeniedException')),
    ).toMatch(
      /sqs:receivemessage action: these credentials need the stack's OperatorPolicyArn policy \(docs\/deploy\.md#after-the-first-deploy\)$/,
    );
  });

  it('S3\'s "Access Denied" without an action: names both policies', async () => {
    expect(await refused(sdkError('AccessDenied', 'Access Denied'))).toBe(
      `webhook-gateway: access denied: Access Denied: these credentials need the stack's OperatorPolicyArn policy, and AnalyticsQueryPolicyArn for conversations list | search | query ${POLICIES}`,
    );
  });

  it('kms:Decrypt of an export bucket of their own: the key must allow it, which no policy of the stack grants', async () => {
    expect(await refused(denied('kms:Decrypt', 'arn:aws:kms:eu-west-1:123456789012:key/k'))).toMatch(
      /kms:Decrypt action: the key that encrypts the export bucket must allow kms:Decrypt to these credentials, which the stack's policies cannot grant/,
    );
  });

  it('an explicit deny (a service control policy): no policy of the stack helps, and it says so', async () => {
    const scp = sdkError(
      'AccessDeniedException',
      'User: arn:aws:iam::123456789012:user/ops is not authorized to perform: sqs:receivemessage on resource: arn:aws:sqs:eu-west-1:123456789012:dlq with an explicit deny in a service control policy',
    );
    expect(await refused(scp)).toMatch(
      /service control policy: an explicit deny refuses it, which no policy of the stack overrides: ask the account's administrators$/,
    );
  });
});

describe('--aws throttled', () => {
  it.each([
    ['ThrottlingException', 'Rate exceeded'],
    ['Throttling', 'Rate exceeded'],
    ['TooManyRequestsException', 'You have exceeded the rate'],
    ['LimitExceededException', 'Account maximum query concurrency limit of [30] reached.'],
  ])('%s after the SDK retries: says AWS is throttling and to try again', async (name, message) => {
    expect(await refused(sdkError(name, message))).toBe(
      `webhook-gateway: AWS is throttling these calls (${name}: ${message}), even after retries: try again in a minute`,
    );
  });
});

describe('--aws on a stack that is not deployed, or being changed', () => {
  const inStatus = (StackStatus: string, outputs: Record<string, string> = {}) => {
    const described = describedStack(outputs);
    cfn
      .on(DescribeStacksCommand)
      .resolves({ Stacks: [{ ...described.Stacks[0]!, StackStatus: StackStatus as never }] });
  };

  it.each([
    ['CREATE_IN_PROGRESS', 'try again once it is deployed'],
    ['REVIEW_IN_PROGRESS', 'a change set was made but never executed: deploy it'],
    ['ROLLBACK_COMPLETE', 'its first deploy failed: see its events, then deploy it again'],
  ])('%s without outputs: says so, not "is it a webhook gateway stack?"', async (status, why) => {
    inStatus(status);
    const result = await runMain(['deliveries', 'list', '--aws']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `webhook-gateway: stack "WebhookConversationGateway" is ${status} and has no FailedDeliveryQueueUrl output: ${why}\n`,
    );
    expect(sqs.calls()).toHaveLength(0);
  });

  it('a stack being updated: the command runs on the outputs of its last deploy, and says so on stderr', async () => {
    inStatus('UPDATE_IN_PROGRESS', { FailedDeliveryQueueUrl: QUEUE_URL, FailedDeliveryDeadLetterQueueUrl: DLQ_URL });
    sqs.on(ReceiveMessageCommand).resolves({});
    sqs.on(GetQueueAttributesCommand).resolves({ Attributes: { ApproximateNumberOfMessages: '2' } });
    const result = await runMain(['deliveries', 'list', '--aws', '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([]);
    expect(result.stderr.split('\n')[0]).toBe(
      'stack "WebhookConversationGateway" is UPDATE_IN_PROGRESS: acting on the resources of its last deploy',
    );
  });
});
