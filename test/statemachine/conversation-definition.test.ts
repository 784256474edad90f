import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_RETRY_WAIT_MS } from '../../functions/domain/delivery.ts';
import { loadDefinition } from '../../local/engine/engine.ts';
import { STATEMACHINE_DIR } from '../../local/paths.ts';

const FILE = path.join(STATEMACHINE_DIR, 'conversation.asl.json');
const aslValidator = createRequire(import.meta.url)('asl-validator') as (
  definition: unknown,
  options?: { checkPaths?: boolean; checkArn?: boolean },
) => { isValid: boolean; errorsText: (sep?: string) => string };

const SUBSTITUTIONS = {
  ValidateFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:validate',
  InvokeAgentFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:invoke-agent',
  ClassifyFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:classify',
  DeliverFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:deliver',
  ExportFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:export',
  FailedDeliveryQueueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/failed-deliveries',
};
const definition = loadDefinition(FILE, SUBSTITUTIONS) as any;
const LAMBDA_SERVICE_ERRORS = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.ClientExecutionTimeoutException',
  'Lambda.TooManyRequestsException',
];

describe('statemachine/conversation.asl.json', () => {
  it('passes asl-validator (paths and ARNs checked)', () => {
    const result = aslValidator(definition, { checkPaths: true, checkArn: true });
    expect(result.errorsText('\n')).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('uses a ${...} placeholder for every ARN and queue URL, and nothing else is substituted', () => {
    const raw = readFileSync(FILE, 'utf8');
    const placeholders = [...raw.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]);
    expect(new Set(placeholders)).toEqual(new Set(Object.keys(SUBSTITUTIONS)));
    expect(raw).not.toMatch(/arn:aws:lambda:/);
    expect(() => loadDefinition(FILE, {})).toThrow(/no substitution for \$\{/);
  });

  it('runs Validate → InvokeManagerAgent → Classify → Deliver → Export → Succeed', () => {
    const path: string[] = [];
    let name: string | undefined = definition.StartAt;
    while (name) {
      path.push(name);
      const state = definition.States[name];
      name = state.Type === 'Choice' ? state.Default : state.Next;
    }
    expect(path).toEqual([
      'Validate',
      'IsRequestValid',
      'InvokeManagerAgent',
      'Classify',
      'Deliver',
      'Export',
      'Completed',
    ]);
    expect(definition.States.Completed.Type).toBe('Succeed');
  });

  it('every Lambda task retries the recommended Lambda service errors (2 s, backoff 2)', () => {
    const lambdaTasks = Object.entries<any>(definition.States).filter(
      ([, s]) => s.Type === 'Task' && s.Resource.startsWith('arn:aws:lambda:'),
    );
    expect(lambdaTasks.map(([n]) => n).sort()).toEqual([
      'Classify',
      'CloseWithoutExport',
      'Deliver',
      'Export',
      'ExportFailedConversation',
      'InvokeManagerAgent',
      'Validate',
    ]);
    for (const [, state] of lambdaTasks) {
      const retrier = state.Retry.find((r: any) => r.ErrorEquals.includes('Lambda.ServiceException'));
      expect(retrier.ErrorEquals).toEqual(LAMBDA_SERVICE_ERRORS);
      expect(retrier).toMatchObject({ IntervalSeconds: 2, BackoffRate: 2 });
    }
  });

  it('Deliver retries its retryable error with jitter, ≥ 3 times, and a worst case well under 29 s', () => {
    const deliver = definition.States.Deliver;
    const retrier = deliver.Retry.find((r: any) => r.ErrorEquals.includes('DeliveryRetryableError'));
    expect(retrier).toMatchObject({ BackoffRate: 2, JitterStrategy: 'FULL' });
    expect(retrier.MaxAttempts).toBeGreaterThanOrEqual(3);
    let waits = 0;
    for (let i = 0; i < retrier.MaxAttempts; i++)
      waits += Math.min(retrier.IntervalSeconds * retrier.BackoffRate ** i, retrier.MaxDelaySeconds);
    const attemptTimeoutSeconds = 3; // DEFAULTS.deliveryTimeoutMs
    const worstCase = waits + (retrier.MaxAttempts + 1) * attemptTimeoutSeconds;
    expect(worstCase).toBeLessThanOrEqual(20);
    // Deliver stops retrying itself when the caller's deadline leaves no room for the longest wait (MAX_RETRY_WAIT_MS).
    expect(retrier.MaxDelaySeconds * 1000).toBe(MAX_RETRY_WAIT_MS);
    expect(retrier.ErrorEquals).not.toContain('DeliveryDeferredError');
    expect(deliver.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.delivery_error', Next: 'QueueFailedDelivery' },
    ]);
    expect(definition.States.QueueFailedDelivery).toMatchObject({
      Resource: 'arn:aws:states:::sqs:sendMessage',
      Next: 'Export',
    });
  });

  it('an agent failure is exported, then fails with AgentError; an invalid request fails with ValidationError, a bad signature with SignatureError', () => {
    expect(definition.States.InvokeManagerAgent.Catch[0]).toMatchObject({
      ErrorEquals: ['States.ALL'],
      Next: 'ExportFailedConversation',
    });
    expect(definition.States.ExportFailedConversation.Next).toBe('AgentFailed');
    expect(definition.States.AgentFailed).toMatchObject({ Type: 'Fail', Error: 'AgentError' });
    expect(definition.States.IsRequestValid.Choices).toEqual([
      { Variable: '$.duplicate', BooleanEquals: true, Next: 'ReplayFirstResponse' },
      { Variable: '$.error', StringEquals: 'SignatureError', Next: 'RejectSignature' },
      { Variable: '$.error', StringEquals: 'IdempotencyConflict', Next: 'RejectConcurrentDuplicate' },
      { Variable: '$.valid', BooleanEquals: false, Next: 'RejectRequest' },
    ]);
    expect(definition.States.ReplayFirstResponse).toMatchObject({ Type: 'Succeed', OutputPath: '$.response' });
    expect(definition.States.RejectConcurrentDuplicate).toMatchObject({
      Type: 'Fail',
      Error: 'IdempotencyConflict',
      CausePath: '$.rejection',
    });
    expect(definition.States.RejectRequest).toMatchObject({
      Type: 'Fail',
      Error: 'ValidationError',
      CausePath: '$.rejection',
    });
    expect(definition.States.RejectSignature).toMatchObject({
      Type: 'Fail',
      Error: 'SignatureError',
      CausePath: '$.rejection',
    });
  });

  it('a failed export (either Export state) is answered without S3 and queued, unless a failed delivery already is', () => {
    for (const name of ['Export', 'ExportFailedConversation']) {
      expect(definition.States[name].Catch).toEqual([
        { ErrorEquals: ['States.ALL'], ResultPath: '$.export_error', Next: 'CloseWithoutExport' },
      ]);
    }
    expect(definition.States.CloseWithoutExport).toMatchObject({
      Type: 'Task',
      Resource: SUBSTITUTIONS.ExportFunctionArn,
      Parameters: definition.States.Export.Parameters,
      Next: 'IsRedeliveryQueued',
    });
    expect(definition.States.CloseWithoutExport.Catch).toBeUndefined();
    const queued = definition.States.IsRedeliveryQueued;
    expect(queued.Default).toBe('QueueFailedExport');
    expect(queued.Choices[0].Next).toBe('AnswerWithoutExport');
    expect(queued.Choices[0].Or.map((c: any) => c.StringEquals).sort()).toEqual(['failed', 'retrying']);
    expect(definition.States.QueueFailedExport).toMatchObject({
      Resource: 'arn:aws:states:::sqs:sendMessage',
      Parameters: {
        QueueUrl: SUBSTITUTIONS.FailedDeliveryQueueUrl,
        MessageBody: { kind: 'failed_export', 'conversation.$': '$.conversation', 'export_error.$': '$.export_error' },
      },
      ResultPath: null,
      Next: 'AnswerWithoutExport',
    });
    expect(definition.States.AnswerWithoutExport).toMatchObject({
      Choices: [{ Variable: '$.failure_cause', IsPresent: true, Next: 'AgentFailed' }],
      Default: 'Completed',
    });
  });

  it('the default per-attempt delivery timeout is the one the budget above assumes', async () => {
    const { DEFAULTS } = await import('../../functions/shared/settings.ts');
    expect(DEFAULTS.deliveryTimeoutMs).toBe(3000);
  });
});
