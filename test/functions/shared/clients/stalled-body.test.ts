import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { limitedClientSettings } from '../../../../functions/shared/clients/request-limits.ts';
import { SqsFailedDeliveryQueue } from '../../../../functions/shared/failed-delivery-queue.ts';

/**
 * An AWS endpoint that sends the answer's status and headers, then part of its body, and then nothing more: the
 * stages' clients (the settings functions/shared/clients/request-limits.ts gives them) fail each try after the
 * limit's silence and the call after its 3 tries, instead of waiting for the rest of the body until the Lambda
 * timeout. A real HTTP server on 127.0.0.1 and real SDK clients; the per-try limit is made small here (LIMIT_MS): only
 * the long poll below runs with the real limits (it waits its 1 s).
 */
const LIMIT_MS = 300;
const TRIES = 3;
/**
 * A stalled try ends LIMIT_MS after the last byte; with the SDK's waits between tries (≤ 0.15 s) the call ends after
 * ≈ 1.1 s. The bound leaves room for a busy machine; a call still waiting at it hangs (the defect).
 */
const BOUND_MS = 5_000;

type Mode = 'stall-body' | 'long-poll';
let mode: Mode = 'stall-body';
let requests = 0;
let server: Server;
let endpoint = '';
const sockets = new Set<Socket>();

function answer(req: IncomingMessage, res: ServerResponse): void {
  requests += 1;
  req.resume();
  req.on('end', () => {
    if (mode === 'long-poll') {
      // An empty queue answers ReceiveMessage only when its wait (WaitTimeSeconds: 1) is over: silent until then.
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
        res.end('{}');
      }, 1_000);
      return;
    }
    // The status and headers, a first part of the body, and then silence: the rest never comes.
    const body = '{"Item":{"pk":{"S":"conversation-1"},"body":{"S":"…"}}}';
    res.writeHead(200, {
      'content-type': req.headers['x-amz-target'] ? 'application/x-amz-json-1.0' : 'application/xml',
      'content-length': String(Buffer.byteLength(body)),
    });
    res.write(body.slice(0, 12));
  });
}

beforeAll(async () => {
  server = createServer(answer);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

beforeEach(() => {
  requests = 0;
  mode = 'stall-body';
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
});

const local = () => ({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});

/** How the call ended and after how long; a call still waiting at BOUND_MS ends as `still waiting`. */
async function timed(call: () => Promise<unknown>): Promise<{ outcome: string; ms: number }> {
  const start = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('still waiting'), BOUND_MS);
  });
  const ended = call().then(
    () => 'answered',
    (error: Error) => error.name,
  );
  const outcome = await Promise.race([ended, bound]);
  clearTimeout(timer);
  return { outcome, ms: performance.now() - start };
}

describe('the stages’ AWS SDK clients against an endpoint whose answer stalls after its headers', () => {
  it('DynamoDB: each try fails after the limit’s silence, the call after 3 tries (TimeoutError)', async () => {
    const db = new DynamoDBClient({ ...limitedClientSettings(LIMIT_MS), ...local() });

    const { outcome, ms } = await timed(() =>
      db.send(new GetItemCommand({ TableName: 'threads', Key: { pk: { S: 'conversation-1' } } })),
    );

    expect(outcome).toBe('TimeoutError');
    expect(requests).toBe(TRIES);
    expect(ms).toBeGreaterThanOrEqual(TRIES * LIMIT_MS - 50);
    expect(ms).toBeLessThan(BOUND_MS);
  });

  it('S3: a PutObject whose answer stalls fails the same way (Export’s writes keep their own abort besides)', async () => {
    const s3 = new S3Client({ ...limitedClientSettings(LIMIT_MS), ...local(), forcePathStyle: true });

    const { outcome, ms } = await timed(() =>
      s3.send(new PutObjectCommand({ Bucket: 'exports', Key: 'conv.json', Body: '{}' })),
    );

    expect(outcome).toBe('TimeoutError');
    expect(requests).toBe(TRIES);
    expect(ms).toBeLessThan(BOUND_MS);
  });

  it('SQS: the scheduler’s ReceiveMessage, silent for its 1 s long poll, is still answered (real limits)', async () => {
    mode = 'long-poll';
    const queue = new SqsFailedDeliveryQueue(
      new SQSClient({ ...limitedClientSettings(), ...local() }),
      `${endpoint}/123456789012/failed`,
      `${endpoint}/123456789012/dlq`,
    );

    const { outcome } = await timed(() => queue.receive({ waitSeconds: 1 }));

    expect(outcome).toBe('answered');
    expect(requests).toBe(1);
  });
});
