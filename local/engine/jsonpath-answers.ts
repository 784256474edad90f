/**
 * The engine's path lookups without an Error each (docs/performance.md §2, perf23). aws-local-stepfunctions reads every
 * JSONPath of the ASL (a Choice's Variable, each `.$` field of Parameters, ResultSelector and the like, a
 * TimeoutSecondsPath) by calling jsonpath-plus's JSONPath as a function, `{ path, json, wrap: false }`. jsonpath-plus
 * then runs itself with `new`, and when the answer is no object (a string, a number, a boolean, none: 17 of a
 * conversation's 23 lookups) its constructor throws a NewError, an Error whose stack V8 captures, for the function call
 * to catch and return its value. Here an evaluation of such an instance (`wrap: false`) that finds no object throws
 * that answer as a plain object, which the function call catches and returns alike: the same value, no stack taken.
 * In the gateway's process jsonpath-plus has no other user (test/local/engine/jsonpath-answers.test.ts reads the
 * engine's calls); `new JSONPath(...)` of such an instance would throw that object rather than the NewError.
 */
import { JSONPath } from 'jsonpath-plus';

type Evaluate = (this: { wrap?: boolean }, ...args: unknown[]) => unknown;
const prototype = (JSONPath as unknown as { prototype: { evaluate: Evaluate } }).prototype;
const evaluate = prototype.evaluate;

prototype.evaluate = function evaluateAnswer(this: { wrap?: boolean }, ...args: unknown[]): unknown {
  const answer = evaluate.apply(this, args);
  if (this.wrap === false && (!answer || typeof answer !== 'object')) throw { avoidNew: true, value: answer };
  return answer;
};
