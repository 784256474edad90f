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
