/**
 * Instant peers on 127.0.0.1, port 0: a manager agent on the Lambda Invoke REST path (it answers at once with the
 * sample agent's canned answer, so the classifier sees realistic text) and a delivery receiver that answers 200.
 * They only count requests: no logging, no storage.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sampleAgentAnswer } from '../../local/server/sample-agent.ts';

export interface InstantPeers {
  agentUrl: string;
  receiverUrl: string;
  counts: { agent: number; receiver: number; receiver_bytes: number };
  close(): Promise<void>;
}

function drain(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function closer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

export async function startInstantPeers(): Promise<InstantPeers> {
  const counts = { agent: 0, receiver: 0, receiver_bytes: 0 };
  const agent = await listen((req, res) => {
    drain(req).then(
      (raw) => {
        counts.agent += 1;
        let request: Record<string, unknown> = {};
        try {
          request = JSON.parse(raw.toString('utf8') || '{}');
        } catch {
          // answer anyway
        }
        const body = JSON.stringify(sampleAgentAnswer(request).payload);
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'x-amz-executed-version': '$LATEST',
        });
        res.end(body);
      },
      () => res.destroy(),
    );
  });
  const receiver = await listen((req, res) => {
    drain(req).then(
      (body) => {
        counts.receiver += 1;
        counts.receiver_bytes += body.length;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
        res.end('ok');
      },
      () => res.destroy(),
    );
  });
  return {
    agentUrl: agent.url,
    receiverUrl: receiver.url,
    counts,
    async close() {
      await Promise.all([closer(agent.server), closer(receiver.server)]);
    },
  };
}

/**
 * An instant in-memory S3 for PutObject (path-style): answers 200 with an ETag, counts PUTs and bytes, keeps
 * nothing. Used to take the S3 server's own cost out of a measurement.
 */
export interface InstantS3 {
  endpoint: string;
  counts: { puts: number; bytes: number };
  close(): Promise<void>;
}

export async function startInstantS3(): Promise<InstantS3> {
  const counts = { puts: 0, bytes: 0 };
  const { server, url } = await listen((req, res) => {
    drain(req).then(
      (body) => {
        if (req.method === 'PUT') {
          counts.puts += 1;
          counts.bytes += body.length;
        }
        res.writeHead(200, { etag: '"00000000000000000000000000000000"', 'content-length': 0 });
        res.end();
      },
      () => res.destroy(),
    );
  });
  return { endpoint: url, counts, close: () => closer(server) };
}
