import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { build } from 'esbuild';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { limitedClientSettings } from '../../functions/shared/clients/request-limits.ts';
import { StageFunction } from '../../infra/constructs/stage-function.ts';
import {
  BUNDLE_FILE,
  buildFunction,
  FIRST_USE_SDK_MODULES,
  FUNCTION_DIRS,
  type HandlerDir,
  literalSchemaKeys,
  stageBuildOptions,
  UNTRACED_STAGES,
} from '../../infra/stage-bundle.ts';
import { deliveredRecord } from '../support/fixtures.ts';
import { BANNER, codeFiles, dynamicImports, firstUseChunk, initPath, staticImports } from './support/bundle-files.ts';

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
        // One file: what is compared here is the client, not how a function's code is split.
        splitting: false,
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

  it('follows S3’s redirect to an existing bucket of another region, as the stages’ client asks (followRegionRedirects)', async () => {
    const signedFor: string[] = [];
    const client = new built.literal.module.S3Client({
      region: 'eu-west-1',
      endpoint: 'http://127.0.0.1:9',
      forcePathStyle: true,
      followRegionRedirects: true,
      maxAttempts: 1,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      requestHandler: {
        async handle(request: { headers: Record<string, string> }) {
          const region = /\/\d{8}\/([^/]+)\/s3\//.exec(request.headers.authorization ?? '')?.[1] ?? '';
          signedFor.push(region);
          const inBucketRegion = region === 'us-east-2';
          return {
            response: {
              statusCode: inBucketRegion ? 200 : 301,
              headers: inBucketRegion ? {} : { 'x-amz-bucket-region': 'us-east-2' },
              body: Readable.from([
                Buffer.from(inBucketRegion ? '' : '<Error><Code>PermanentRedirect</Code><Message>m</Message></Error>'),
              ]),
            },
          };
        },
      },
    });
    const output = await client.send(put(built.literal.module));
    expect((output.$metadata as { httpStatusCode: number }).httpStatusCode).toBe(200);
    expect(signedFor).toEqual(['eu-west-1', 'us-east-2']);
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

/**
 * Each function as the stack builds it: `index.mjs` and the chunks it imports statically are what a cold start
 * loads; the DynamoDB and Secrets Manager clients are bundled (the SDK version the tests run with, not the Lambda
 * runtime's) in chunks of their own that the stores import on first use. Built outside the project, so that nothing
 * but the output folder can supply a module it imports.
 */
describe("each function's bundle, split in chunks", () => {
  let root: string;
  const dirOf = (fn: HandlerDir) => path.join(root, fn);
  const read = (fn: HandlerDir, file: string) => readFileSync(path.join(dirOf(fn), file), 'utf8');
  const traced = (fn: HandlerDir) => !UNTRACED_STAGES.includes(fn);
  /** What identifies each client's code: the service target its requests name (`X-Amz-Target`). */
  const DYNAMODB = 'serviceTarget:"DynamoDB_20120810"';
  const SECRETS_MANAGER = 'serviceTarget:"secretsmanager"';
  const USES_DYNAMODB: HandlerDir[] = FUNCTION_DIRS.filter((fn) => fn !== 'classify');
  const USES_SECRETS_MANAGER: HandlerDir[] = ['validate', 'deliver', 'conversation-status'];
  // The S3 client is on Export's init path (its four PUTs); the scheduler loads it for a given-up delivery's export.
  const S3_PUT = '"PutObject"';

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'stage-bundles-'));
    for (const fn of FUNCTION_DIRS) await buildFunction(stageBuildOptions(fn), dirOf(fn));
  }, 60_000);
  afterAll(() => root && rmSync(root, { recursive: true, force: true }));

  it('writes index.mjs and its first-use modules, each starting with the createRequire banner, each with its source map', () => {
    for (const fn of FUNCTION_DIRS) {
      const files = codeFiles(dirOf(fn));
      expect(files[0]).toBe(BUNDLE_FILE);
      if (fn !== 'classify') expect(files.length, fn).toBeGreaterThan(1);
      for (const file of files) {
        expect(read(fn, file).startsWith(`${BANNER}\n`), `${fn}/${file}`).toBe(true);
        expect(existsSync(path.join(dirOf(fn), `${file}.map`)), `${fn}/${file}.map`).toBe(true);
      }
    }
  });

  it("keeps the DynamoDB and Secrets Manager clients (and the scheduler's S3 client) off the init path: in modules of their own imported on first use", () => {
    for (const fn of FUNCTION_DIRS) {
      const dir = dirOf(fn);
      const init = initPath(dir, traced(fn));
      for (const file of init) {
        const code = read(fn, file);
        // Nothing on the init path imports a package: every import is a file of the asset or a Node built-in.
        expect(
          staticImports(code).filter((s) => !s.startsWith('.') && !s.startsWith('node:')),
          `${fn}/${file}`,
        ).toEqual([]);
        expect(code.includes(DYNAMODB) || code.includes(SECRETS_MANAGER), `${fn}/${file}`).toBe(false);
        if (fn === 'redelivery-scheduler') expect(code.includes(S3_PUT), `${fn}/${file}`).toBe(false);
      }
      // No file imports an SDK client package, statically or not: they are all bundled.
      for (const file of codeFiles(dir))
        expect(
          [...staticImports(read(fn, file)), ...dynamicImports(read(fn, file))].filter((s) =>
            s.startsWith('@aws-sdk/client-'),
          ),
          `${fn}/${file}`,
        ).toEqual([]);
      const chunks = [
        [FIRST_USE_SDK_MODULES.dynamodb, USES_DYNAMODB.includes(fn), DYNAMODB],
        [FIRST_USE_SDK_MODULES.secretsManager, USES_SECRETS_MANAGER.includes(fn), SECRETS_MANAGER],
        [FIRST_USE_SDK_MODULES.s3, fn === 'redelivery-scheduler', S3_PUT],
      ] as const;
      for (const [module, used, client] of chunks) {
        const chunk = firstUseChunk(dir, module);
        expect(chunk !== undefined, `${fn}: ${module}`).toBe(used);
        if (!chunk) continue;
        expect(init, fn).not.toContain(chunk);
        expect(read(fn, chunk), chunk).toContain(client);
        // Imported with `await import()` by the code of the init path (the store that needs it).
        const importers = init.filter((f) =>
          dynamicImports(read(fn, f)).some((s) => path.join(path.dirname(f), s) === chunk),
        );
        expect(importers.length, `${fn}: who imports ${chunk}`).toBeGreaterThan(0);
      }
    }
  });

  it('carries only the DynamoDB and Secrets Manager operations the stores send', () => {
    const chunk = read('validate', firstUseChunk(dirOf('validate'), FIRST_USE_SDK_MODULES.dynamodb)!);
    for (const op of ['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'Query', 'BatchGetItem'])
      expect(chunk).toContain(`"${op}"`);
    const all = codeFiles(dirOf('validate'))
      .map((f) => read('validate', f))
      .join('\n');
    for (const op of ['Scan', 'DescribeTable', 'CreateTable', 'TransactWriteItems', 'BatchWriteItem', 'PutSecretValue'])
      expect(all, op).not.toContain(`"${op}"`);
  });

  it('keeps the init path of each function (KB: index.mjs) as it was', () => {
    // One file, as before the first-use modules were bundled (docs/performance.md §3): they are built on their own,
    // not as esbuild split chunks, which put what Export's S3 client and the DynamoDB client's JSON protocol share
    // (whole files of `@aws-sdk/core` and `@smithy/core`) in a chunk on the init path: 16.5 KB more there.
    // Measured 2026-12-02 (evening), each grown from its earlier bound: Validate 218.8 KB (the request's checks:
    // unpaired surrogates, numbers past 2^53 or 1e308, RFC 3339 timestamps, compressed or non-UTF-8 bodies named; a
    // thread's turns read past one DynamoDB page), Classify 40.3, Deliver 212.1, Export 320.6 (its well-formed-UTF-8
    // net), the scheduler 397.2 (the attempt-log read before a redelivery); in all of them the local file adapters
    // bundled beside the AWS ones (a lock released only by its holder, a line after a cut one, no copy left by a
    // failed write).
    const MAX_KB: Record<HandlerDir, number> = {
      // +0.3 KB: an idempotency claim freed only when it is the cut request's own (releaseInProgress's requestId).
      // +0.3 KB: the status store's adapters write a redelivery's delivery status (StatusDelivery).
      // +0.3 KB: a signed request of a source without a secret logs WEBHOOK_SIGNATURE_UNCHECKED.
      // +0.6 KB (inbound19): a whsec_ secret whose base64 does not decode refused; webhook-id/-timestamp sent twice
      // named; IDEMPOTENCY_TTL_SECONDS ≥ 300. +0.2 KB (inbound19): a UTF-16 body named as one.
      // +1.0 KB: its calls end before its own Lambda's timeout, a store's failure answered 503 (StorageUnavailable).
      // +1.7 KB (fsedge21): the local files' one reader (functions/shared/local-files.ts readDataFile: a regular file
      // only, never a link or a FIFO, capped), in each store's local adapter bundled with it.
      // +0.3 KB (ops21): the host tag of a copy written aside (writerHost), beside its pid.
      // +~2 KB (slim24): the record as the workflow's state carries it, and read back whole (leanRecord / fullRecord,
      // functions/domain/conversation.ts; docs/performance.md §4): measured 230.2 KB. +0.9 KB (audit28): a query of only
      // invisible characters refused as blank, an empty body and a non-ASCII letter in a name said as such: 231.1 KB.
      validate: 232,
      // +~2 KB (slim24): the record as the workflow's state carries it, and read back whole (leanRecord / fullRecord,
      // functions/domain/conversation.ts; docs/performance.md §4): measured 42.8 KB. +14 bytes (perf25): the query and
      // the answer made into words once each, not once per webhook type (functions/domain/classifier.ts): 43.01 KB.
      classify: 43.1,
      // +1.0 KB: a rotation's secrets read again at once when the receiver's item names others (secretsFingerprint).
      // +0.6 KB: a delivery held on an in-workflow retry carries the attempts of its run so far (the attempt log read).
      // +0.5 KB: its calls and its attempt end before its own Lambda's timeout (LAMBDA_TAIL_MS), a caller waiting or not.
      // +0.6 KB (inbound19): a whsec_ secret whose base64 does not decode refused; IDEMPOTENCY_TTL_SECONDS ≥ 300.
      // +0.3 KB (deliveries19b): a receiver's Retry-After holds its type (retry_after_until); a day's cap where it is read.
      // +0.5 KB (fsedge21): the local files' one reader (functions/shared/local-files.ts readDataFile: a regular file
      // only, never a link or a FIFO, capped), in each store's local adapter bundled with it.
      // +0.7 KB (bounds21, ops21): after a failed Classify the pending answer checked as Classify would
      // (pendingAnswerProblem); the host tag of a copy written aside (writerHost).
      // +0.4 KB (receiverurl21): a new URL is a new receiver (the endpoint store's configure forgets the old URL's
      // health, on DynamoDB in one conditional UpdateItem), in the store bundled with Deliver.
      // +0.2 KB (hostns22): a local lock names its holder's host tag, and one of another pid namespace is judged by
      // its age alone (functions/shared/writers.ts), in the endpoint store's local adapter bundled with it.
      // +0.3 KB (perf22b): settings() keeps its last read while the variables it reads are unchanged (no parse).
      // +1.0 KB (adversary22b, hostns22b): a receiver's bad TLS certificate named in words and its attempt permanent
      // (functions/shared/http-delivery.ts); the local endpoint store's lock wait ends at the delivery's deadline.
      // +0.4 KB (perf23, lockwait23): the local attempt log keeps what it appended while its file is unchanged; a
      // lock wait takes its caller's deadline and says why it waits (functions/shared/local-files.ts withFileLock).
      // +~2 KB (slim24): the record as the workflow's state carries it, and read back whole (leanRecord / fullRecord,
      // functions/domain/conversation.ts; docs/performance.md §4): measured 226.4 KB.
      // +0.9 KB (redeliver27, attempts27): a Deliver Lambda refused records no attempt (LAMBDA_REFUSALS); a
      // redelivery's attempt numbered after the attempt log's last (redeliveryAttemptNumber): measured 227.3 KB.
      // +0.6 KB (urls30): a delivery URL recorded by its origin only (shownDeliveryUrl), a redirect's Location too, and
      // a status outside 100-599 named a broken receiver's: measured 228.5 KB.
      deliver: 229,
      // +1.6 KB: a redelivery's delivery status written to a completed status record (docs/contract.md).
      // +0.5 KB (inbound19): IDEMPOTENCY_TTL_SECONDS ≥ 300 (settings).
      // +0.2 KB: the thread store's calls take a caller's deadline (Validate's, before its Lambda's timeout).
      // +0.4 KB (aws20): its calls end before its own Lambda's timeout, a caller waiting or not (a slow S3 named).
      // +1.6 KB (fsedge21): the local files' one reader (functions/shared/local-files.ts readDataFile: a regular file
      // only, never a link or a FIFO, capped), in each store's local adapter bundled with it.
      // +1.0 KB (budget22): an answer still pending after a failed Classify and a Deliver Lambda did not run is checked
      // as Classify would (answerProblem, closeConversation), not exported unchecked nor answered 200 (measured
      // 326.8 → 327.8 KB; docs/contract.md, The manager agent).
      // +0.3 KB (perf22b): settings() keeps its last read while the variables it reads are unchanged (no parse).
      // +0.3 KB (hostns22b): the host tag reads the machine id once (functions/shared/writers.ts machineIdIn): two
      // machines of one host name sharing a mount get two tags.
      // +0.2 KB (perf23, lockwait23, budget23): the attempt log kept as appended; the lock wait's deadline; a
      // redelivery's Export works to its run's deadline (started_at + 59 s).
      // +~2 KB (slim24): the record as the workflow's state carries it, and read back whole (leanRecord / fullRecord,
      // functions/domain/conversation.ts; docs/performance.md §4): measured 331.4 KB. +0.7 KB (audit24): the export
      // deferred line says what is true when it is logged (queued next, in an envelope, or owed by a redelivery).
      // +0.1 KB (threads30): the local status files' adapter says a run recovery started again (restarted_at), and a
      // turn already expired is not written (expiredTurn): measured 333.1 KB.
      export: 333.2,
      // +0.5 KB: the local status files' adapter (bundled with its store) gained what recovery needs of it.
      // +0.6 KB: it answers 504 TIMEOUT itself before its Lambda timeout (a slow read).
      // +0.4 KB: it answers 503 STORAGE_UNAVAILABLE itself when its read fails (not API Gateway's bare 502).
      // +0.4 KB: its store's adapters write a redelivery's delivery status, and it shows it.
      // +0.8 KB (inbound19): the signature checks' (a secret's base64, a header sent twice) and the settings' rule.
      // +1.5 KB (fsedge21): the local files' one reader (functions/shared/local-files.ts readDataFile: a regular file
      // only, never a link or a FIFO, capped), in each store's local adapter bundled with it.
      // +0.2 KB (receiverurl21): an id of no conversation id's form answered as such (notAConversationId).
      // +0.5 KB (words28): a source_system of the wrong characters told which, in a request's words (nameBreak): 75.5 KB.
      'conversation-status': 76,
      // +0.7 KB: the schedule holds a damaged local receiver file's deliveries and skips a held type unread.
      // +0.6 KB: a stale lock of a local receiver file is removed by one process at a time (removeStaleLock).
      // +1.9 KB: its claim on a conversation's redelivery (one in flight at a time; no SDK module more, the DynamoDB
      // client is loaded on first use as before).
      // +12.4 KB: the export formats and the attempts carried, to write the export and status of a delivery it gives
      // up after its runs kept failing (functions/shared/given-up.ts); the S3 client that writes it is loaded then,
      // on first use (chunks/s3-sdk.mjs: 240 KB), not at every cold start.
      // +0.6 KB: a give-up completes a status still running (status18); settings check the agent's function name.
      // +0.7 KB (deliveries19b): the schedule holds a type whose receiver asked to wait (its Retry-After).
      // +1.1 KB (fsedge21): the local files' one reader (functions/shared/local-files.ts readDataFile: a regular file
      // only, never a link or a FIFO, capped), in each store's local adapter bundled with it.
      // +0.4 KB (receiverurl21): a new URL is a new receiver (the endpoint store's configure), bundled with its store.
      // +0.7 KB (budget22, hostns22): a redelivery's Export refuses an answer Classify would have refused; lock texts
      // carry the writer's host tag (functions/shared/writers.ts), in the stores bundled with it.
      // +0.3 KB (perf22b): settings() keeps its last read while the variables it reads are unchanged (no parse).
      // +0.3 KB (hostns22b): the host tag reads the machine id once (functions/shared/writers.ts machineIdIn): two
      // machines of one host name sharing a mount get two tags.
      // +0.4 KB (perf23): the local attempt log answers a read of what its process appended last from memory while the
      // file's stamp is unchanged (FileAttemptLog, bundled beside the DynamoDB one; Deliver 223.9, Export 329.0 KB).
      // +~2 KB (slim24): the record as the workflow's state carries it, and read back whole (leanRecord / fullRecord,
      // functions/domain/conversation.ts; docs/performance.md §4) (envelopes read whole): measured 421.9 KB; with
      // perf24's one Metrics kept per webhook type (functions/shared/powertools.ts) 422.0 KB.
      // +1.5 KB (redeliver27): a run whose Deliver Lambda would not run is a failed run, no slot used (settleRedelivery,
      // deliverRefused; the queued envelope of a refusal, envelopeForRefusal): measured 423.5 KB.
      // +0.8 KB (counts28): the tries only the attempt log has are counted into an envelope before its run is named
      // (withLoggedAttempts, from the read it made already), and a refused run is counted apart (refused_runs):
      // measured 424.3 KB. +0.1 KB (threads30): the local status files' adapter says a run recovery started again
      // (restarted_at), and a turn already expired is not written (expiredTurn): measured 425.1 KB. +0.2 KB (urls30):
      // a receiver's status outside 100-599 is one outcome, and errors name a URL by its origin only
      // (functions/domain/delivery-url.ts): measured 425.3 KB. +0.3 KB (newuser30): the endpoint store keeps a
      // rotation's start when the same secrets are set again, bundled with its store: measured 425.6 KB.
      'redelivery-scheduler': 425.7,
    };
    const over: Record<string, string> = {};
    for (const fn of FUNCTION_DIRS) {
      const bytes = initPath(dirOf(fn), traced(fn)).reduce((n, f) => n + statSync(path.join(dirOf(fn), f)).size, 0);
      if (bytes / 1024 > MAX_KB[fn]) over[fn] = `${(bytes / 1024).toFixed(1)} KB > ${MAX_KB[fn]}`;
    }
    expect(over).toEqual({}); // every function over its bound at once
  });

  it('leaves the Tracer (the X-Ray SDK) out of the untraced stages, in every file', () => {
    for (const fn of FUNCTION_DIRS) {
      const all = codeFiles(dirOf(fn))
        .map((f) => read(fn, f))
        .join('\n');
      expect(all.includes('AWS_XRAY_DAEMON_ADDRESS'), fn).toBe(traced(fn));
    }
  });

  describe("a stage's DynamoDB and Secrets Manager chunks, loaded as a store loads them", () => {
    const LIMIT_MS = 300;
    const BOUND_MS = 5_000;
    const received: { target: string; userAgent: string }[] = [];
    const sockets = new Set<Socket>();
    let endpoint = '';
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const target = String(req.headers['x-amz-target']);
        received.push({ target, userAgent: `${req.headers['user-agent']} ${req.headers['x-amz-user-agent']}` });
        const json = (status: number, answer: object) => {
          res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
          res.end(JSON.stringify(answer));
        };
        if (target === 'secretsmanager.GetSecretValue')
          return json(200, { Name: 'signing', SecretString: '{"crm":"whsec_a"}' });
        if (target === 'DynamoDB_20120810.Query') return json(200, { Items: [], Count: 0 });
        // An S3 PUT (REST, no target): taken.
        if (req.method === 'PUT') {
          received.at(-1)!.target = `S3 PUT ${req.url}`;
          res.writeHead(200, { etag: '"0"' });
          return res.end();
        }
        // A claim whose condition fails: DynamoDB sends the item that failed it (ReturnValuesOnConditionCheckFailure).
        if (JSON.parse(body).TableName === 'conditional')
          return json(400, {
            __type: 'com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException',
            message: 'The conditional request failed',
            Item: { pk: { S: 'key-1' }, state: { S: 'completed' } },
          });
        // Otherwise: silence, no status, no headers.
      });
    });
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });

    beforeAll(async () => {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address();
      endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    });
    afterAll(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    });

    /** Runs `script` in a fresh `node` in the stage's folder (as Lambda would), returns what it printed (JSON). */
    function runIn(dir: string, script: string): Promise<Record<string, unknown>> {
      return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
          cwd: dir,
          env: { PATH: process.env.PATH, NODE_NO_WARNINGS: '1' },
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(err))));
      });
    }

    it('sends with our time limits and our SDK version: a stalled call fails with a TimeoutError after 3 tries; a failed condition carries the item', async () => {
      const dir = dirOf('validate');
      const chunk = (module: string) => JSON.stringify(pathToFileURL(path.join(dir, firstUseChunk(dir, module)!)).href);
      const clientSettings = (limitMs?: number) =>
        JSON.stringify({
          ...limitedClientSettings(limitMs),
          endpoint,
          region: 'eu-west-1',
          credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
        });
      // The stalled call's limit is made short; the calls answered get the stages' own, which a loaded machine's
      // answer (this process is the endpoint) does not run out of.
      const [stalling, settings] = [clientSettings(LIMIT_MS), clientSettings()];
      const script = `
        const out = {};
        // Nothing outside the folder supplies the SDK: the chunk is the client.
        out.packageFound = await import('@aws-sdk/client-dynamodb').then(() => true, () => false);
        const sdk = await import(${chunk(FIRST_USE_SDK_MODULES.dynamodb)});
        const db = new sdk.DynamoDBClient(${stalling});
        const t0 = performance.now();
        const bound = new Promise((resolve) => setTimeout(() => resolve('still waiting'), ${BOUND_MS}).unref());
        out.stalled = await Promise.race([bound, db.send(new sdk.GetItemCommand({ TableName: 'stall', Key: { pk: { S: 'a' } } })).then(() => 'answered', (e) => e.name)]);
        out.stalledMs = performance.now() - t0;
        out.condition = await new sdk.DynamoDBClient(${settings}).send(new sdk.PutItemCommand({ TableName: 'conditional', Item: { pk: { S: 'key-1' } }, ConditionExpression: 'attribute_not_exists(pk)', ReturnValuesOnConditionCheckFailure: 'ALL_OLD' }))
          .then(() => 'written', (e) => ({ name: e.name, item: e.Item }));
        const sm = await import(${chunk(FIRST_USE_SDK_MODULES.secretsManager)});
        const secrets = new sm.SecretsManagerClient(${settings});
        out.secret = (await secrets.send(new sm.GetSecretValueCommand({ SecretId: 'signing' }))).SecretString;
        process.stdout.write(JSON.stringify(out));
        process.exit(0);
      `;
      const out = await runIn(dir, script);

      expect(out.packageFound).toBe(false);
      expect(out.stalled).toBe('TimeoutError');
      expect(out.stalledMs).toBeGreaterThanOrEqual(3 * LIMIT_MS - 50);
      expect(out.stalledMs).toBeLessThan(BOUND_MS);
      expect(received.filter((r) => r.target === 'DynamoDB_20120810.GetItem')).toHaveLength(3);
      expect(out.condition).toEqual({
        name: 'ConditionalCheckFailedException',
        item: { pk: { S: 'key-1' }, state: { S: 'completed' } },
      });
      expect(out.secret).toBe('{"crm":"whsec_a"}');
      // The versions in the lockfile, which the tests run with, and not the runtime's.
      for (const [pkg, target] of [
        ['client-dynamodb', 'DynamoDB_20120810.GetItem'],
        ['client-secrets-manager', 'secretsmanager.GetSecretValue'],
      ]) {
        const { version } = JSON.parse(
          readFileSync(path.join(PROJECT_ROOT, 'node_modules', '@aws-sdk', pkg!, 'package.json'), 'utf8'),
        ) as { version: string };
        expect(received.find((r) => r.target === target)?.userAgent).toContain(`aws-sdk-js/${version}`);
      }
    });

    it("loads the scheduler's S3 chunk from its folder and PUTs with it (a given-up delivery's export)", async () => {
      const dir = dirOf('redelivery-scheduler');
      const chunk = JSON.stringify(pathToFileURL(path.join(dir, firstUseChunk(dir, FIRST_USE_SDK_MODULES.s3)!)).href);
      const settings = JSON.stringify({
        endpoint,
        forcePathStyle: true,
        region: 'eu-west-1',
        credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      });
      const script = `
        // Nothing outside the folder supplies the SDK: the chunk is the client.
        const packageFound = await import('@aws-sdk/client-s3').then(() => true, () => false);
        const sdk = await import(${chunk});
        const s3 = new sdk.S3Client(${settings});
        await s3.send(new sdk.PutObjectCommand({ Bucket: 'exports', Key: 'given-up.json', Body: '{}', ContentType: 'application/json' }));
        process.stdout.write(JSON.stringify({ packageFound, put: true }));
        process.exit(0);
      `;
      expect(await runIn(dir, script)).toEqual({ packageFound: false, put: true });
      expect(received.map((r) => r.target)).toContain('S3 PUT /exports/given-up.json?x-id=PutObject');
    });

    it("runs Export's handler whole from its folder: the attempt log read by its DynamoDB module, the four files written by its S3 client", async () => {
      const record = deliveredRecord();
      const env = {
        AWS_REGION: 'eu-west-1',
        AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'secret',
        AWS_ENDPOINT_URL_S3: endpoint,
        AWS_ENDPOINT_URL_DYNAMODB: endpoint,
        S3_FORCE_PATH_STYLE: 'true',
        CONVERSATION_EXPORT_S3_BUCKET: 'exports',
        DELIVERIES_TABLE_NAME: 'deliveries',
        POWERTOOLS_TRACE_ENABLED: 'false',
        POWERTOOLS_LOG_LEVEL: 'ERROR',
        POWERTOOLS_METRICS_DISABLED: 'true',
      };
      const script = `
        Object.assign(process.env, ${JSON.stringify(env)});
        const { handler } = await import('./${BUNDLE_FILE}');
        const output = await handler(${JSON.stringify({ state: { conversation: record }, execution_name: 'e1' })}, { functionName: 'export', awsRequestId: 'r1' });
        process.stdout.write(JSON.stringify({ keys: Object.keys(output), success: output.response?.success }));
        process.exit(0);
      `;
      received.length = 0;
      const out = await runIn(dirOf('export'), script);

      expect(out).toEqual({ keys: ['conversation', 'response'], success: true });
      // The read first; then the four PUTs, in parallel (in any order).
      expect(received[0]?.target).toBe('DynamoDB_20120810.Query');
      const puts = received
        .slice(1)
        .map((r) => /^S3 PUT \/exports\/conversation-history\/.*\/(\w+)\.json\?x-id=PutObject$/.exec(r.target)?.[1]);
      expect(puts.sort()).toEqual(['analysis', 'conversation', 'metadata', 'summary']);
    });
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
