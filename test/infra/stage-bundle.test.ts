import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { build } from 'esbuild';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { StageFunction } from '../../infra/constructs/stage-function.ts';
import { BUNDLE_FILE, type HandlerDir, literalSchemaKeys, stageBuildOptions } from '../../infra/stage-bundle.ts';

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('literalSchemaKeys (the generated schemas of an SDK client)', () => {
  const SCHEMAS = [
    'const _h = "http";',
    'const _hH = "httpHeader";',
    'const n0 = "com.amazonaws.s3";',
    'export var PutObjectRequest$ = [3, n0, _POR, 0, [_CT], [[0, { [_hH]: _CT }]]];',
    'export var PutObject$ = [9, n0, _PO, { [_h]: ["PUT", "/{Key+}?x-id=PutObject", 200] }, () => PutObjectRequest$, () => PutObjectOutput$];',
  ].join('\n');

  it('turns a computed key naming a top-level string constant into that string', () => {
    const out = literalSchemaKeys(SCHEMAS);
    expect(out).toContain('[[0, { "httpHeader": _CT }]]');
    expect(out).toContain('{ "http": ["PUT", "/{Key+}?x-id=PutObject", 200] }');
    expect(out).not.toMatch(/\[_h/);
  });

  it('leaves text inside a string, and a key whose constant is not a plain top-level string', () => {
    const source = [
      'const _h = "http";',
      'const _x = "a\\"b";',
      'const _n = 1;',
      'export var A$ = [{ [_h]: "[_h]: stays" }, { [_x]: 1 }, { [_n]: 2 }, { [_u]: 3 }];',
    ].join('\n');
    expect(literalSchemaKeys(source)).toBe(source.replace('{ [_h]: "', '{ "http": "'));
  });

  it('leaves a key whose name is declared twice, and a file where a name could be shadowed, as they are', () => {
    const twice = `${SCHEMAS}\nlet _h = "other";`;
    expect(literalSchemaKeys(twice)).toContain('{ [_h]: ["PUT"');
    expect(literalSchemaKeys(twice)).toContain('{ "httpHeader": _CT }');
    for (const shadowing of [
      'export var f = (_h) => ({ [_h]: 1 });',
      'export function f(_h) { return { [_h]: 1 }; }',
      'export var f = _h => ({ [_h]: 1 });',
      'export var f = `${_h}`;',
    ]) {
      const source = `${SCHEMAS}\n${shadowing}`;
      expect(literalSchemaKeys(source), shadowing).toBe(source);
    }
  });
});

/**
 * The S3 client as Export's bundle carries it, built by the stack's options with and without the plugin: what each
 * sends and how each reads S3's answers must not differ. Time is fixed, so the date and scope they sign are too.
 */
describe("the S3 client in a function's bundle", () => {
  type S3Module = {
    S3Client: new (config: object) => { send(command: unknown): Promise<Record<string, unknown>> };
    PutObjectCommand: new (input: object) => unknown;
    GetObjectCommand: new (input: object) => unknown;
  };
  const ENTRY = "export { S3Client, PutObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';";
  let dir: string;
  const built: Record<'literal' | 'whole', { module: S3Module; bytes: number }> = {} as never;

  beforeAll(async () => {
    // Under the project's node_modules, so that the bundles resolve what they leave external as a function does.
    const parent = path.join(PROJECT_ROOT, 'node_modules', '.cache', 'webhook-gateway-bundle-test');
    mkdirSync(parent, { recursive: true });
    dir = mkdtempSync(path.join(parent, 's3-'));
    const options = stageBuildOptions('export');
    for (const variant of ['literal', 'whole'] as const) {
      const outfile = path.join(dir, variant, BUNDLE_FILE);
      await build({
        ...options,
        entryPoints: undefined,
        stdin: { contents: ENTRY, resolveDir: PROJECT_ROOT, loader: 'js', sourcefile: 's3-entry.js' },
        outfile,
        sourcemap: false,
        plugins: variant === 'literal' ? options.plugins : [],
      });
      built[variant] = {
        module: (await import(pathToFileURL(outfile).href)) as S3Module,
        bytes: statSync(outfile).size,
      };
    }
  });
  afterAll(() => dir && rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-12-02T10:30:45Z'));
  });
  afterEach(() => vi.useRealTimers());

  interface Answer {
    statusCode: number;
    headers?: Record<string, string>;
    body?: string;
  }

  /** One command through a client of `variant`, answered with `answer`: what it sent, and what it returned or threw. */
  async function exchange(variant: 'literal' | 'whole', command: (m: S3Module) => unknown, answer: Answer) {
    const { module } = built[variant];
    const sent: Record<string, unknown>[] = [];
    const client = new module.S3Client({
      region: 'eu-west-1',
      endpoint: 'http://127.0.0.1:9',
      forcePathStyle: true,
      maxAttempts: 1,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      requestHandler: {
        async handle(request: Record<string, unknown> & { headers: Record<string, string>; body?: unknown }) {
          // The invocation id is random, and signed: the signature is compared by what it signs (SignedHeaders).
          const { 'amz-sdk-invocation-id': _random, authorization, ...headers } = request.headers;
          sent.push({
            method: request.method,
            hostname: request.hostname,
            path: request.path,
            query: request.query,
            headers: { ...headers, authorization: authorization?.replace(/Signature=\w+/, 'Signature=…') },
            body: request.body === undefined ? undefined : String(request.body),
          });
          return {
            response: {
              statusCode: answer.statusCode,
              headers: answer.headers ?? {},
              body: Readable.from([Buffer.from(answer.body ?? '')]),
            },
          };
        },
      },
    });
    try {
      const { $metadata, Body, ...output } = await client.send(command(module));
      const body = Body ? await (Body as { transformToString(): Promise<string> }).transformToString() : undefined;
      return { sent, output: { ...output, body, status: ($metadata as { httpStatusCode: number }).httpStatusCode } };
    } catch (e) {
      const error = e as Error & Record<string, unknown>;
      return {
        sent,
        error: { name: error.name, message: error.message, fault: error.$fault, BucketName: error.BucketName },
      };
    }
  }

  const put = (m: S3Module) =>
    new m.PutObjectCommand({
      Bucket: 'exports',
      Key: 'webhook-conversations/2026/12/02/webhook_20261202_103045_crm_renewal_abc/conversation.json',
      Body: '{"question":"Which deals renew in Q3?"}',
      ContentType: 'application/json',
      CacheControl: 'no-store',
      Metadata: { 'conversation-id': 'webhook_20261202_103045_crm_renewal_abc' },
      ServerSideEncryption: 'AES256',
      Tagging: 'source=crm',
    });

  it('is smaller with the plugin: the schemas of the operations nobody sends are left out', () => {
    expect(built.whole.bytes - built.literal.bytes).toBeGreaterThan(40_000);
  });

  it('sends the same PutObject request, signed the same, and reads the same answer', async () => {
    const answer = {
      statusCode: 200,
      headers: {
        etag: '"9b2cf535f27731c974343645a3985328"',
        'x-amz-version-id': 'v1',
        'x-amz-server-side-encryption': 'AES256',
      },
    };
    const literal = await exchange('literal', put, answer);
    const whole = await exchange('whole', put, answer);
    expect(literal).toEqual(whole);
    // And what it sent is the whole request: every header-bound member is there.
    const headers = literal.sent[0]!.headers as Record<string, string>;
    expect(headers).toMatchObject({
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'x-amz-meta-conversation-id': 'webhook_20261202_103045_crm_renewal_abc',
      'x-amz-server-side-encryption': 'AES256',
      'x-amz-tagging': 'source=crm',
    });
    expect(headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20261202\/eu-west-1\/s3\//);
    expect(literal.output).toMatchObject({
      ETag: answer.headers.etag,
      VersionId: 'v1',
      ServerSideEncryption: 'AES256',
    });
  });

  it('reads the same GetObject answer: body, content type and metadata', async () => {
    const get = (m: S3Module) => new m.GetObjectCommand({ Bucket: 'exports', Key: 'a/conversation.json' });
    const answer = {
      statusCode: 200,
      headers: { 'content-type': 'application/json', 'x-amz-meta-conversation-id': 'abc', 'content-length': '2' },
      body: '{}',
    };
    const literal = await exchange('literal', get, answer);
    expect(literal).toEqual(await exchange('whole', get, answer));
    expect(literal.output).toMatchObject({
      ContentType: 'application/json',
      Metadata: { 'conversation-id': 'abc' },
      body: '{}',
    });
  });

  it("reads S3's refusals as the same errors", async () => {
    const refusals = [
      { statusCode: 404, code: 'NoSuchBucket', extra: '<BucketName>exports</BucketName>' },
      { statusCode: 403, code: 'AccessDenied', extra: '' },
      { statusCode: 400, code: 'InvalidRequest', extra: '' },
    ];
    for (const { statusCode, code, extra } of refusals) {
      const answer = {
        statusCode,
        headers: { 'content-type': 'application/xml' },
        body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>refused: ${code}</Message>${extra}<RequestId>R1</RequestId></Error>`,
      };
      const literal = await exchange('literal', put, answer);
      expect(literal, code).toEqual(await exchange('whole', put, answer));
      expect(literal.error, code).toMatchObject({ name: code, message: `refused: ${code}`, fault: 'client' });
    }
  });
});

describe('a function whose bundle cannot be built', () => {
  it('stops the synth with what esbuild reported, never falling back to Docker', () => {
    process.env.CDK_DOCKER = '/bin/false';
    const parent = path.join(PROJECT_ROOT, 'node_modules', '.cache', 'webhook-gateway-bundle-test');
    mkdirSync(parent, { recursive: true });
    const outdir = mkdtempSync(path.join(parent, 'cdk.out-'));
    try {
      const stack = new Stack(new App({ outdir }), 'BundleFails');
      expect(
        () =>
          new StageFunction(stack, 'Missing', {
            stage: 'no-such-stage' as HandlerDir,
            description: 'a stage without a handler',
            timeout: Duration.seconds(3),
            logRetention: RetentionDays.ONE_WEEK,
            logLevel: 'INFO',
          }),
      ).toThrow(
        /bundling functions\/no-such-stage\/handler\.ts failed: .*Could not resolve .*functions\/no-such-stage\/handler\.ts/s,
      );
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
