import { createServer, type ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { invokeLambdaTask } from '../../../local/engine/lambda-invoke.ts';
import { useAsLambdaEndpoint } from '../../support/servers.ts';

/**
 * Step Functions invokes each conversation's agent on its own (bounded by the agent's Lambda concurrency, not by a
 * connection pool): the local engine's Lambda client must not hold invocations back behind slow ones. The SDK's
 * default pool is 50 sockets per host, so the 51st conversation's agent call (a fast one too) waited for one of 50
 * slow agents to answer, its time counted against its own budget.
 */
describe('the local Lambda invoke', () => {
  const held: ServerResponse[] = [];
  let arrived = 0;
  let allArrived: () => void = () => {};
  let expected = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      arrived += 1;
      held.push(res);
      if (arrived === expected) allArrived();
    });
  });

  useAsLambdaEndpoint(server);

  it('reaches the agent with every call at once, more than the SDK pool of 50 slow ones included', async () => {
    expected = 60;
    const everyCallArrived = new Promise<void>((resolve) => {
      allArrived = resolve;
    });
    const calls = Array.from({ length: expected }, (_, i) =>
      // A call still waiting when the test gives up fails as the server closes: the test's failure, not 60 more.
      invokeLambdaTask({ FunctionName: 'agent', Payload: { query: `q${i}` } }).catch((error: Error) => error),
    );
    // Nothing is answered before all of them reached the agent (with a pool of 50, the last 10 never would).
    await everyCallArrived;
    for (const res of held) {
      res.writeHead(200, { 'content-type': 'application/json', 'x-amz-executed-version': '$LATEST' });
      res.end(JSON.stringify({ response: 'ok' }));
    }
    const results = (await Promise.all(calls)) as { StatusCode: number; Payload: unknown }[];
    expect(results.map((r) => r.StatusCode)).toEqual(Array(expected).fill(200));
    expect(results[0]!.Payload).toEqual({ response: 'ok' });
  });
});
