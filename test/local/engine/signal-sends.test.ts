import { Readable } from 'node:stream';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it, vi } from 'vitest';
import { cachedSignalSends } from '../../../functions/shared/clients/signal-sends.ts';
import { SEED_REQUEST, startWorld } from '../../support/gateway.ts';

/** A request handler that records the options of each request, and refuses one whose signal has fired (as a socket). */
function recordingHandler() {
  const options: ({ abortSignal?: AbortSignal } & Record<string, unknown>)[] = [];
  return {
    options,
    metadata: { handlerProtocol: 'http/1.1' },
    async handle(_request: unknown, given: { abortSignal?: AbortSignal } = {}) {
      options.push(given);
      if (given.abortSignal?.aborted) throw Object.assign(new Error('Request aborted'), { name: 'AbortError' });
      return { response: { statusCode: 200, headers: { etag: '"e"' }, body: Readable.from([]) } };
    },
  };
}

const settings = (requestHandler: object) => ({
  region: 'us-east-1',
  endpoint: 'http://127.0.0.1:9',
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
  cacheMiddleware: true,
  maxAttempts: 1,
  requestHandler: requestHandler as never,
});

/** Export's PutObject on its S3 client, the engine's Invoke of the agent on its Lambda client. */
const clients = [
  {
    name: 'S3 PutObject (Export)',
    make: (handler: object) => new S3Client({ ...settings(handler), forcePathStyle: true }),
    command: () => new PutObjectCommand({ Bucket: 'exports', Key: 'k.json', Body: '{}' }),
    resolves: () => vi.spyOn(PutObjectCommand.prototype, 'resolveMiddleware'),
  },
  {
    name: 'Lambda Invoke (the agent)',
    make: (handler: object) => new LambdaClient(settings(handler)),
    command: () => new InvokeCommand({ FunctionName: 'agent', Payload: Buffer.from('{}') }),
    resolves: () => vi.spyOn(InvokeCommand.prototype, 'resolveMiddleware'),
  },
];

describe('cachedSignalSends: a send given an abort signal, served by the middleware stack resolved once', () => {
  it.each(clients)(
    '$name: the stack is resolved once for three sends; each request gets its own signal (before: resolved at every send)',
    async ({ make, command, resolves }) => {
      const handler = recordingHandler();
      const client = cachedSignalSends(make(handler) as S3Client);
      const resolved = resolves();
      try {
        const signals = [new AbortController().signal, new AbortController().signal, new AbortController().signal];
        await Promise.all(signals.map((abortSignal) => client.send(command() as never, { abortSignal })));
        expect(resolved).toHaveBeenCalledTimes(1);
        expect(handler.options.map((o) => o.abortSignal)).toEqual(signals);
        expect(handler.options.map((o, i) => o.abortSignal === signals[i])).toEqual([true, true, true]);
      } finally {
        resolved.mockRestore();
      }
    },
  );

  it.each(clients)(
    '$name: a fired signal ends its send with an AbortError; a send after it without one is not cut',
    async ({ make, command }) => {
      const handler = recordingHandler();
      const client = cachedSignalSends(make(handler) as S3Client);
      const sent = command();
      await expect(client.send(sent as never, { abortSignal: AbortSignal.abort() })).rejects.toMatchObject({
        name: 'AbortError',
      });
      await expect(client.send(sent as never)).resolves.toBeDefined(); // the same command, no signal left on it
      await expect(client.send(command() as never)).resolves.toBeDefined();
      expect(handler.options.map((o) => o.abortSignal?.aborted)).toEqual([true, undefined, undefined]);
    },
  );

  it('a send given other options goes the SDK’s way: the handler gets them as given', async () => {
    const handler = recordingHandler();
    const client = cachedSignalSends(new S3Client({ ...settings(handler), forcePathStyle: true }));
    const abortSignal = new AbortController().signal;
    await client.send(new PutObjectCommand({ Bucket: 'exports', Key: 'k.json', Body: '{}' }), {
      abortSignal,
      requestTimeout: 1234,
    });
    expect(handler.options[0]).toMatchObject({ abortSignal, requestTimeout: 1234 });
  });

  it('one transport shared by two clients (the in-process one to the embedded S3) passes each signal once', async () => {
    const handler = recordingHandler();
    const a = cachedSignalSends(new S3Client({ ...settings(handler), forcePathStyle: true }));
    const b = cachedSignalSends(new S3Client({ ...settings(handler), forcePathStyle: true }));
    const signals = [new AbortController().signal, new AbortController().signal];
    await a.send(new PutObjectCommand({ Bucket: 'exports', Key: 'a.json', Body: '{}' }), { abortSignal: signals[0] });
    await b.send(new PutObjectCommand({ Bucket: 'exports', Key: 'b.json', Body: '{}' }), { abortSignal: signals[1] });
    expect(handler.options.map((o) => o.abortSignal)).toEqual(signals);
  });
});

describe('the local gateway’s clients', () => {
  it('conversations served: Export’s PutObjects and the agent’s Invoke resolve their stacks at most once (before: at every send)', async () => {
    const puts = vi.spyOn(PutObjectCommand.prototype, 'resolveMiddleware');
    const invokes = vi.spyOn(InvokeCommand.prototype, 'resolveMiddleware');
    const world = await startWorld();
    try {
      for (const n of [1, 2, 3]) {
        const answer = await world.post({ ...SEED_REQUEST, query: `Top deals this quarter? (${n})` });
        expect(answer.status).toBe(200);
      }
      const exported = (await world.listKeys()).filter((key) => key.endsWith('.json'));
      expect(exported.length).toBeGreaterThanOrEqual(12); // four formats of each conversation
      expect(puts.mock.calls.length).toBeLessThanOrEqual(1);
      expect(invokes.mock.calls.length).toBeLessThanOrEqual(1);
    } finally {
      puts.mockRestore();
      invokes.mockRestore();
      await world.close();
    }
  });
});
