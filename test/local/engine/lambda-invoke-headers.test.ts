import { createServer } from 'node:http';
import { expect, it } from 'vitest';
import { invokeLambdaTask } from '../../../local/engine/lambda-invoke.ts';
import { useAsLambdaEndpoint } from '../../support/servers.ts';

/**
 * The local engine gives each Task the HTTP headers of its own Invoke answer (SdkHttpMetadata), as Step Functions
 * does. The Lambda client reuses its resolved middleware for invokes without a timeout (cacheMiddleware), and the
 * headers were taken by a middleware added to each command: every such invoke after the first reported the first
 * one's headers (local/engine/lambda-invoke.ts).
 */
let answered = 0;
let lastHeaders: Record<string, string | string[] | undefined> = {};
const server = createServer((req, res) => {
  lastHeaders = req.headers;
  req.resume();
  req.on('end', () => {
    answered += 1;
    res.writeHead(200, { 'content-type': 'application/json', 'x-answer-number': String(answered) });
    res.end(JSON.stringify({ response: `answer ${answered}` }));
  });
});
useAsLambdaEndpoint(server);

interface InvokeResult {
  Payload: { response: string };
  SdkHttpMetadata: { HttpHeaders: Record<string, string>; AllHttpHeaders: Record<string, string[]> };
}

it('gives every invoke its own answer headers, with and without a timeout', async () => {
  const seen: Array<[string, string | undefined, string[] | undefined]> = [];
  for (const timeoutMs of [undefined, undefined, 5_000, undefined]) {
    const out = (await invokeLambdaTask({ FunctionName: 'agent', Payload: { query: 'q' } }, timeoutMs)) as InvokeResult;
    seen.push([
      out.Payload.response,
      out.SdkHttpMetadata.HttpHeaders['x-answer-number'],
      out.SdkHttpMetadata.AllHttpHeaders['x-answer-number'],
    ]);
  }
  expect(seen).toEqual([
    ['answer 1', '1', ['1']],
    ['answer 2', '2', ['2']],
    ['answer 3', '3', ['3']],
    ['answer 4', '4', ['4']],
  ]);
});

it("sends no trace header of a Lambda: the gateway's process is none, whatever its environment says", async () => {
  // The SDK's recursion detection sends _X_AMZN_TRACE_ID as X-Amzn-Trace-Id when AWS_LAMBDA_FUNCTION_NAME is set, as
  // inside a Lambda. The engine's client runs without it (each invoke ran it for nothing: docs/performance.md §2).
  const saved = { name: process.env.AWS_LAMBDA_FUNCTION_NAME, trace: process.env._X_AMZN_TRACE_ID };
  process.env.AWS_LAMBDA_FUNCTION_NAME = 'some-function';
  process.env._X_AMZN_TRACE_ID = 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=557abcec3ee5a047;Sampled=1';
  try {
    const out = (await invokeLambdaTask({ FunctionName: 'agent', Payload: { query: 'q' } }, 5_000)) as InvokeResult;
    expect(out.Payload.response).toMatch(/^answer \d+$/);
    expect(lastHeaders['x-amzn-trace-id']).toBeUndefined();
    expect(lastHeaders.authorization).toMatch(/^AWS4-HMAC-SHA256 /); // still signed: the endpoint may be AWS's
  } finally {
    for (const [name, value] of [
      ['AWS_LAMBDA_FUNCTION_NAME', saved.name],
      ['_X_AMZN_TRACE_ID', saved.trace],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
});
