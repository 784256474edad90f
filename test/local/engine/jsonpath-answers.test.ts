import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { JSONPath } from 'jsonpath-plus';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { LocalWorkflow } from '../../../local/engine/engine.ts';

/**
 * The engine's JSONPath lookups that find no object (a string, a number, none) are answered without an Error
 * constructed, its stack captured, each time (local/engine/jsonpath-answers.ts, docs/performance.md §2): 17 of a
 * conversation's 23 lookups built one before.
 */
const definitions = mkdtempSync(path.join(tmpdir(), 'asl-jsonpath-'));
afterAll(() => rmSync(definitions, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

const INVOKE = 'arn:aws:states:::lambda:invoke';
const prototype = (JSONPath as unknown as { prototype: { evaluate: (...args: unknown[]) => unknown } }).prototype;

describe("the engine's JSONPath answers", () => {
  it('are the values the paths point to, scalar or not, and none is answered by an Error', async () => {
    const file = path.join(definitions, 'choice.asl.json');
    writeFileSync(
      file,
      JSON.stringify({
        StartAt: 'Ask',
        States: {
          Ask: {
            Type: 'Task',
            Resource: INVOKE,
            Parameters: { 'Text.$': '$.q', 'Count.$': '$.n', 'Nested.$': '$.deep', 'Flag.$': '$.flag' },
            ResultPath: '$.asked',
            Next: 'Which',
          },
          Which: {
            Type: 'Choice',
            Choices: [{ Variable: '$.n', NumericEquals: 3, Next: 'Three' }],
            Default: 'Other',
          },
          Three: { Type: 'Pass', Parameters: { 'picked.$': '$.asked.Text', 'id.$': '$$.Execution.Name' }, End: true },
          Other: { Type: 'Fail', Error: 'Other' },
        },
      }),
    );
    const seen: unknown[] = [];
    const machine = new LocalWorkflow({
      name: 'jsonpath',
      file,
      substitutions: {},
      resources: {
        [INVOKE]: async (input) => {
          seen.push(input);
          return input;
        },
      },
    });
    const evaluate = vi.spyOn(prototype, 'evaluate');
    const run = await machine.run({ q: 'hi', n: 3, deep: { a: [1] }, flag: false }, 'exec-1');
    expect(run.status).toBe('SUCCEEDED');
    expect(seen).toEqual([{ Text: 'hi', Count: 3, Nested: { a: [1] }, Flag: false }]);
    expect(run.output).toEqual({ picked: 'hi', id: 'exec-1' });
    // The engine's lookups went through this jsonpath-plus (the copy it imports): each scalar answer was thrown as a
    // plain object for the function call to return, not as an Error (before: a NewError each).
    const thrown = evaluate.mock.results.filter((r) => r.type === 'throw').map((r) => r.value);
    expect(thrown.length).toBeGreaterThanOrEqual(5);
    for (const answer of thrown) expect(answer).not.toBeInstanceOf(Error);
    expect(thrown).toContainEqual({ avoidNew: true, value: 'hi' });
    expect(thrown).toContainEqual({ avoidNew: true, value: false });
  });

  it('as a function call: the same values as jsonpath-plus gives, an object as it is, none for a missing path', () => {
    const json = { s: 'x', n: 0, o: { k: 1 }, list: [1, 2] };
    const at = (p: string) => JSONPath({ path: p, json, wrap: false });
    expect([at('$.s'), at('$.n'), at('$.o'), at('$.list'), at('$.missing'), at('$.list[*]')]).toEqual([
      'x',
      0,
      { k: 1 },
      [1, 2],
      undefined,
      [1, 2],
    ]);
    // Wrapped (the default): an array, as before.
    expect(JSONPath({ path: '$.s', json })).toEqual(['x']);
  });

  it('are read by the engine only through calls of the kind handled (a check for the next aws-local-stepfunctions)', () => {
    // The build its `import` loads (the `require` one sits beside it).
    const cjs = createRequire(import.meta.url).resolve('aws-local-stepfunctions');
    const build = readFileSync(path.join(path.dirname(cjs), 'main.node.esm.js'), 'utf8');
    const uses = build.match(/\bjp\b[^;\n]*/g) ?? [];
    expect(uses.filter((u) => !u.startsWith('jp({') || !u.includes('wrap: false'))).toEqual([
      'jp } from "jsonpath-plus"',
    ]);
    expect(uses.length).toBe(3);
  });
});
