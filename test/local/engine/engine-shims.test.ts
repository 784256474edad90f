import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalWorkflow, type TaskHandler } from '../../../local/engine/engine.ts';
import { TaskFailure } from '../../../local/engine/lambda-invoke.ts';

/** The definition files of this file's tests, removed after them (before: one folder each left behind). */
const definitions = mkdtempSync(path.join(tmpdir(), 'asl-'));
afterAll(() => rmSync(definitions, { recursive: true, force: true }));
let written = 0;

/** A one-off definition file for the local engine. */
function workflow(definition: unknown, resources: Record<string, TaskHandler>): LocalWorkflow {
  const file = path.join(definitions, `machine-${++written}.asl.json`);
  writeFileSync(file, JSON.stringify(definition));
  return new LocalWorkflow({ name: 'shim-test', file, substitutions: {}, resources });
}

const INVOKE = 'arn:aws:states:::lambda:invoke';

describe('the local engine behaves as Step Functions where aws-local-stepfunctions 3.0.0 does not', () => {
  it('resolves TimeoutSecondsPath against the state input (not the Parameters), and tells the handler its timeout', async () => {
    const seen: { input: unknown; timeoutMs?: number }[] = [];
    const machine = workflow(
      {
        StartAt: 'Call',
        States: {
          Call: {
            Type: 'Task',
            Resource: INVOKE,
            Parameters: { FunctionName: 'agent', 'Payload.$': '$.question' },
            TimeoutSecondsPath: '$.budget.agent_seconds',
            End: true,
          },
        },
      },
      {
        [INVOKE]: async (input, task) => {
          seen.push({ input, timeoutMs: task?.timeoutMs });
          return { Payload: 'ok' };
        },
      },
    );
    const run = await machine.run({ question: { q: 'hi' }, budget: { agent_seconds: 7 } }, 'timeout-path');
    expect(run.status).toBe('SUCCEEDED');
    // The handler sees exactly the Parameters, as the Lambda integration would.
    expect(seen).toEqual([{ input: { FunctionName: 'agent', Payload: { q: 'hi' } }, timeoutMs: 7_000 }]);
  });

  it('times a Task out after its TimeoutSecondsPath with States.Timeout, which a Catch handles', async () => {
    const machine = workflow(
      {
        StartAt: 'Call',
        States: {
          Call: {
            Type: 'Task',
            Resource: INVOKE,
            Parameters: { FunctionName: 'agent' },
            TimeoutSecondsPath: '$.seconds',
            Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Caught' }],
            End: true,
          },
          Caught: { Type: 'Pass', End: true },
        },
      },
      // A task that never answers: only the engine's timeout ends the run (before: an answer at 6 s, and a wall-clock
      // check of 5 s that a loaded machine could fail).
      { [INVOKE]: () => new Promise(() => {}) },
    );
    const run = await machine.run({ seconds: 1 }, 'timeout');
    expect(run.output).toMatchObject({ error: { Error: 'States.Timeout' } });
  });

  it('fills $$.State.EnteredTime: the entry of the state, kept across its retries, in Parameters and ResultSelector', async () => {
    let calls = 0;
    const machine = workflow(
      {
        StartAt: 'First',
        States: {
          First: {
            Type: 'Task',
            Resource: INVOKE,
            Parameters: { FunctionName: 'agent', 'entered_at.$': '$$.State.EnteredTime' },
            ResultSelector: {
              'entered.$': '$$.State.EnteredTime',
              'name.$': '$$.State.Name',
              'retries.$': '$$.State.RetryCount',
            },
            ResultPath: '$.first',
            Retry: [{ ErrorEquals: ['Lambda.TooManyRequestsException'], IntervalSeconds: 1, MaxAttempts: 1 }],
            Next: 'Second',
          },
          Second: {
            Type: 'Task',
            Resource: INVOKE,
            Parameters: { FunctionName: 'agent', 'entered_at.$': '$$.State.EnteredTime' },
            ResultPath: '$.second',
            End: true,
          },
        },
      },
      {
        [INVOKE]: async (input) => {
          calls += 1;
          if (calls === 1) throw new TaskFailure('Lambda.TooManyRequestsException', 'Rate Exceeded.');
          await new Promise((r) => setTimeout(r, 50));
          return input;
        },
      },
    );
    const run = await machine.run({}, 'state-context');
    const output = run.output as {
      first: { entered: string; name: string; retries: number };
      second: { entered_at: string };
    };
    expect(output.first.name).toBe('First');
    expect(output.first.retries).toBe(1);
    // Entered once, before the retry and its 1 s wait: the second state was entered over a second later.
    expect(Date.parse(output.second.entered_at) - Date.parse(output.first.entered)).toBeGreaterThanOrEqual(1_000);
  });

  it('makes States.DataLimitExceeded terminal: no Catch, not even States.ALL, handles it', async () => {
    const machine = workflow(
      {
        StartAt: 'Call',
        States: {
          Call: {
            Type: 'Task',
            Resource: INVOKE,
            Parameters: { FunctionName: 'agent' },
            Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }],
            End: true,
          },
          Caught: { Type: 'Pass', End: true },
        },
      },
      {
        [INVOKE]: async () => {
          throw new TaskFailure('States.DataLimitExceeded', 'too large', true);
        },
      },
    );
    const run = await machine.run({}, 'data-limit');
    expect(run).toMatchObject({ status: 'FAILED', error: 'States.DataLimitExceeded' });
  });

  it("cuts a task failure's Error at 256 and its Cause at 32,768 characters, as Step Functions records them", async () => {
    const machine = workflow(
      {
        StartAt: 'Call',
        States: {
          Call: {
            Type: 'Task',
            Resource: INVOKE,
            Parameters: { FunctionName: 'agent' },
            Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.caught', Next: 'Caught' }],
            End: true,
          },
          Caught: { Type: 'Pass', End: true },
        },
      },
      {
        [INVOKE]: async () => {
          throw new TaskFailure(`E${'r'.repeat(299)}`, `{"errorMessage":"${'c'.repeat(40_000)}"}`);
        },
      },
    );
    const run = await machine.run({}, 'long-cause');
    expect(run.status).toBe('SUCCEEDED');
    const caught = (run.output as { caught: { Error: string; Cause: string } }).caught;
    expect(caught.Error).toBe(`E${'r'.repeat(255)}`);
    expect(caught.Cause).toBe(`{"errorMessage":"${'c'.repeat(32_768 - 17)}`);
  });

  it('fails the execution with States.DataLimitExceeded, which no Catch handles, when a state output passes 256 KB', async () => {
    const machine = workflow(
      {
        StartAt: 'Call',
        States: {
          Call: {
            Type: 'Task',
            Resource: INVOKE,
            Parameters: { FunctionName: 'agent' },
            ResultPath: '$.answer',
            Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }],
            End: true,
          },
          Caught: { Type: 'Pass', End: true },
        },
      },
      { [INVOKE]: async () => 'a'.repeat(200_000) },
    );
    // The task's result alone is under the limit; the state's output, with the input beside it, is not.
    const run = await machine.run({ question: 'q'.repeat(70_000) }, 'state-output-limit');
    expect(run).toMatchObject({ status: 'FAILED', error: 'States.DataLimitExceeded' });
    expect(run.events.some((e) => e.state === 'Caught')).toBe(false);
    expect((await machine.run({ question: 'q'.repeat(50_000) }, 'state-output-fits')).status).toBe('SUCCEEDED');
  });
});
