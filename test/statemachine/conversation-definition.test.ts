import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SYNC_RESERVES } from '../../functions/domain/budget.ts';
import { LAMBDA_REFUSALS, MAX_RETRY_WAIT_MS } from '../../functions/domain/delivery.ts';
import { loadDefinition } from '../../local/engine/engine.ts';
import { STATEMACHINE_DIR } from '../../local/paths.ts';
import { aslValidator } from '../support/asl-validator.ts';

const FILE = path.join(STATEMACHINE_DIR, 'conversation.asl.json');

const SUBSTITUTIONS = {
  ValidateFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:validate',
  AgentFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:revops-manager-agent-wrapper',
  ClassifyFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:classify',
  DeliverFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:deliver',
  ExportFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:export',
  FailedDeliveryQueueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/failed-deliveries',
  Partition: 'aws',
};
const definition = loadDefinition(FILE, SUBSTITUTIONS) as any;
/** Lambda's refusals to run a function: the list the domain reads a redelivery's Deliver refusal by, too. */
const LAMBDA_SERVICE_ERRORS = LAMBDA_REFUSALS;

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

  it('runs Validate → InvokeManagerAgent → Classify → Deliver → Export, which ends it with the response', () => {
    const path: string[] = [];
    let name: string | undefined = definition.StartAt;
    while (name) {
      path.push(name);
      const state = definition.States[name];
      name = state.Type === 'Choice' ? state.Default : state.Next;
    }
    expect(path).toEqual(['Validate', 'IsRequestValid', 'InvokeManagerAgent', 'Classify', 'Deliver', 'Export']);
    expect(definition.States.Export).toMatchObject({ OutputPath: '$.response', End: true });
    expect(definition.States.Completed.Type).toBe('Succeed');
  });

  /** Worst-case waits of a retrier, in seconds (each wait capped by MaxDelaySeconds). */
  const retryWaits = (r: any) => {
    let waits = 0;
    for (let n = 0; n < r.MaxAttempts; n++)
      waits += Math.min(r.IntervalSeconds * r.BackoffRate ** n, r.MaxDelaySeconds ?? Infinity);
    return waits;
  };

  it('Lambda refusing to run a state: retried briefly before the agent (1 s, then 2 s at most, full jitter), caught after it', () => {
    const lambdaTasks = Object.entries<any>(definition.States).filter(
      ([, s]) => s.Type === 'Task' && s.Resource.startsWith('arn:aws:lambda:'),
    );
    const retried = lambdaTasks.filter(([, s]) =>
      s.Retry?.some((r: any) => r.ErrorEquals.includes('Lambda.ServiceException')),
    );
    // Validate, and the accepted run's export when Validate was throttled (no agent waited for): their retries come
    // before the agent's budget is set (functions/domain/budget.ts).
    expect(retried.map(([n]) => n).sort()).toEqual(['ExportNotStarted', 'Validate']);
    for (const [name, state] of retried) {
      const retrier = state.Retry.find((r: any) => r.ErrorEquals.includes('Lambda.ServiceException'));
      expect(retrier.ErrorEquals, name).toEqual(LAMBDA_SERVICE_ERRORS);
      expect(retrier, name).toMatchObject({
        IntervalSeconds: 1,
        MaxAttempts: 2,
        MaxDelaySeconds: 2,
        JitterStrategy: 'FULL',
      });
    }
    // After the agent, none of Lambda's refusals is retried: each state's Catch takes it at once, within the budget
    // (test/infra/timeout-chain.test.ts walks every path).
    const caughtAtOnce = lambdaTasks.filter(([n]) => !retried.some(([r]) => r === n)).map(([n]) => n);
    expect(caughtAtOnce.sort()).toEqual([
      'Classify',
      'CloseWithoutExport',
      'Deliver',
      'Export',
      'ExportFailedConversation',
      'RecordOnlyInLogs',
    ]);
    for (const name of caughtAtOnce) {
      const errors = (definition.States[name].Retry ?? []).flatMap((r: any) => r.ErrorEquals);
      for (const error of LAMBDA_SERVICE_ERRORS) expect(errors, name).not.toContain(error);
      expect(
        definition.States[name].Catch.some((c: any) => c.ErrorEquals.includes('States.ALL')),
        name,
      ).toBe(true);
    }
  });

  it('the state machine invokes the agent itself, for the budget Validate decided, and keeps only the answer', () => {
    const agent = definition.States.InvokeManagerAgent;
    expect(agent).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      TimeoutSecondsPath: '$.budget.agent_seconds',
      // The Invoke response is reduced to the parsed payload and the state's entry time, kept on the record.
      ResultSelector: { 'answer.$': '$.Payload', 'invoked_at.$': '$$.State.EnteredTime' },
      ResultPath: '$.conversation.pending_answer',
      Next: 'Classify',
    });
    expect(agent.Parameters.FunctionName).toBe(SUBSTITUTIONS.AgentFunctionArn);
    // The agent contract's request (docs/contract.md): the question, who asked it, and its thread (or null).
    expect(Object.keys(agent.Parameters.Payload).sort()).toEqual(
      ['conversation_id.$', 'metadata.$', 'query.$', 'source_process.$', 'source_system.$', 'thread.$'].sort(),
    );
    expect(agent.Parameters.Payload['thread.$']).toBe('$.thread');
    // Only a throttled agent (it did not run) is invoked again; a timeout never is.
    expect(agent.Retry).toEqual([
      expect.objectContaining({ ErrorEquals: ['Lambda.TooManyRequestsException'], MaxAttempts: 2, MaxDelaySeconds: 2 }),
    ]);
    expect(agent.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.agent_error', Next: 'ExportFailedConversation' },
    ]);
    // Classify records the answer with the time it arrived.
    expect(definition.States.Classify.Parameters).toEqual({ 'state.$': '$', 'answered_at.$': '$$.State.EnteredTime' });
  });

  it('the budget reserves are the definition numbers: agent retries and the S3-refused path fit their reserves', () => {
    expect(retryWaits(definition.States.InvokeManagerAgent.Retry[0]) * 1000).toBe(SYNC_RESERVES.agentRetryWaits);
    // After Export gives up (answer_by - fallback): CloseWithoutExport, then QueueFailedExport, one send bounded by
    // its TimeoutSeconds and not retried, within its own reserve (the closing run's store calls end before it).
    for (const name of ['QueueFailedDelivery', 'QueueFailedExport']) {
      expect(definition.States[name].Retry, name).toBeUndefined();
      expect(definition.States[name].TimeoutSeconds * 1000, name).toBeLessThanOrEqual(SYNC_RESERVES.queue);
    }
    expect(SYNC_RESERVES.queue).toBeLessThan(SYNC_RESERVES.fallback);
    // Export retries S3 once, 1 s later (the handler only asks for it when the retry still fits).
    expect(definition.States.Export.Retry.find((r: any) => r.ErrorEquals.includes('ExportError'))).toMatchObject({
      IntervalSeconds: 1,
      MaxAttempts: 1,
    });
    // The workflow's own TimeoutSeconds is the Express limit: a backstop for any budget, sync or async.
    expect(definition.TimeoutSeconds).toBe(300);
  });

  it('no answer is lost: every Task after the agent answered has a Catch for every error, ending in an export or a queue', () => {
    const afterAgent = [
      'Classify',
      'Deliver',
      'QueueFailedDelivery',
      'Export',
      'CloseWithoutExport',
      'QueueFailedExport',
      'RecordOnlyInLogs',
    ];
    for (const name of afterAgent) {
      const state = definition.States[name];
      expect(
        state.Catch?.some((c: any) => c.ErrorEquals.includes('States.ALL')),
        name,
      ).toBe(true);
    }
    expect(definition.States.Classify.Catch).toEqual([
      { ErrorEquals: ['AgentAnswerRejected'], ResultPath: '$.agent_error', Next: 'ExportFailedConversation' },
      { ErrorEquals: ['States.ALL'], ResultPath: '$.classify_error', Next: 'Deliver' },
    ]);
    expect(definition.States.QueueFailedDelivery.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.delivery_queue_error', Next: 'Export' },
    ]);
    expect(definition.States.CloseWithoutExport.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.close_error', Next: 'QueueFailedExport' },
    ]);
    expect(definition.States.QueueFailedExport.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.export_queue_error', Next: 'RecordOnlyInLogs' },
    ]);
    expect(definition.States.RecordOnlyInLogs).toMatchObject({
      Resource: SUBSTITUTIONS.ExportFunctionArn,
      ResultPath: null,
      Next: 'AnswerWithoutExport',
    });
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
    // After a failed Classify, Deliver refuses an answer Classify would have: exported as failed (502), not delivered.
    expect(deliver.Catch).toEqual([
      { ErrorEquals: ['AgentAnswerRejected'], ResultPath: '$.agent_error', Next: 'ExportFailedConversation' },
      { ErrorEquals: ['States.ALL'], ResultPath: '$.delivery_error', Next: 'DeliveryFailed' },
    ]);
    expect(definition.States.QueueFailedDelivery).toMatchObject({
      Resource: 'arn:aws:states:::sqs:sendMessage',
      Next: 'Export',
    });
  });

  it('a failed delivery is closed once: the moment it failed goes in the envelope, and Export closes its record then too', () => {
    // JSONPath only: a Pass reads the context object, and both the envelope (QueueFailedDelivery) and Export get it.
    // Before: the envelope's copy was closed when queued, Export's a few ms later, and a redelivery re-exported the
    // envelope's, changing completed_at and total_time_ms.
    expect(definition.States.DeliveryFailed).toMatchObject({
      Type: 'Pass',
      Parameters: { 'at.$': '$$.State.EnteredTime' },
      ResultPath: '$.delivery_failed',
      Next: 'QueueFailedDelivery',
    });
    expect(definition.States.QueueFailedDelivery.Parameters.MessageBody['closed_at.$']).toBe('$.delivery_failed.at');
  });

  it('an agent failure is exported, then fails with AgentError or AgentTimeout; an invalid request fails with ValidationError, a bad signature with SignatureError', () => {
    expect(definition.States.ExportFailedConversation.Next).toBe('AgentFailed');
    expect(definition.States.AgentFailed).toEqual(
      expect.objectContaining({ Type: 'Fail', ErrorPath: '$.failure_error', CausePath: '$.failure_cause' }),
    );
    expect(definition.States.IsRequestValid.Choices).toEqual([
      { Variable: '$.duplicate', BooleanEquals: true, Next: 'ReplayFirstResponse' },
      { Variable: '$.error', StringEquals: 'SignatureError', Next: 'RejectSignature' },
      { Variable: '$.error', StringEquals: 'IdempotencyConflict', Next: 'RejectConcurrentDuplicate' },
      { Variable: '$.error', StringEquals: 'SourceMismatch', Next: 'RejectSourceMismatch' },
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
    expect(definition.States.RejectSourceMismatch).toMatchObject({
      Type: 'Fail',
      Error: 'SourceMismatch',
      CausePath: '$.rejection',
    });
    expect(definition.States.RejectSignature).toMatchObject({
      Type: 'Fail',
      Error: 'SignatureError',
      CausePath: '$.rejection',
    });
  });

  it('a failed export (either Export state) is answered without S3 and queued, unless a queued failed delivery already carries it', () => {
    for (const name of ['Export', 'ExportFailedConversation']) {
      expect(definition.States[name].Catch.at(-1)).toEqual({
        ErrorEquals: ['States.ALL'],
        ResultPath: '$.export_error',
        Next: 'CloseWithoutExport',
      });
    }
    // An answer still pending (Classify failed, then Lambda did not run Deliver) that Classify would have refused:
    // Export refuses it before writing, and the conversation is exported as failed (502).
    expect(definition.States.Export.Catch[0]).toEqual({
      ErrorEquals: ['AgentAnswerRejected'],
      ResultPath: '$.agent_error',
      Next: 'ExportFailedConversation',
    });
    expect(definition.States.ExportFailedConversation.Catch).toHaveLength(1);
    expect(definition.States.CloseWithoutExport).toMatchObject({
      Type: 'Task',
      Resource: SUBSTITUTIONS.ExportFunctionArn,
      Parameters: definition.States.Export.Parameters,
      Next: 'IsRedeliveryQueued',
    });
    const queued = definition.States.IsRedeliveryQueued;
    expect(queued.Default).toBe('QueueFailedExport');
    expect(queued.Choices[0]).toEqual({
      Variable: '$.delivery_queue_error',
      IsPresent: true,
      Next: 'QueueFailedExport',
    });
    expect(queued.Choices[1].Next).toBe('AnswerWithoutExport');
    expect(queued.Choices[1].Or.map((c: any) => c.StringEquals).sort()).toEqual(['failed', 'queued', 'retrying']);
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
      Choices: [
        { Variable: '$.failure_cause', IsPresent: true, Next: 'AgentFailed' },
        { Variable: '$.response', IsPresent: true, Next: 'Completed' },
      ],
      Default: 'ConversationUnanswered',
    });
  });

  it('the default per-attempt delivery timeout is the one the budget above assumes', async () => {
    const { DEFAULTS } = await import('../../functions/shared/settings.ts');
    expect(DEFAULTS.deliveryTimeoutMs).toBe(3000);
  });
});
