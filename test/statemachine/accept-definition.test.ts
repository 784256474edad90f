import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadDefinition } from '../../local/engine/engine.ts';
import { STATEMACHINE_DIR } from '../../local/paths.ts';
import { aslValidator } from '../support/asl-validator.ts';

const SUBSTITUTIONS = {
  ValidateFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:validate',
  ExportFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:export',
  ConversationStateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:conversation',
  Partition: 'aws',
};
const accept = loadDefinition(path.join(STATEMACHINE_DIR, 'accept.asl.json'), SUBSTITUTIONS) as any;
const conversation = loadDefinition(path.join(STATEMACHINE_DIR, 'conversation.asl.json'), {
  ValidateFunctionArn: 'v',
  AgentFunctionArn: 'a',
  ClassifyFunctionArn: 'c',
  DeliverFunctionArn: 'd',
  ExportFunctionArn: 'e',
  FailedDeliveryQueueUrl: 'q',
  Partition: 'aws',
}) as any;

describe('statemachine/accept.asl.json', () => {
  it('passes asl-validator (paths and ARNs checked) with exactly its three placeholders', () => {
    const result = aslValidator(structuredClone(accept), { checkPaths: true, checkArn: true });
    expect(result.errorsText('\n')).toBe('');
    expect(() => loadDefinition(path.join(STATEMACHINE_DIR, 'accept.asl.json'), {})).toThrow(/no substitution/);
  });

  it('validates like the conversation workflow (same choices and refusals), told that the caller will not wait', () => {
    expect(accept.States.Validate.Parameters).toEqual({ 'accept.$': '$' });
    expect(accept.States.Validate.Retry).toEqual(conversation.States.Validate.Retry);
    expect(accept.States.IsRequestValid.Choices).toEqual(conversation.States.IsRequestValid.Choices);
    const refusals = (accept.States.IsRequestValid.Choices as { Next: string }[])
      .map((choice) => choice.Next)
      .filter((next) => next !== 'ReplayFirstResponse');
    expect(refusals).toEqual(['RejectSignature', 'RejectConcurrentDuplicate', 'RejectSourceMismatch', 'RejectRequest']);
    for (const refusal of refusals) expect(accept.States[refusal]).toEqual(conversation.States[refusal]);
    expect(accept.States.ReplayFirstResponse.OutputPath).toBe('$.response');
  });

  it('starts the conversation state machine asynchronously, named after the conversation, with what Validate accepted', () => {
    const start = accept.States.StartConversation;
    expect(start.Resource).toBe('arn:aws:states:::states:startExecution');
    expect(start.Parameters).toEqual({
      StateMachineArn: SUBSTITUTIONS.ConversationStateMachineArn,
      'Name.$': '$.conversation.conversation_id',
      Input: { 'accepted.$': '$' },
    });
    expect(start.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.start_error', Next: 'ExportNotStarted' },
    ]);
    expect(accept.States.Accepted).toMatchObject({ Type: 'Pass', End: true });
    expect(accept.States.ExportNotStarted.Next).toBe('NotStarted');
    expect(accept.States.NotStarted).toMatchObject({ ErrorPath: '$.failure_error', CausePath: '$.failure_cause' });
    expect(JSON.parse(accept.States.NotStartedUnrecorded.Cause).error.code).toBe('NOT_STARTED');
  });

  it('when neither the start nor the export worked, frees the key (Validate, told unstarted) before saying "send it again"', () => {
    expect(accept.States.ExportNotStarted.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.export_error', Next: 'FreeUnstartedKey' },
    ]);
    const free = accept.States.FreeUnstartedKey;
    expect(free).toMatchObject({
      Type: 'Task',
      Resource: SUBSTITUTIONS.ValidateFunctionArn,
      Parameters: { unstarted: { 'conversation.$': '$.conversation' } },
      ResultPath: null,
      Next: 'NotStartedUnrecorded',
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.free_key_error', Next: 'NotStartedKeyHeld' }],
    });
    expect(free.Retry).toEqual(accept.States.Validate.Retry);
    expect(JSON.parse(accept.States.NotStartedUnrecorded.Cause).error.message).toMatch(/send it again$/);
    const held = accept.States.NotStartedKeyHeld;
    expect(held.Error).toBe('ConversationNotStarted');
    expect(JSON.parse(held.Cause).error.message).toMatch(/with the same one after 7 minutes/);
  });
});
