import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { expect, it } from 'vitest';
import { invokeLambdaTask } from '../../../local/engine/lambda-invoke.ts';
import { useAsLambdaEndpoint } from '../../support/servers.ts';

/**
 * The agent's connection is kept between invokes, and closed by the gateway a second before the endpoint says it
 * will close it (`Keep-Alive: timeout=N`, which Node's servers send): an invoke that took the kept connection just as
 * the endpoint closed it was reset, and its conversation failed with 502 AGENT_ERROR though the agent never saw it
 * (local/engine/lambda-invoke.ts). This endpoint announces 2 s and would keep the connection 60 s: the gateway's
 * side ends it (the endpoint sees the end) about a second after the answer, and the next invoke opens a new one.
 */
const connections: { socket: Socket; endedByGateway: Promise<number> }[] = [];
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'keep-alive': 'timeout=2' });
    res.end(JSON.stringify({ response: 'answer' }));
  });
});
server.keepAliveTimeout = 60_000;
server.on('connection', (socket: Socket) => {
  const opened = performance.now();
  connections.push({
    socket,
    endedByGateway: new Promise((resolve) => socket.once('end', () => resolve(performance.now() - opened))),
  });
});
useAsLambdaEndpoint(server);

it('ends a kept agent connection before the endpoint would, and the next invoke opens its own', async () => {
  await invokeLambdaTask({ FunctionName: 'agent', Payload: { query: 'q' } });
  await invokeLambdaTask({ FunctionName: 'agent', Payload: { query: 'q' } });
  expect(connections).toHaveLength(1); // kept for the second invoke
  const endedAfterMs = await connections[0]!.endedByGateway;
  expect(endedAfterMs).toBeGreaterThanOrEqual(900);
  expect(endedAfterMs).toBeLessThan(30_000);
  await invokeLambdaTask({ FunctionName: 'agent', Payload: { query: 'q' } });
  expect(connections).toHaveLength(2);
});
