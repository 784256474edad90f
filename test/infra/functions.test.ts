import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STACK_NAME_VARIABLE } from '../../functions/domain/observability.ts';
import { METRICS_NAMESPACE, SERVICE_NAME } from '../../functions/shared/powertools.ts';
import { DEFAULT_CONFIG } from '../../infra/config.ts';
import { BUNDLE_FILE, CREDENTIAL_FALLBACK_MODULES, FIRST_USE_SDK_MODULES } from '../../infra/stage-bundle.ts';
import { codeFiles, dynamicImports, firstUseChunk, initPath, staticImports } from './support/bundle-files.ts';
import {
  actionsOf,
  allPolicyStatements,
  cfnText,
  DELIVERY_URL_CONTEXT,
  type Json,
  logicalId,
  resourcesOf,
  type Synthesized,
  synthesize,
} from './support/synth.ts';

// One synthesis for the whole file, with the functions really bundled by the local esbuild: CDK_DOCKER points
// at /bin/false, so a bundling that fell back to Docker would fail here.
let synth: Synthesized;
let template: Template;
let resources: Record<string, { Type: string; Properties: Record<string, Json> }>;
const URLS = DELIVERY_URL_CONTEXT;

beforeAll(() => {
  synth = synthesize({ bundle: true, context: URLS });
  template = synth.template;
  resources = template.toJSON().Resources;
});
afterAll(() => synth?.cleanup());

const props = (id: string) => (resources[id] as { Properties: Record<string, Json> }).Properties;

/** Each function (logical id prefix) and the variables of its own (besides the common Powertools ones). */
/** Where the attempt log and the receivers are, and the circuit breaker's policy (Deliver, Export, the scheduler). */
const DELIVERIES = [
  'DELIVERIES_TABLE_NAME',
  'ENDPOINT_FAILURE_THRESHOLD',
  'ENDPOINT_DISABLE_AFTER_DAYS',
  'ATTEMPT_LOG_RETENTION_DAYS',
];
const STAGE_FUNCTIONS = {
  Validate: [
    'INBOUND_WEBHOOK_SECRETS_ARN',
    'REQUIRE_SIGNED_WEBHOOKS',
    'IDEMPOTENCY_TABLE_NAME',
    'RESPONSE_TIMEOUT_MS',
    'MANAGER_AGENT_TIMEOUT_MS',
    'MANAGER_AGENT_FUNCTION_NAME',
    'ASYNC_AGENT_TIMEOUT_MS',
    'DELIVERY_TIMEOUT_MS',
    'STATUS_TABLE_NAME',
    'THREAD_TABLE_NAME',
    'THREAD_TTL_DAYS',
  ],
  Classify: ['POWERTOOLS_TRACE_ENABLED'],
  Deliver: [
    'DEAL_ANALYSIS_WEBHOOK_URL',
    'DATA_ANALYSIS_WEBHOOK_URL',
    'LEAD_ANALYSIS_WEBHOOK_URL',
    'GENERAL_WEBHOOK_URL',
    'DELIVERY_TIMEOUT_MS',
    'DELIVERY_SIGNING_SECRETS_ARN',
    ...DELIVERIES,
  ],
  Export: [
    'CONVERSATION_EXPORT_S3_BUCKET',
    'ENABLE_CONVERSATION_EXPORT',
    'IDEMPOTENCY_TABLE_NAME',
    'STATUS_TABLE_NAME',
    'THREAD_TABLE_NAME',
    'THREAD_TTL_DAYS',
    'POWERTOOLS_TRACE_ENABLED',
    ...DELIVERIES,
  ],
  ConversationStatus: [
    'INBOUND_WEBHOOK_SECRETS_ARN',
    'POWERTOOLS_TRACE_ENABLED',
    'REQUIRE_SIGNED_WEBHOOKS',
    'STATUS_TABLE_NAME',
  ],
  RedeliveryScheduler: [
    'FAILED_DELIVERY_QUEUE_URL',
    'FAILED_DELIVERY_DLQ_URL',
    'REDELIVERY_STATE_MACHINE_ARN',
    'REDELIVERY_SCHEDULE',
    'CONVERSATION_EXPORT_S3_BUCKET',
    'ENABLE_CONVERSATION_EXPORT',
    'STATUS_TABLE_NAME',
    ...DELIVERIES,
  ],
} as const;
type FunctionKey = keyof typeof STAGE_FUNCTIONS;
/** Where each one's resources are: the stages and the status route under Functions/, the scheduler under RedeliveryScheduler/. */
const prefixOf = (name: FunctionKey) =>
  name === 'RedeliveryScheduler' ? 'RedeliverySchedulerFunction' : `Functions${name}`;
