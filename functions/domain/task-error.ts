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

export function parseTaskError(caught: CaughtError | undefined): TaskFailure {
  if (!caught) return { error: 'Unknown', message: 'unknown error', payload: null };
  let message = caught.Cause ?? '';
  const outer = tryJson(message);
  if (isObject(outer) && typeof outer.errorMessage === 'string') message = outer.errorMessage;
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
