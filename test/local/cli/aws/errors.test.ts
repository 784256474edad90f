import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runMain } from '../../../support/cli.ts';

/** What an operator sees when AWS refuses a `--aws` command: one line on stderr, exit code 1 (never real AWS). */
const cfn = mockClient(CloudFormationClient);

const sdkError = (name: string, message: string) => Object.assign(new Error(message), { name });

beforeEach(() => cfn.reset());
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

  it('a profile that gives none names the profile', async () => {
    expect(
      await refused(sdkError('CredentialsProviderError', 'Could not load credentials from any providers'), {
        AWS_PROFILE: 'prod',
      }),
    ).toBe(
      'webhook-gateway: no AWS credentials for profile "prod" (AWS_PROFILE): is it in ~/.aws/config or ~/.aws/credentials? If it uses SSO, run "aws sso login --profile prod"',
    );
    expect(
      await refused(sdkError('CredentialsProviderError', 'Could not load credentials from any providers'), {
        AWS_PROFILE: undefined,
      }),
    ).toMatch(/^webhook-gateway: no AWS credentials: set AWS_PROFILE/);
  });

  it('expired session credentials (ExpiredToken) are rejected credentials', async () => {
    expect(await refused(sdkError('ExpiredToken', 'The security token included in the request is expired'))).toBe(
      'webhook-gateway: AWS rejected the credentials (ExpiredToken): refresh them and try again',
    );
  });
});
