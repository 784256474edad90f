import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderExpressLog } from '../../bench/support/express-log.ts';
import { PROJECT_ROOT } from '../../infra/constructs/stage-function.ts';

const { States } = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'statemachine', 'conversation.asl.json'), 'utf8'));

describe('the cost model’s Express log of a conversation (bench/support/express-log.ts)', () => {
  it('renders the ASL as written (Resource `arn:${Partition}:states:::lambda:invoke`) as a service integration', () => {
    const entered = (state: string, input: unknown) => ({ type: 'StateEntered', timestamp: 0, state, input });
    const exited = (state: string, output: unknown) => ({ type: 'StateExited', timestamp: 0, state, output });
    const lines = renderExpressLog(
      States,
      {
        input: { body: 'q' },
        events: [
          entered('Validate', { body: 'q' }),
          exited('Validate', { ok: true }),
          entered('InvokeManagerAgent', { ok: true }),
          exited('InvokeManagerAgent', { answer: 'a' }),
        ],
        output: { answer: 'a' },
      },
      [
        { state: 'Validate', parameters: undefined, result: { ok: true } },
        { state: 'InvokeManagerAgent', parameters: { FunctionName: 'agent' }, result: { Payload: 'a' } },
      ],
      true,
    );
    const events = lines.map((line) => JSON.parse(line) as { type: string; details: Record<string, unknown> });
    expect(events.map((e) => e.type)).toEqual([
      'ExecutionStarted',
      'TaskStateEntered',
      'LambdaFunctionScheduled',
      'LambdaFunctionStarted',
      'LambdaFunctionSucceeded',
      'TaskStateExited',
      'TaskStateEntered',
      'TaskScheduled',
      'TaskStarted',
      'TaskSucceeded',
      'TaskStateExited',
      'ExecutionSucceeded',
    ]);
    expect(events[7]!.details).toMatchObject({ resourceType: 'lambda', resource: 'invoke' });
  });
});
