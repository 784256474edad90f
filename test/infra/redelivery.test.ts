import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Annotations, Match, type Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDELIVERY_VISIBILITY_SECONDS } from '../../functions/shared/failed-delivery-queue.ts';
import { DEFAULT_CONFIG } from '../../infra/config.ts';
import { REDELIVERY_SCHEDULER_TIMEOUT } from '../../infra/constructs/redelivery-scheduler.ts';
import { REDELIVERY_DEFINITION_FILE } from '../../infra/constructs/redelivery-workflow.ts';
import { PROJECT_ROOT } from '../../infra/constructs/stage-function.ts';
import { STACK_OUTPUTS } from '../../infra/webhook-gateway-stack.ts';
import { AWS_STACK_OUTPUTS } from '../../local/cli/aws/stack.ts';
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

// Failed deliveries on AWS (docs/operations.md): the redelivery workflow, its scheduler and the queues they work on.
// One synthesis, no bundling.
let synth: Synthesized;
let template: Template;
let resources: Record<string, { Type: string; Properties: Record<string, Json> }>;
beforeAll(() => {
  synth = synthesize({ context: DELIVERY_URL_CONTEXT });
  template = synth.template;
  resources = template.toJSON().Resources;
});
afterAll(() => synth?.cleanup());

const props = (id: string) => (resources[id] as { Properties: Record<string, Json> }).Properties;
const id = (type: string, prefix: string) => logicalId(template, type, prefix);
const redeliveryId = () => id('AWS::StepFunctions::StateMachine', 'RedeliveryStateMachine');
const conversationId = () => id('AWS::StepFunctions::StateMachine', 'WorkflowStateMachine');
const schedulerId = () => id('AWS::Lambda::Function', 'RedeliverySchedulerFunction');
const schedulerRole = () => id('AWS::IAM::Role', 'RedeliverySchedulerFunctionRole');
const queueId = () => id('AWS::SQS::Queue', 'FailedDeliveryQueue');
const dlqId = () => id('AWS::SQS::Queue', 'FailedDeliveryDeadLetterQueue');
const fnArn = (stage: string) => ({ 'Fn::GetAtt': [id('AWS::Lambda::Function', `Functions${stage}`), 'Arn'] });
/** The statements of a role, without the log-group and X-Ray ones every function and workflow has. */
const ownStatements = (role: string) =>
  allPolicyStatements(template)
    .filter((s) => s.roles.includes(role))
    .filter((s) => !actionsOf(s.statement).every((a) => a.startsWith('logs:') || a.startsWith('xray:')));

describe('redelivery workflow', () => {
  it('is an Express state machine loaded from statemachine/redelivery.asl.json', () => {
    const sm = props(redeliveryId());
    expect(sm.StateMachineType).toBe('EXPRESS');
    expect(sm.DefinitionString).toBe(readFileSync(REDELIVERY_DEFINITION_FILE, 'utf8'));
  });

  it('runs the same Deliver and Export Lambdas as the conversation workflow, every placeholder substituted', () => {
    const substitutions = props(redeliveryId()).DefinitionSubstitutions as Record<string, Json>;
    expect(substitutions).toEqual({ DeliverFunctionArn: fnArn('Deliver'), ExportFunctionArn: fnArn('Export') });
    expect(props(conversationId()).DefinitionSubstitutions as Record<string, Json>).toMatchObject(substitutions);
    const definition = readFileSync(REDELIVERY_DEFINITION_FILE, 'utf8');
    const deployed = definition.replace(/\$\{(\w+)\}/g, (_, name: string) => cfnText(substitutions[name]));
    expect(deployed).not.toContain('${');
    expect(() => JSON.parse(deployed)).not.toThrow();
  });

  it('logs ALL events with execution data to its own log group with the retention, and traces with X-Ray', () => {
    const sm = props(redeliveryId());
    const logGroup = id('AWS::Logs::LogGroup', 'RedeliveryExecutionLogs');
    expect(sm.LoggingConfiguration).toEqual({
      Level: 'ALL',
      IncludeExecutionData: true,
      Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [logGroup, 'Arn'] } } }],
    });
    expect(sm.TracingConfiguration).toEqual({ Enabled: true });
    expect(props(logGroup).RetentionInDays).toBe(DEFAULT_CONFIG.logRetentionDays);
  });

  it('may invoke Deliver and Export, and nothing else', () => {
    const role = String((props(redeliveryId()).RoleArn as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]);
    const own = ownStatements(role).filter(
      (s) => !actionsOf(s.statement).some((a) => a.endsWith('LogDelivery') || a.startsWith('logs:')),
    );
    expect(own.map((s) => actionsOf(s.statement))).toEqual([['lambda:InvokeFunction']]);
    expect(resourcesOf(own[0]!.statement)).toEqual([fnArn('Deliver'), fnArn('Export')]);
  });

  it("is not reachable from the API: only the scheduler and the operators' policy (redrive, resend) may start it", () => {
    const starters = allPolicyStatements(template).filter(
      (s) =>
        actionsOf(s.statement).some((a) => a.startsWith('states:Start')) &&
        JSON.stringify(s.statement.Resource).includes(redeliveryId()),
    );
    expect(starters.map((s) => s.roles[0] ?? s.holder)).toEqual([
      schedulerRole(),
      id('AWS::IAM::ManagedPolicy', 'OperatorPolicy'),
    ]);
    const api = Object.entries(resources).filter(([, r]) => r.Type.startsWith('AWS::ApiGateway::'));
    expect(api.length).toBeGreaterThan(0);
    for (const [apiId, resource] of api) expect(JSON.stringify(resource), apiId).not.toContain(redeliveryId());
  });

  it('is an output, under the name the deliveries CLI reads', () => {
    expect(template.toJSON().Outputs[STACK_OUTPUTS.redeliveryStateMachineArn].Value).toEqual({ Ref: redeliveryId() });
    for (const key of Object.values(AWS_STACK_OUTPUTS)) expect(Object.values(STACK_OUTPUTS)).toContain(key);
  });
});

