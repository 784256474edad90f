import { validateHeaderValue } from 'node:http';
import { Readable } from 'node:stream';
import type { S3Api } from './s3-api.ts';
import { flatHeaders, pathStyle } from './s3-http-server.ts';

/**
 * An AWS SDK request handler (the `requestHandler` of an S3Client) that gives each request to the embedded S3 of
 * this process instead of sending it over a socket: the SDK still builds, checksums and parses every request and
 * answer, and the embedded S3 applies the same rules to the same files as its HTTP endpoint, without the two HTTP
 * ends in between. The local gateway injects it into the handlers' S3 client (client configuration only: handler
 * code is what runs on Lambda). One per process; the running embedded S3 attaches itself to it.
 */
interface SdkHttpRequest {
  method: string;
  hostname?: string;
  path: string;
  query?: Record<string, string | string[] | null | undefined>;
  headers: Record<string, string>;
  body?: unknown;
}

const EMPTY = Buffer.alloc(0);

class InProcessS3Transport {
  readonly metadata = { handlerProtocol: 'http/1.1' };
  /** The embedded S3s running in this process; requests go to the one started last. */
  private readonly running: S3Api[] = [];

  attach(api: S3Api): void {
    this.running.push(api);
  }

  detach(api: S3Api): void {
    const at = this.running.lastIndexOf(api);
    if (at >= 0) this.running.splice(at, 1);
  }

  async handle(
    request: SdkHttpRequest,
    options?: { abortSignal?: { aborted: boolean } },
  ): Promise<{ response: { statusCode: number; headers: Record<string, string>; body: Readable | Buffer } }> {
    const api = this.running.at(-1);
    if (!api)
      throw Object.assign(new Error('the embedded S3 of this process is not running'), {
        name: 'EmbeddedS3Stopped',
        code: 'ECONNREFUSED',
      });
    if (options?.abortSignal?.aborted) throw Object.assign(new Error('Request aborted'), { name: 'AbortError' });
    // What Node's HTTP client refuses to send (a value past ISO-8859-1, a line break) is refused here too, as on a
    // socket (ERR_INVALID_CHAR): stored, it made every later GET of the object over HTTP fail.
    for (const [name, value] of Object.entries(request.headers)) validateHeaderValue(name, value);
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(request.query ?? {})) {
      if (Array.isArray(value)) for (const v of value) query.append(name, v);
      else query.append(name, value ?? '');
    }
    const sent = request.body;
    const response = await api.handle({
      method: request.method,
      path: pathStyle(request.hostname, request.path),
      query,
      headers: flatHeaders(request.headers),
      body:
        sent === undefined || sent === null
          ? EMPTY
          : typeof sent === 'string'
            ? Buffer.from(sent)
            : sent instanceof Uint8Array
              ? Buffer.from(sent.buffer, sent.byteOffset, sent.byteLength)
              : (sent as AsyncIterable<Uint8Array>),
    });
    const out = response.body ?? EMPTY;
    // A GET's body may be streamed to the caller (GetObject's Body): a Readable, as from a socket. Other answers are
    // parsed whole: the SDK takes their bytes as they are.
    const body = Buffer.isBuffer(out) && request.method === 'GET' ? Readable.from([out], { objectMode: false }) : out;
    return { response: { statusCode: response.status, headers: response.headers, body } };
  }

  updateHttpClientConfig(): void {}

  httpHandlerConfigs(): Record<string, never> {
    return {};
  }

  destroy(): void {}
}

/** The one transport of this process; the running embedded S3 attaches itself. */
export const inProcessS3 = new InProcessS3Transport();

/**
 * What the local gateway injects into the handlers' S3 client (functions/shared/clients/injected-settings.ts): this
 * transport, and no SigV4 signature for requests that never leave the process (neither door of the embedded S3 checks
 * signatures; a signature costs ~0.13 ms of CPU per request, docs/performance.md). The SDK still builds, checksums
 * and parses every request and answer.
 */
export const IN_PROCESS_S3_CLIENT_SETTINGS = {
  requestHandler: inProcessS3,
  signer: { sign: async <T>(request: T): Promise<T> => request },
};

/**
 * Middleware of the handlers' S3 client that does nothing for a request that never leaves this process, taken out of
 * its stack by the local gateway (functions/shared/clients/s3.ts builds the client; the Lambda bundles keep them all):
 * the User-Agent header (the embedded S3 reads none), the recursion detection (it adds a trace header only inside a
 * Lambda, which the gateway's process is not) and the region redirect (the embedded S3 has one region and answers no
 * redirect). Each of Export's four PutObjects ran them for nothing: ~14 KB of the ~126 KB a PutObject allocated
 * (docs/performance.md §2, perf25). The SDK still serializes, checksums, retries and parses every request and answer.
 */
const NOT_FOR_IN_PROCESS_REQUESTS = [
  'getUserAgentMiddleware',
  'recursionDetectionMiddleware',
  'regionRedirectMiddleware',
  'regionRedirectEndpointMiddleware',
];

/** The handlers' S3 client, given this transport, without the middleware above; a second call changes nothing. */
export function withoutOutboundMiddleware<C extends { middlewareStack: { remove(name: string): boolean } }>(
  client: C,
): C {
  for (const name of NOT_FOR_IN_PROCESS_REQUESTS) client.middlewareStack.remove(name);
  return client;
}
