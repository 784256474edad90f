import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import type { AwsSolutionsChecks } from 'cdk-nag';
import { addAwsSolutionsChecks } from '../../../infra/checks.ts';
import type { GatewayConfig } from '../../../infra/config.ts';
import { PROJECT_ROOT } from '../../../infra/constructs/stage-function.ts';
import { WebhookGatewayStack } from '../../../infra/webhook-gateway-stack.ts';

/** The context `npx cdk synth` uses (cdk.json), so tests synthesize what the CLI synthesizes. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as {
    context: Record<string, unknown>;
  };
  return cdkJson.context;
}

/** The four delivery URLs as an operator sets them (context keys of infra/config.ts). */
export const DELIVERY_URL_CONTEXT = {
  dealAnalysisWebhookUrl: 'https://receiver.example.com/hooks/deal',
  dataAnalysisWebhookUrl: 'https://receiver.example.com/hooks/data',
  leadAnalysisWebhookUrl: 'https://receiver.example.com/hooks/lead',
  generalWebhookUrl: 'https://receiver.example.com/hooks/general',
} as const;

/**
 * The optional features switched on: per-source API keys and usage plans, the alarm topic with an e-mail, API
 * logging with the account-wide API Gateway CloudWatch role.
 */
export const OPTIONAL_FEATURES_CONTEXT = {
  createApiGatewayCloudWatchRole: true,
  sourceRateLimits: {
    testing_system: { rateLimit: 10, burstLimit: 20, quotaPerDay: 10_000 },
    'crm.sync-2': { rateLimit: 2.5, burstLimit: 5 },
  },
  alarmEmail: 'revops-oncall@example.com',
} as const;

export interface Synthesized {
  app: App;
  stack: WebhookGatewayStack;
  template: Template;
  assembly: CloudAssembly;
  outdir: string;
  /** The cdk-nag pack registered as infra/app.ts registers it (when asked for). */
  checks: AwsSolutionsChecks | undefined;
  /** Remove the cloud assembly directory. */
  cleanup(): void;
}

export interface SynthOptions {
  /** Extra CDK context (as `-c key=value` would give it). */
  context?: Record<string, unknown>;
  config?: Partial<GatewayConfig>;
  /** Bundle the functions with esbuild (slow: a few seconds). Off: the stack is checked without code. */
  bundle?: boolean;
  /** Register cdk-nag's AwsSolutions checks as infra/app.ts does. */
  checks?: boolean;
  /**
   * Run CDK's built-in CloudFormation validation (schemas and rules, as `cdk synth` does). It costs over a second
   * per process, so one test file runs it and the others skip it.
   */
  cfnValidation?: boolean;
  /** The stack's name (its construct id, as infra/app.ts names it); TestGateway by default. */
  stackName?: string;
}

/**
 * Synthesize the stack once, as the CLI would but without credentials or Docker: CDK_DOCKER points at a command
 * that always fails, so a bundling that fell back to Docker would fail the test, and the AWS credential variables
 * are removed. The assembly is written under
 * node_modules/.cache so that the bundles resolve the project's node_modules when a test imports them.
 */
export function synthesize(options: SynthOptions = {}): Synthesized {
  process.env.CDK_DOCKER = '/bin/false';
  // No credentials either (test/setup.ts sets fake ones for the other suites; this file's worker drops them).
  for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'])
    delete process.env[name];
  const parent = path.join(PROJECT_ROOT, 'node_modules', '.cache', 'webhook-gateway-infra-test');
  mkdirSync(parent, { recursive: true });
  const outdir = mkdtempSync(path.join(parent, 'cdk.out-'));
  const app = new App({
    outdir,
    builtinCloudFormationValidation: options.cfnValidation ?? false,
    context: {
      ...cdkJsonContext(),
      ...(options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }),
      ...options.context,
    },
  });
  // CDK announces each bundle on stderr ("Bundling asset …"): not news in a test run, so those lines are dropped.
  const write = process.stderr.write;
  process.stderr.write = ((chunk: unknown, ...rest: unknown[]) =>
    String(chunk).startsWith('Bundling asset ')
      ? true
      : (write as (...args: unknown[]) => boolean).call(process.stderr, chunk, ...rest)) as typeof write;
  let stack: WebhookGatewayStack;
  let checks: ReturnType<typeof addAwsSolutionsChecks> | undefined;
  let assembly: ReturnType<App['synth']>;
  try {
    stack = new WebhookGatewayStack(app, options.stackName ?? 'TestGateway', { config: options.config });
    checks = options.checks ? addAwsSolutionsChecks(app) : undefined;
    assembly = app.synth();
  } catch (error) {
    rmSync(outdir, { recursive: true, force: true }); // a refused configuration leaves no folder behind
    throw error;
  } finally {
    process.stderr.write = write;
  }
  const template = Template.fromJSON(assembly.getStackByName(stack.stackName).template as Record<string, unknown>);
  return {
    app,
    stack,
    template,
    assembly,
    outdir,
    checks,
    cleanup: () => rmSync(outdir, { recursive: true, force: true }),
  };
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * A CloudFormation value as text: strings as they are, `Fn::Join` joined, and every other intrinsic written as
 * `{Ref:Name}` / `{GetAtt:Name.Attr}` / `{Sub:…}` so a test can compare whole templates.
 */
