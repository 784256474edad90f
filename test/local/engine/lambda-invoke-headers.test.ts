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
const server = createServer((req, res) => {
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
