import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { invokeLambdaTask, LAMBDA_RESPONSE_LIMIT_BYTES } from '../../../local/engine/lambda-invoke.ts';
import { useAsLambdaEndpoint } from '../../support/servers.ts';

/**
 * Lambda returns at most 6 MB (6,291,556 bytes) from a synchronous invoke and fails a larger answer itself with
 * Function.ResponseSizeTooLarge (local/engine/lambda-invoke.ts). The local engine read whatever its endpoint sent:
 * a fake agent answering 1.2 GB took the gateway to 3.8 GB of memory and a 502 "Cannot create a string longer than
 * 0x1fffffe8 characters". It now stops at the limit, and fails the Task as Lambda would.
 */
const MB = 1024 * 1024;
/** How much the fake agent offers at most: far past the limit, but bounded, so that a gateway without the cap ends. */
const OFFERED = 96 * MB;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

type Answer = (req: IncomingMessage, res: ServerResponse) => void;
let answer: Answer = (_req, res) => res.end('{}');
/** Bytes the fake agent had written when its connection closed (or when it had offered all). */
let sent: Promise<number> = Promise.resolve(0);

/** Streams `{"response":"xxx…` until the client closes the connection, or OFFERED bytes are written. */
function endless(headers: Record<string, string>, status = 200): Answer {
  return (req, res) => {
    sent = new Promise((resolve) => {
      let written = 0;
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      const more = () => {
        while (!res.destroyed && written < OFFERED) {
          written += CHUNK.length;
          if (!res.write(CHUNK)) return;
        }
        if (!res.destroyed) res.end();
        resolve(written);
      };
      res.on('drain', more);
      res.on('close', () => resolve(written));
      res.write('{"response":"');
      more();
      req.socket.on('close', () => resolve(written));
    });
  };
}

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => answer(req, res));
});

useAsLambdaEndpoint(server);

async function failure(): Promise<{ name: string; message: string; isCatchable: boolean }> {
  return invokeLambdaTask({ FunctionName: 'agent', Payload: { query: 'q' } }).then(
    () => {
      throw new Error('the invoke succeeded');
    },
    (error: { name: string; message: string; isCatchable: boolean }) => error,
  );
}

const tooLarge = {
  name: 'Function.ResponseSizeTooLarge',
  message: JSON.stringify({
    errorType: 'Function.ResponseSizeTooLarge',
    errorMessage: 'Response payload size exceeded maximum allowed payload size (6291556 bytes).',
  }),
  isCatchable: true,
};

describe("the local Lambda invoke caps the agent's answer at what Lambda returns (6,291,556 bytes)", () => {
  it('an endless answer without a Content-Length (chunked) fails as Function.ResponseSizeTooLarge after the limit, not after all of it', async () => {
    answer = endless({});
    const rssBefore = process.memoryUsage().rss;
    expect(await failure()).toMatchObject(tooLarge);
    // The connection was closed at the limit: what the agent got out is the limit and what the sockets buffer.
    const written = await sent;
    expect(written).toBeGreaterThan(LAMBDA_RESPONSE_LIMIT_BYTES);
    expect(written).toBeLessThan(LAMBDA_RESPONSE_LIMIT_BYTES + 24 * MB);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(80 * MB);
  });

  it('an answer whose Content-Length is over the limit is refused before its body is read', async () => {
    // 1.2 GB declared, a few bytes sent, then nothing: only a refusal on the header ends this call.
    answer = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(1_200_000_000) });
      res.write('{"response":"');
    };
    expect(await failure()).toMatchObject(tooLarge);
  });

  it('an answer of exactly the limit is returned by Lambda, and then over 256 KB for Step Functions', async () => {
    const text = `"${'y'.repeat(LAMBDA_RESPONSE_LIMIT_BYTES - 2)}"`;
    answer = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.end(text);
    };
    expect(await failure()).toMatchObject({ name: 'States.DataLimitExceeded', isCatchable: false });
  });

  it('an endless error answer (not 2xx) is not the Lambda API: Lambda.SdkClientException, also capped', async () => {
    answer = endless({}, 502);
    const error = await failure();
    expect(error.name).toBe('Lambda.SdkClientException');
    expect(error.message).toMatch(
      /^Unable to unmarshall error response \(the answer is over 6291556 bytes \(more than 6291556 read\).*Response Code: 502: .*AWS_ENDPOINT_URL_LAMBDA/,
    );
    expect(await sent).toBeLessThan(LAMBDA_RESPONSE_LIMIT_BYTES + 24 * MB);
  });
});
