/**
 * The CloudWatch Logs events an Express state machine writes for one execution at level ALL, rendered from what the
 * local engine ran (its state events and, through a TaskObserver, each task's effective input and raw result), in
 * the shape the Step Functions developer guide documents for Express logging: one JSON object per history event —
 * `{id, type, details, previous_event_id, event_timestamp, execution_arn, redrive_count}` — whose `details` carry the
 * state's input/output (or a task's parameters/result) as escaped JSON strings when execution data is included.
 * The cost model bills these bytes (ingestion and the data-protection scan).
 *
 * Event types: ExecutionStarted; per Task state TaskStateEntered, then for a Lambda function ARN
 * LambdaFunctionScheduled (effective input), LambdaFunctionStarted, LambdaFunctionSucceeded (raw result), and for a
 * service integration (`arn:<partition>:states:::…`) TaskScheduled (parameters), TaskStarted, TaskSucceeded (raw result);
 * then TaskStateExited (output); per other state <Type>StateEntered and <Type>StateExited; ExecutionSucceeded or
 * ExecutionFailed. Retries and failures of tasks are not rendered (the cost model is the happy path).
 */
import type { HistoryEvent, TaskObserver } from '../../local/engine/engine.ts';

/** Express logs cut a payload at 256 KB (inputDetails.truncated). */
const PAYLOAD_CAP = 256 * 1024;
/** A typical execution ARN of the deployed stack (lengths matter, not values). */
const EXECUTION_ARN =
  'arn:aws:states:us-east-1:123456789012:express:WebhookConversationGatewayConversation:3f0e2a4c-1b2d-4e5f-8a9b-0c1d2e3f4a5b:7d9c1e2f-3a4b-4c5d-8e9f-0a1b2c3d4e5f';
const ROLE_ARN =
  'arn:aws:iam::123456789012:role/WebhookConversationGateway-ConversationWorkflowStateMachineRo-AbCdEfGhIjKl';
const FUNCTION_ARN =
  'arn:aws:lambda:us-east-1:123456789012:function:WebhookConversationGateway-ValidateFunction-AbCdEfGhIjKl';

interface AslState {
  Type: string;
  Resource?: string;
  TimeoutSeconds?: number;
}

/** What one task was given and returned, as the engine's TaskObserver sees it. */
export interface TaskCall {
  state: string;
  /** The effective input (after Parameters); undefined when the state has none (then it is the state's input). */
  parameters: unknown;
  result: unknown;
}

/** A TaskObserver that keeps every task call of one execution, in order. */
export function taskRecorder(): { observer: TaskObserver; calls: TaskCall[] } {
  const calls: TaskCall[] = [];
  const open = new Map<string, TaskCall>();
  return {
    calls,
    observer: {
      enter(state, parameters) {
        const call = { state, parameters, result: undefined };
        open.set(state, call);
        calls.push(call);
      },
      exit(state, output) {
        const call = open.get(state);
        if (call) call.result = output;
      },
      fail() {},
    },
  };
}

function payload(value: unknown, includeData: boolean, name: 'input' | 'output' | 'parameters') {
  if (!includeData) return {};
  const text = JSON.stringify(value ?? null);
  const truncated = Buffer.byteLength(text) > PAYLOAD_CAP;
  const kept = truncated ? Buffer.from(text).subarray(0, PAYLOAD_CAP).toString('utf8') : text;
  if (name === 'parameters') return { parameters: kept };
  return { [name]: kept, [`${name}Details`]: { truncated } };
}

/** The log events (one JSON line each) of one execution; `events` are the engine's, `calls` the task recorder's. */
export function renderExpressLog(
  states: Record<string, AslState>,
  run: { input: unknown; events: HistoryEvent[]; output?: unknown; error?: string; cause?: string },
  calls: TaskCall[],
  includeData: boolean,
): string[] {
  const lines: string[] = [];
  let t = Date.UTC(2026, 11, 1, 12, 0, 0);
  const emit = (type: string, details: Record<string, unknown>) => {
    const id = lines.length + 1;
    lines.push(
      JSON.stringify({
        id: String(id),
        type,
        details,
        previous_event_id: String(id - 1),
        event_timestamp: String(t++),
        execution_arn: EXECUTION_ARN,
        redrive_count: '0',
      }),
    );
  };
  emit('ExecutionStarted', { ...payload(run.input, includeData, 'input'), roleArn: ROLE_ARN });
  const pending = [...calls];
  for (const e of run.events) {
    if (e.type !== 'StateEntered' && e.type !== 'StateExited') continue;
    const name = e.state ?? '?';
    const state = states[name] ?? { Type: e.state_type ?? 'Pass' };
    if (e.type === 'StateEntered') {
      emit(`${state.Type}StateEntered`, { name, ...payload(e.input, includeData, 'input') });
      if (state.Type !== 'Task') continue;
      const index = pending.findIndex((c) => c.state === name);
      const call = index >= 0 ? pending.splice(index, 1)[0]! : { state: name, parameters: e.input, result: undefined };
      const effective = call.parameters === undefined ? e.input : call.parameters;
      const timeout = state.TimeoutSeconds;
      const integration = /^arn:[^:]+:states:::([^:.]+)[:.]?(.*)$/.exec(state.Resource ?? '');
      if (integration) {
        const resource = { resourceType: integration[1], resource: integration[2] || integration[1] };
        emit('TaskScheduled', {
          ...payload(effective, includeData, 'parameters'),
          region: 'us-east-1',
          ...resource,
          ...(timeout ? { timeoutInSeconds: timeout } : {}),
        });
        emit('TaskStarted', resource);
        emit('TaskSucceeded', { ...payload(call.result, includeData, 'output'), ...resource });
      } else {
        emit('LambdaFunctionScheduled', {
          ...payload(effective, includeData, 'input'),
          resource: FUNCTION_ARN,
          ...(timeout ? { timeoutInSeconds: timeout } : {}),
        });
        emit('LambdaFunctionStarted', {});
        emit('LambdaFunctionSucceeded', payload(call.result, includeData, 'output'));
      }
    } else {
      emit(`${state.Type}StateExited`, { name, ...payload(e.output, includeData, 'output') });
    }
  }
  if (run.error !== undefined) emit('ExecutionFailed', { error: run.error, cause: run.cause ?? '' });
  else emit('ExecutionSucceeded', payload(run.output, includeData, 'output'));
  return lines;
}

/** Bytes CloudWatch Logs ingests for these events (the messages, UTF-8). */
export function logBytes(lines: string[]): number {
  return lines.reduce((sum, line) => sum + Buffer.byteLength(line), 0);
}