describe('redelivery scheduler', () => {
  it('is functions/redelivery-scheduler/handler.ts, with a 5-minute timeout and no reserved concurrency', () => {
    const fn = props(schedulerId());
    expect(fn).toMatchObject({
      Handler: 'index.handler',
      Runtime: 'nodejs22.x',
      Timeout: 300,
      TracingConfig: { Mode: 'Active' },
    });
    // Lambda keeps 100 executions of an account unreserved and a new account may have a quota of 10: a reserved
    // concurrency would fail the deploy there (context redeliverySchedulerConcurrency reserves some on purpose).
    expect(fn.ReservedConcurrentExecutions).toBeUndefined();
    expect(Annotations.fromStack(synth.stack).findWarning('*', Match.anyValue())).toEqual([]);
    const reserved = synthesize({ context: { ...DELIVERY_URL_CONTEXT, redeliverySchedulerConcurrency: 1 } });
    try {
      expect(reserved.template.toJSON().Resources[schedulerId()].Properties.ReservedConcurrentExecutions).toBe(1);
      // The synth says so: on a new account (a quota of 10) that deploy fails and rolls back.
      const warnings = Annotations.fromStack(reserved.stack).findWarning('*', Match.anyValue());
      expect(warnings.map((w) => String(w.entry.data))).toEqual([
        expect.stringMatching(
          /^redeliverySchedulerConcurrency 1 reserves Lambda concurrency: the deploy fails .*at least 100 unreserved/,
        ),
      ]);
    } finally {
      reserved.cleanup();
    }
    expect(REDELIVERY_SCHEDULER_TIMEOUT.toSeconds()).toBe(300);
    const handler = readFileSync(path.join(PROJECT_ROOT, 'functions', 'redelivery-scheduler', 'handler.ts'), 'utf8');
    expect(handler).toMatch(/export const handler\b/);
    // Every variable the stack sets is one the handler reads.
    for (const name of [
      'FAILED_DELIVERY_QUEUE_URL',
      'FAILED_DELIVERY_DLQ_URL',
      'REDELIVERY_STATE_MACHINE_ARN',
      'REDELIVERY_SCHEDULE',
    ]) {
      expect(handler).toContain(name);
    }
  });

  it('gets the queues, the redelivery workflow and the schedule', () => {
    expect((props(schedulerId()).Environment as { Variables: Record<string, Json> }).Variables).toMatchObject({
      FAILED_DELIVERY_QUEUE_URL: { Ref: queueId() },
      FAILED_DELIVERY_DLQ_URL: { Ref: dlqId() },
      REDELIVERY_STATE_MACHINE_ARN: { Ref: redeliveryId() },
      REDELIVERY_SCHEDULE: '5s,5m,30m,2h,5h,10h,10h',
      // Where it writes a delivery it gave up after its runs kept failing (functions/shared/given-up.ts).
      CONVERSATION_EXPORT_S3_BUCKET: { Ref: logicalId(template, 'AWS::S3::Bucket', 'StorageBucket') },
      ENABLE_CONVERSATION_EXPORT: 'true',
      STATUS_TABLE_NAME: { Ref: logicalId(template, 'AWS::DynamoDB::Table', 'AsyncConversationsStatus') },
    });
  });

  it('runs every minute from an EventBridge rule, without retries piling up behind a running sweep', () => {
    const rules = Object.values(template.findResources('AWS::Events::Rule'));
    expect(rules).toHaveLength(1);
    expect(rules[0]!.Properties).toMatchObject({
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Targets: [{ Arn: { 'Fn::GetAtt': [schedulerId(), 'Arn'] }, RetryPolicy: { MaximumRetryAttempts: 0 } }],
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [schedulerId(), 'Arn'] },
      SourceArn: { 'Fn::GetAtt': [id('AWS::Events::Rule', 'RedeliveryScheduler'), 'Arn'] },
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: schedulerId() },
      MaximumRetryAttempts: 0,
      MaximumEventAgeInSeconds: 60,
    });
  });

  it("may work the failed-delivery queue, dead-letter, start the redelivery workflow, read the receivers and the attempt log, claim a redelivery, write a given-up delivery's export and status: nothing else", () => {
    const own = ownStatements(schedulerRole()).map((s) => ({
      actions: actionsOf(s.statement).sort(),
      resources: resourcesOf(s.statement),
    }));
    expect(own).toEqual([
      {
        actions: [
          'sqs:ChangeMessageVisibility',
          'sqs:DeleteMessage',
          'sqs:GetQueueAttributes',
          'sqs:ReceiveMessage',
          'sqs:SendMessage',
        ],
        resources: [{ 'Fn::GetAtt': [queueId(), 'Arn'] }],
      },
      { actions: ['sqs:SendMessage'], resources: [{ 'Fn::GetAtt': [dlqId(), 'Arn'] }] },
      { actions: ['states:StartSyncExecution'], resources: [{ Ref: redeliveryId() }] },
      {
        actions: ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query'],
        resources: [{ 'Fn::GetAtt': [logicalId(template, 'AWS::DynamoDB::Table', 'DeliveriesTable'), 'Arn'] }],
      },
      {
        actions: ['dynamodb:DeleteItem', 'dynamodb:PutItem'],
        resources: [{ 'Fn::GetAtt': [logicalId(template, 'AWS::DynamoDB::Table', 'DeliveriesTable'), 'Arn'] }],
      },
      {
        actions: ['s3:PutObject'],
        resources: [
          {
            'Fn::Join': [
              '',
              [
                { 'Fn::GetAtt': [logicalId(template, 'AWS::S3::Bucket', 'StorageBucket'), 'Arn'] },
                '/conversation-history/*',
              ],
            ],
          },
        ],
      },
      {
        actions: ['dynamodb:UpdateItem'],
        resources: [{ 'Fn::GetAtt': [logicalId(template, 'AWS::DynamoDB::Table', 'AsyncConversationsStatus'), 'Arn'] }],
      },
    ]);
    // Its writes in the deliveries table are its redelivery claims, under a conversation's key
    // (functions/shared/redelivery-claim.ts): never a receiver's item (`endpoint#<type>`) nor a rate counter.
    expect(ownStatements(schedulerRole())[4]!.statement.Condition).toEqual({
      'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['conversation#*'] },
    });
    // SSE-SQS: no customer-managed key to grant.
    expect(props(queueId()).KmsMasterKeyId).toBeUndefined();
    expect(props(dlqId()).KmsMasterKeyId).toBeUndefined();
  });
});

describe('failed-delivery queues', () => {
  it('hide a received message longer than a scheduler run, itself longer than one redelivery execution', () => {
    const definition = JSON.parse(readFileSync(REDELIVERY_DEFINITION_FILE, 'utf8')) as { TimeoutSeconds: number };
    const visibility = props(queueId()).VisibilityTimeout as number;
    expect(visibility).toBeGreaterThan(props(schedulerId()).Timeout as number);
    expect(props(schedulerId()).Timeout as number).toBeGreaterThan(definition.TimeoutSeconds);
    // The scheduler asks for its own visibility on each receive: still longer than one redelivery execution.
    expect(REDELIVERY_VISIBILITY_SECONDS).toBeGreaterThan(definition.TimeoutSeconds);
  });

  it('dead-letter a message the scheduler keeps failing on after 5 receives', () => {
    expect(props(queueId()).RedrivePolicy).toEqual({
      deadLetterTargetArn: { 'Fn::GetAtt': [dlqId(), 'Arn'] },
      maxReceiveCount: 5,
    });
  });
});