export function cfnText(value: Json | undefined): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || Array.isArray(value)) return JSON.stringify(value);
  if ('Fn::Join' in value) {
    const [sep, parts] = value['Fn::Join'] as [string, Json[]];
    return parts.map((part) => cfnText(part)).join(sep);
  }
  if ('Ref' in value) return `{Ref:${String(value.Ref)}}`;
  if ('Fn::GetAtt' in value) return `{GetAtt:${(value['Fn::GetAtt'] as string[]).join('.')}}`;
  if ('Fn::Sub' in value) return `{Sub:${cfnText(value['Fn::Sub'])}}`;
  return JSON.stringify(value);
}

export interface Statement {
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource?: Json;
  Principal?: Json;
  Condition?: Record<string, Record<string, unknown>>;
}

export interface PolicyStatementAt {
  /** Logical id of the resource holding the policy. */
  holder: string;
  holderType: string;
  /** For AWS::IAM::Policy: logical ids of the roles it is attached to. */
  roles: string[];
  statement: Statement;
}

export const actionsOf = (statement: Statement): string[] => ([] as string[]).concat(statement.Action);
export const resourcesOf = (statement: Statement): Json[] =>
  statement.Resource === undefined ? [] : Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];

/** Every statement of every policy in the template: IAM policies, roles' inline policies, bucket and queue policies. */
export function allPolicyStatements(template: Template): PolicyStatementAt[] {
  const out: PolicyStatementAt[] = [];
  const resources = template.toJSON().Resources as Record<string, { Type: string; Properties?: Record<string, Json> }>;
  for (const [id, resource] of Object.entries(resources)) {
    const props = resource.Properties ?? {};
    const documents: Json[] = [];
    if (
      ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy', 'AWS::S3::BucketPolicy', 'AWS::SQS::QueuePolicy'].includes(
        resource.Type,
      )
    ) {
      documents.push(props.PolicyDocument ?? null);
    }
    if (resource.Type === 'AWS::IAM::Role') {
      for (const inline of (props.Policies as Json[] | undefined) ?? [])
        documents.push((inline as Record<string, Json>).PolicyDocument ?? null);
    }
    const roles = ((props.Roles as Json[] | undefined) ?? []).map((r) => String((r as { Ref: string }).Ref));
    for (const document of documents) {
      for (const statement of (document as { Statement?: Statement[] } | null)?.Statement ?? []) {
        out.push({ holder: id, holderType: resource.Type, roles, statement });
      }
    }
  }
  return out;
}

/** Logical id of a stack function (`Functions<Stage>`: Validate, Classify, Deliver, Export, Status …). */
export function functionId(template: Template, stage: string): string {
  return logicalId(template, 'AWS::Lambda::Function', `Functions${stage}`);
}

/** Logical id of a stack function's role. */
export function functionRoleId(template: Template, stage: string): string {
  const fn = template.toJSON().Resources[functionId(template, stage)] as { Properties: { Role: Json } };
  return String((fn.Properties.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]);
}

/** Logical id of the only resource of `type` whose id starts with `prefix`. */
export function logicalId(template: Template, type: string, prefix: string): string {
  const ids = Object.keys(template.findResources(type)).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1)
    throw new Error(`expected one ${type} starting with ${prefix}, found ${ids.join(', ') || 'none'}`);
  return ids[0] as string;
}
