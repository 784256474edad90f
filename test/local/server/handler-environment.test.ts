import { Metrics } from '@aws-lambda-powertools/metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { localEnvironmentDefaults, withDefaults } from '../../../local/server/config.ts';

/**
 * The environment `npm start` gives the handlers (local/server/config.ts): Powertools' settings said, so that its
 * per-call reads of them take no error path (docs/performance.md §2, perf24).
 */
const saved = { ...process.env };
const OriginalError = globalThis.Error;
afterEach(() => {
  globalThis.Error = OriginalError;
  for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
  Object.assign(process.env, saved);
});

/** How many Errors were built while `run` ran (each one's stack captured). */
function errorsBuiltBy(run: () => void): number {
  let built = 0;
  globalThis.Error = class CountedError extends OriginalError {
    constructor(...args: ConstructorParameters<typeof Error>) {
      super(...args);
      built += 1;
    }
  } as ErrorConstructor;
  try {
    run();
  } finally {
    globalThis.Error = OriginalError;
  }
  return built;
}

describe("the handlers' environment under npm start", () => {
  const handlerEnv = (user: NodeJS.ProcessEnv) =>
    withDefaults(user, localEnvironmentDefaults('http://127.0.0.1:1', 'http://127.0.0.1:2'));

  it('says Powertools dev mode is off unless the user set it', () => {
    expect(handlerEnv({}).POWERTOOLS_DEV).toBe('false');
    expect(handlerEnv({ POWERTOOLS_DEV: 'true' }).POWERTOOLS_DEV).toBe('true');
  });

  it('lets a Metrics be made (two per delivery) without an Error thrown and caught inside', () => {
    delete process.env.POWERTOOLS_DEV;
    // Before: Powertools' isDevMode() threw "must be a boolean" for the unset variable and caught it, every time.
    expect(errorsBuiltBy(() => new Metrics({ namespace: 'Test' }))).toBe(1);
    Object.assign(process.env, handlerEnv({}));
    expect(errorsBuiltBy(() => new Metrics({ namespace: 'Test' }))).toBe(0);
  });
});
