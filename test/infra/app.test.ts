import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../infra/constructs/stage-function.ts';
import { cdkJsonContext } from './support/synth.ts';

const run = promisify(execFile);

/**
 * infra/app.ts run as `npx cdk synth` runs it (the CLI passes cdk.json's context and the output directory in the
 * environment, and the account and region of the credentials when it has any), without bundling the functions.
 */
async function synthApp(context: Record<string, unknown>): Promise<{ template: any; stderr: string; dir: string }> {
  const dir = mkdtempSync(path.join(PROJECT_ROOT, 'node_modules', '.cache', 'app-synth-'));
  const { stderr } = await run(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'infra', 'app.ts')], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      CDK_OUTDIR: dir,
      CDK_CONTEXT_JSON: JSON.stringify({ ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [], ...context }),
      // What the CLI sets from the credentials during `cdk deploy`.
      CDK_DEFAULT_ACCOUNT: '111122223333',
      CDK_DEFAULT_REGION: 'eu-west-3',
      CDK_DOCKER: '/bin/false',
    },
  });
  const template = JSON.parse(readFileSync(path.join(dir, 'WebhookConversationGateway.template.json'), 'utf8'));
  return { template, stderr, dir };
}

/** infra/app.ts with a bad setting: it must stop before synthesizing anything. */
async function failedSynth(context: Record<string, unknown>): Promise<{ code: number; stderr: string }> {
  const dir = mkdtempSync(path.join(PROJECT_ROOT, 'node_modules', '.cache', 'app-synth-'));
  try {
    await run(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'infra', 'app.ts')], {
      cwd: PROJECT_ROOT,
      env: {
        ...process.env,
        CDK_OUTDIR: dir,
        CDK_CONTEXT_JSON: JSON.stringify({ ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [], ...context }),
      },
    });
    return { code: 0, stderr: '' };
  } catch (error) {
    const { code, stderr } = error as { code: number; stderr: string };
    return { code, stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('npx cdk synth (infra/app.ts) as a new user runs it', () => {
  // cdk.json as shipped: no delivery URL yet. (With the URLs set there is no rule: test/infra/stack.test.ts.)
  let fresh: Awaited<ReturnType<typeof synthApp>>;
  // A whole synth in a child process, cdk-nag and the template checks included: 105 s alone at load 15, of which the
  // checks and the synth took 93 s (the modules 16 s), past the config's 120 s for hooks beside other synths in a loaded
  // run of test/infra; as the several stacks' synths of stack-lifecycle, the limit only catches a hang.
  beforeAll(async () => {
    fresh = await synthApp({});
  }, 300_000);
  afterAll(() => {
    if (fresh) rmSync(fresh.dir, { recursive: true, force: true });
  });

  it('synthesizes the fresh clone (cdk.json as shipped) with cdk-nag and the template checks passing', () => {
    expect(fresh.template.Resources).toBeDefined();
    expect(fresh.stderr).not.toMatch(/Validation failed|\[Error at/);
  });

  it('is region- and account-agnostic even when the CLI knows both: every ARN uses the pseudo parameters', () => {
    const text = JSON.stringify(fresh.template);
    expect(text).not.toContain('eu-west-3');
    expect(text).not.toContain('111122223333');
    expect(text).toContain('AWS::Region');
  });

  it('guards a deploy without delivery URLs: a CloudFormation rule that fails before anything is created', () => {
    const rule = fresh.template.Rules?.DeliveryUrlsConfigured;
    expect(rule.Assertions).toHaveLength(1);
    const [assertion] = rule.Assertions;
    expect(assertion.Assert).toEqual({ 'Fn::Equals': [{ Ref: 'MissingDeliveryUrlsAllowed' }, 'yes'] });
    expect(assertion.AssertDescription).toMatch(
      /^No delivery URL is set for context dealAnalysisWebhookUrl, dataAnalysisWebhookUrl, leadAnalysisWebhookUrl, generalWebhookUrl: .*allowMissingDeliveryUrls=true/,
    );
    expect(fresh.template.Parameters.MissingDeliveryUrlsAllowed).toMatchObject({
      Default: 'no',
      AllowedValues: ['yes', 'no'],
    });
    expect(fresh.stderr).toMatch(/cdk deploy will be refused: No delivery URL is set/);
  });
});

describe('npx cdk synth with a bad setting', () => {
  it('stops with one line naming the key, not a stack trace', async () => {
    const { code, stderr } = await failedSynth({ logRetentionDays: 'abc' });
    expect(code).toBe(1);
    expect(stderr.trim()).toBe('Invalid configuration: context logRetentionDays must be an integer >= 1, got abc');
  }, 60_000);

  it('refuses a misspelt key instead of ignoring it, naming the key it resembles', async () => {
    const { code, stderr } = await failedSynth({ logRetentionDay: '7' });
    expect(code).toBe(1);
    expect(stderr.trim()).toBe(
      'Invalid configuration: context logRetentionDay is not a setting of this stack (did you mean logRetentionDays?): docs/deploy.md, "Configuration", lists them',
    );
  }, 60_000);
});
