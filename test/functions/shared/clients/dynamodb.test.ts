import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { dynamoDb } from '../../../../functions/shared/clients/dynamodb.ts';

/** A DynamoDB endpoint answering every call with an empty item, and holding the ones for table `slow` unanswered. */
let server: http.Server;
const held: http.ServerResponse[] = [];
const VARIABLES = ['AWS_ENDPOINT_URL_DYNAMODB', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'];
const before = VARIABLES.map((name) => process.env[name]);

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      if (body.includes('"slow"')) return void held.push(res);
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'secret',
  });
});

afterAll(async () => {
  for (const res of held) res.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  VARIABLES.forEach((name, i) => {
    if (before[i] === undefined) delete process.env[name];
    else process.env[name] = before[i];
  });
});

const get = (table: string) => new GetItemCommand({ TableName: table, Key: { pk: { S: 'a' } } });

describe("the stores' DynamoDB client (dynamoDb())", () => {
  it('serves the sends given an abort signal by the stack it resolved once (before: resolved again at every send)', async () => {
    const { db } = await dynamoDb();
    const resolved = vi.spyOn(GetItemCommand.prototype, 'resolveMiddleware');
    try {
      for (let i = 0; i < 3; i++)
        await expect(db.send(get('t'), { abortSignal: new AbortController().signal })).resolves.toMatchObject({});
      await expect(db.send(get('t'), { abortSignal: undefined })).resolves.toMatchObject({});
      expect(resolved.mock.calls.length).toBeLessThanOrEqual(1);
    } finally {
      resolved.mockRestore();
    }
  });

  it('a stalled call is still cut by its signal (an AbortError), and the next send is not', async () => {
    const { db } = await dynamoDb();
    const controller = new AbortController();
    const sent = db.send(get('slow'), { abortSignal: controller.signal });
    await vi.waitFor(() => expect(held.length).toBe(1));
    controller.abort();
    await expect(sent).rejects.toMatchObject({ name: 'AbortError' });
    await expect(db.send(get('t'))).resolves.toMatchObject({});
  });
});