const fnId = (name: FunctionKey) => logicalId(template, 'AWS::Lambda::Function', prefixOf(name));
const roleOf = (name: FunctionKey) => String((props(fnId(name)).Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]);
const names = Object.keys(STAGE_FUNCTIONS) as FunctionKey[];
const env = (name: FunctionKey) => (props(fnId(name)).Environment as { Variables: Record<string, Json> }).Variables;
const ref = (type: string, prefix: string) => ({ Ref: logicalId(template, type, prefix) });

describe('stage functions', () => {
  it('are the four stages, the status route and the redelivery scheduler (no Lambda waits for the agent), Node.js 22 on ARM64, traced, logging to their own log group', () => {
    expect(Object.keys(template.findResources('AWS::Lambda::Function'))).toHaveLength(names.length);
    for (const name of names) {
      const fn = props(fnId(name));
      expect(fn.Runtime).toBe('nodejs22.x');
      expect(fn.Architectures).toEqual(['arm64']);
      expect(fn.Handler).toBe('index.handler');
      expect(fn.TracingConfig).toEqual({ Mode: 'Active' });
      expect(fn.LoggingConfig).toEqual({ LogGroup: ref('AWS::Logs::LogGroup', `${prefixOf(name)}LogGroup`) });
    }
  });

  it('get the Powertools variables and only the variables of their stage', () => {
    for (const [name, own] of Object.entries(STAGE_FUNCTIONS) as [FunctionKey, readonly string[]][]) {
      const variables = env(name);
      expect(Object.keys(variables).sort(), name).toEqual(
        ['LOG_LEVEL', 'POWERTOOLS_METRICS_NAMESPACE', 'POWERTOOLS_SERVICE_NAME', STACK_NAME_VARIABLE, ...own].sort(),
      );
      expect(variables).toMatchObject({
        [STACK_NAME_VARIABLE]: synth.stack.stackName,
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        LOG_LEVEL: DEFAULT_CONFIG.logLevel,
      });
      // Source maps are shipped beside each bundle but not loaded at init: --enable-source-maps parses them at every
      // cold start (docs/performance.md, cold init).
      expect(variables.NODE_OPTIONS, name).toBeUndefined();
    }
    expect(env('Validate')).toMatchObject({
      INBOUND_WEBHOOK_SECRETS_ARN: ref('AWS::SecretsManager::Secret', 'SigningSecretsInbound'),
      REQUIRE_SIGNED_WEBHOOKS: 'false',
      IDEMPOTENCY_TABLE_NAME: ref('AWS::DynamoDB::Table', 'Idempotency'),
    });
    // Validate decides the budget (functions/domain/budget.ts) from the integration and agent timeouts.
    expect(env('Validate')).toMatchObject({
      MANAGER_AGENT_FUNCTION_NAME: DEFAULT_CONFIG.agentFunctionName,
      MANAGER_AGENT_TIMEOUT_MS: '20000',
      RESPONSE_TIMEOUT_MS: '29000',
    });
    // Asynchronous conversations and threads (docs/contract.md): Validate starts them, Export ends them.
    const asyncTables = {
      STATUS_TABLE_NAME: ref('AWS::DynamoDB::Table', 'AsyncConversationsStatus'),
      THREAD_TABLE_NAME: ref('AWS::DynamoDB::Table', 'AsyncConversationsThreads'),
      THREAD_TTL_DAYS: '30',
    };
    expect(env('Validate')).toMatchObject({
      ...asyncTables,
      ASYNC_AGENT_TIMEOUT_MS: '120000',
      DELIVERY_TIMEOUT_MS: '3000',
    });
    expect(env('Export')).toMatchObject(asyncTables);
    expect(env('ConversationStatus')).toMatchObject({
      STATUS_TABLE_NAME: asyncTables.STATUS_TABLE_NAME,
      INBOUND_WEBHOOK_SECRETS_ARN: ref('AWS::SecretsManager::Secret', 'SigningSecretsInbound'),
    });
    expect(env('Export')).toMatchObject({
      CONVERSATION_EXPORT_S3_BUCKET: ref('AWS::S3::Bucket', 'Storage'),
      ENABLE_CONVERSATION_EXPORT: 'true',
      IDEMPOTENCY_TABLE_NAME: ref('AWS::DynamoDB::Table', 'Idempotency'),
    });
    expect(env('Deliver')).toEqual(
      expect.objectContaining({
        DELIVERY_TIMEOUT_MS: '3000',
        DEAL_ANALYSIS_WEBHOOK_URL: URLS.dealAnalysisWebhookUrl,
        DATA_ANALYSIS_WEBHOOK_URL: URLS.dataAnalysisWebhookUrl,
        LEAD_ANALYSIS_WEBHOOK_URL: URLS.leadAnalysisWebhookUrl,
        GENERAL_WEBHOOK_URL: URLS.generalWebhookUrl,
        DELIVERY_SIGNING_SECRETS_ARN: ref('AWS::SecretsManager::Secret', 'SigningSecretsDelivery'),
      }),
    );
    // Classify does no I/O, Export logs its S3 time, the status route makes one read: the X-Ray SDK is not loaded
    // (Lambda still traces the function: TracingConfig Active).
    for (const name of ['Classify', 'Export', 'ConversationStatus'] as const)
      expect(env(name).POWERTOOLS_TRACE_ENABLED).toBe('false');
    for (const name of ['Validate', 'Deliver'] as const) expect(env(name).POWERTOOLS_TRACE_ENABLED).toBeUndefined();
    expect(env('RedeliveryScheduler')).toMatchObject({
      FAILED_DELIVERY_QUEUE_URL: ref('AWS::SQS::Queue', 'FailedDeliveryQueue'),
      FAILED_DELIVERY_DLQ_URL: ref('AWS::SQS::Queue', 'FailedDeliveryDeadLetterQueue'),
      REDELIVERY_STATE_MACHINE_ARN: ref('AWS::StepFunctions::StateMachine', 'RedeliveryStateMachine'),
      REDELIVERY_SCHEDULE: DEFAULT_CONFIG.redeliverySchedule,
    });
  });

  it('wait longer than what they wait for', () => {
    expect(props(fnId('Deliver')).Timeout).toBeGreaterThan(DEFAULT_CONFIG.deliveryTimeoutMs / 1000);
  });

  it('are bundled locally into minified ESM with source maps that load and export handler', () => {
    const assets = names.map((name) => {
      const key = String((props(fnId(name)).Code as { S3Key: string }).S3Key).replace(/\.zip$/, '');
      return path.join(synth.outdir, `asset.${key}`);
    });
    // Each function its own asset (CDK caches an asset by its bundling options: the build command tells them apart).
    expect(new Set(assets).size).toBe(names.length);
    /** Every code file of a function's asset, as one text (index.mjs and its chunks). */
    const allCode = (i: number) =>
      codeFiles(assets[i]!)
        .map((f) => readFileSync(path.join(assets[i]!, f), 'utf8'))
        .join('\n');
    for (const asset of assets) {
      for (const file of codeFiles(asset)) {
        expect(existsSync(`${path.join(asset, file)}.map`), `${asset}/${file}`).toBe(true);
        const code = readFileSync(path.join(asset, file), 'utf8');
        // Minified: a few long lines (template literals of the bundled SDK keep their line breaks).
        expect(code.split('\n').length).toBeLessThan(200);
        // Every SDK client is in the asset: no file imports an @aws-sdk package, statically or on first use, but the
        // credential providers Lambda never needs (CREDENTIAL_FALLBACK_MODULES of infra/stage-bundle.ts).
        for (const spec of [...staticImports(code), ...dynamicImports(code)].filter((s) => s.startsWith('@aws-sdk/')))
          expect(CREDENTIAL_FALLBACK_MODULES, `${asset}/${file}`).toContain(spec);
      }
    }
    // The DynamoDB and Secrets Manager clients of the stores: chunks of the asset, loaded on first use, never by
    // index.mjs or a chunk it imports statically (what Lambda loads at a cold start).
    const usesSecrets = new Set<FunctionKey>(['Validate', 'Deliver', 'ConversationStatus']);
    for (const [i, name] of names.entries()) {
      const dynamodb = firstUseChunk(assets[i]!, FIRST_USE_SDK_MODULES.dynamodb);
      const secrets = firstUseChunk(assets[i]!, FIRST_USE_SDK_MODULES.secretsManager);
      expect(dynamodb !== undefined, name).toBe(name !== 'Classify');
      expect(secrets !== undefined, name).toBe(usesSecrets.has(name));
      const init = initPath(assets[i]!, !['Classify', 'Export'].includes(name));
      for (const chunk of [dynamodb, secrets]) if (chunk) expect(init, name).not.toContain(chunk);
      for (const file of init)
        expect(readFileSync(path.join(assets[i]!, file), 'utf8'), `${name}/${file}`).not.toMatch(
          /serviceTarget:"(?:DynamoDB_20120810|secretsmanager)"/,
        );
    }
    // Built by infra/stage-bundle.ts: Export's S3 client without the schemas of operations it never sends.
    const exportCode = allCode(names.indexOf('Export'));
    expect(exportCode).toContain('PutObject');
    expect(exportCode).not.toContain('AnalyticsAndOperator');
    // The untraced stages are built without the Tracer (the X-Ray SDK reads AWS_XRAY_DAEMON_ADDRESS); the others keep it.
    const untraced = new Set<FunctionKey>(['Classify', 'Export', 'ConversationStatus']);
    for (const [i, name] of names.entries())
      expect(allCode(i).includes('AWS_XRAY_DAEMON_ADDRESS'), name).toBe(!untraced.has(name));
    // Standard Webhooks (signatures checked or made) stays out of the stages that do neither: Classify and Export
    // (functions/domain/intake.ts keeps Validate's step out of their bundles); Validate checks, Deliver signs.
    for (const [i, name] of names.entries())
      if (['Validate', 'Deliver', 'Classify', 'Export'].includes(name))
        expect(allCode(i).includes('No matching signature found'), name).toBe(
          name === 'Validate' || name === 'Deliver',
        );
    const bundles = assets.map((asset) => path.join(asset, BUNDLE_FILE));
    const check = `for (const f of ${JSON.stringify(bundles)}) { const m = await import(f); if (typeof m.handler !== 'function') throw new Error(f + ': no handler'); }`;
    // Both ways the Powertools Tracer is set up: on (as on Lambda, the X-Ray SDK loaded) and off (as locally).
    for (const tracing of ['true', 'false']) {
      const env = { ...process.env, NODE_NO_WARNINGS: '1', POWERTOOLS_TRACE_ENABLED: tracing };
      const run = spawnSync(process.execPath, ['--input-type=module', '-e', check], { encoding: 'utf8', env });
      expect(run.stderr, `tracing ${tracing}`).toBe('');
      expect(run.status).toBe(0);
    }
    // Tracing turned on by hand in an untraced stage, where the Tracer is not there to import (as on Lambda): the
    // stage says so and runs untraced instead of failing at init.
    const alone = mkdtempSync(path.join(tmpdir(), 'untraced-'));
    try {
      for (const name of untraced) {
        const copy = path.join(alone, name);
        cpSync(assets[names.indexOf(name)]!, copy, { recursive: true });
        const load = `const m = await import(${JSON.stringify(pathToFileURL(path.join(copy, BUNDLE_FILE)).href)}); if (typeof m.handler !== 'function') throw new Error('no handler');`;
        const env = { ...process.env, NODE_NO_WARNINGS: '1', POWERTOOLS_TRACE_ENABLED: 'true' };
        const run = spawnSync(process.execPath, ['--input-type=module', '-e', load], {
          encoding: 'utf8',
          env,
          cwd: alone,
        });
        expect(run.status, name).toBe(0);
        // One WARN line (Powertools writes warnings to stderr), nothing else.
        const lines = run.stderr.trim().split('\n');
        expect(lines, name).toHaveLength(1);
        expect(JSON.parse(lines[0]!)).toMatchObject({
          level: 'WARN',
          message: expect.stringMatching(/built without the Tracer: not traced/),
        });
      }
    } finally {
      rmSync(alone, { recursive: true, force: true });
    }
  });

  it('gives the function roles no managed policies: log writes to their own group only', () => {
    for (const name of names) {
      expect(props(roleOf(name)).ManagedPolicyArns).toBeUndefined();
      const logs = allPolicyStatements(template).filter(
        (s) => s.roles.includes(roleOf(name)) && actionsOf(s.statement).some((a) => a.startsWith('logs:')),
      );
      expect(logs.map((s) => resourcesOf(s.statement).map((r) => cfnText(r)))).toEqual([
        [`{GetAtt:${logicalId(template, 'AWS::Logs::LogGroup', `${prefixOf(name)}LogGroup`)}.Arn}`],
      ]);
    }
  });
});
