/**
 * What a Catch puts at its ResultPath: `{ Error, Cause }`. The two engines fill `Cause` differently:
 * AWS gives a Node Lambda's error as JSON (`{"errorType","errorMessage","trace"}`), the local engine gives
 * the error's message. Both normalise to the message the handler threw, and its JSON payload if it had one.
 */
export interface CaughtError {
  Error: string;
  Cause?: string;
}

export interface TaskFailure {
  error: string;
  message: string;
  payload: Record<string, unknown> | null;
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * The errorMessage of a Lambda error payload whose JSON text was cut short (Step Functions keeps 32,768 characters
 * of a Cause, docs/contract.md "The manager agent"): all of it when the cut came later (in its `trace`), else as much
 * as the cut left; undefined when the text is not such a payload.
 */
function errorMessageOfCut(text: string): string | undefined {
  if (!text.startsWith('{')) return undefined;
  const start = /"errorMessage"\s*:\s*"/.exec(text);
  if (!start) return undefined;
  const rest = text.slice(start.index + start[0].length);
  const whole = /^(?:[^"\\]|\\.)*"/.exec(rest);
  const body = whole ? whole[0].slice(0, -1) : rest;
  // A cut inside an escape (`\`, `\u00`) leaves up to 5 characters of it: drop them.
  for (let drop = 0; drop <= 5 && drop <= body.length; drop++) {
    const value = tryJson(`"${body.slice(0, body.length - drop)}"`);
    if (typeof value === 'string') return value;
  }
  return undefined;
}

export function parseTaskError(caught: CaughtError | undefined): TaskFailure {
  if (!caught) return { error: 'Unknown', message: 'unknown error', payload: null };
  let message = caught.Cause ?? '';
  const outer = tryJson(message);
  if (isObject(outer) && typeof outer.errorMessage === 'string') message = outer.errorMessage;
  else if (outer === undefined) message = errorMessageOfCut(message) ?? message;
  const inner = tryJson(message);
  if (isObject(inner)) {
    return {
      error: caught.Error,
      message: typeof inner.message === 'string' ? inner.message : message,
      payload: inner,
    };
  }
  return { error: caught.Error, message: message || caught.Error, payload: null };
}
