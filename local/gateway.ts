import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import {
  errorBody,
  httpResultForExecution,
  MAX_BODY_BYTES,
  MAX_EXECUTION_INPUT_BYTES,
  pickForwardedHeaders,
  type ExecutionInput,
} from '../functions/domain/gateway-contract.ts';
import { startEmbeddedS3, type EmbeddedS3 } from './embedded-s3.ts';
import { LocalWorkflow, type ExecutionRecord } from './engine.ts';
import { applyDefaults, checkEnvironment, localEnvironmentDefaults, resolveOptions, type GatewayOptions } from './config.ts';
import { conversationIdOf, ExecutionStore } from './execution-store.ts';
import { isConversationId } from '../functions/domain/conversation-id.ts';
import { LocalFailedDeliveryStore } from './failed-delivery-store.ts';
import { BodyTooLargeError, readBody, sendJson } from './http.ts';
import { localDeliverySecrets } from './delivery-secrets.ts';
import { parseRateLimits, RateLimiter } from './rate-limiter.ts';
import { claimedSource } from '../functions/domain/request.ts';
import { DeliveryReceiver } from './receiver.ts';
import { LocalRedelivery, type RedriveResult } from './redelivery.ts';
import { sampleAgentAnswer } from './sample-agent.ts';
import { STATEMACHINE_DIR } from './paths.ts';
import { handleConsole } from './console/index.ts';

export const LOCAL_ACCOUNT = '000000000000';
export const localFunctionArn = (stage: string) => `arn:aws:lambda:us-east-1:${LOCAL_ACCOUNT}:function:webhook-gateway-${stage}`;
export const LOCAL_FAILED_DELIVERY_QUEUE_URL = `local://failed-deliveries`;

export interface RunningGateway {
  url: string;
  port: number;
  options: GatewayOptions;
  s3Endpoint: string;
  bucket: string;
  agentFunctionName: string;
  failedDeliveries: LocalFailedDeliveryStore;
  redelivery: LocalRedelivery;
  executions: ExecutionStore;
  receiver: DeliveryReceiver;
  /** Run one conversation exactly as POST /webhook does, without HTTP. */
  runConversation(input: ExecutionInput): Promise<ExecutionRecord>;
  close(): Promise<void>;
}

type Stage = 'validate' | 'invoke-agent' | 'classify' | 'deliver' | 'export';
type StageHandler = (input: unknown) => Promise<unknown>;

async function loadHandlers(): Promise<Record<Stage, StageHandler>> {
  // Imported only now: the handlers' SDK clients read their endpoints from the environment set just before.
  const [validate, invokeAgent, classify, deliver, exportStage] = await Promise.all([
    import('../functions/validate/handler.ts'),
    import('../functions/invoke-agent/handler.ts'),
    import('../functions/classify/handler.ts'),
    import('../functions/deliver/handler.ts'),
    import('../functions/export/handler.ts'),
  ]);
  const wrap = (fn: (event: never) => Promise<unknown>): StageHandler => (input) => fn(input as never);
  return {
    validate: wrap(validate.handler),
    'invoke-agent': wrap(invokeAgent.handler),
    classify: wrap(classify.handler),
    deliver: wrap(deliver.handler),
    export: wrap(exportStage.handler),
  };
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function describe(body: unknown): string {
  const b = body as { tracking?: { webhook_type?: string; delivery_status?: string }; error?: { code?: string; message?: string } };
  if (b.tracking) return `${b.tracking.webhook_type} ${b.tracking.delivery_status}`;
  return `${b.error?.code ?? 'error'}: ${String(b.error?.message ?? '').slice(0, 120)}`;
}

/** Start the local gateway: HTTP server, embedded S3, sample agent, built-in receiver, the ASL on the local engine. */
export async function startGateway(partial: Partial<GatewayOptions> = {}): Promise<RunningGateway> {
  const options = resolveOptions(partial);
  checkEnvironment();
  await mkdir(options.dataDir, { recursive: true });
  const executions = new ExecutionStore(options.dataDir);
  const failedDeliveries = new LocalFailedDeliveryStore(options.dataDir);
  const receiver = new DeliveryReceiver(options.dataDir);

  let route: (req: IncomingMessage, res: ServerResponse) => Promise<void> = async (_req, res) =>
    sendJson(res, 503, errorBody('STARTING', 'the gateway is starting'));
  const server = createServer((req, res) => {
    route(req, res).catch((error: Error) => {
      console.error(`webhook-gateway: ${req.method} ${req.url} failed: ${error.stack ?? error.message}`);
      if (!res.headersSent) sendJson(res, 500, errorBody('INTERNAL_ERROR', 'internal error in the local gateway'));
      else res.end();
    });
  });
  server.keepAliveTimeout = 5_000;
  const port = await listen(server, options.port, options.host);
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;

  let s3: EmbeddedS3 | null = null;
  try {
    const userS3 = process.env.AWS_ENDPOINT_URL_S3;
    const bucket = process.env.CONVERSATION_EXPORT_S3_BUCKET || 'revops-conversations';
    if (!userS3) s3 = await startEmbeddedS3({ directory: path.join(options.dataDir, 's3'), port: options.s3Port, bucket });
    const defaults = localEnvironmentDefaults(url, s3?.endpoint ?? null);
    if (process.env.AWS_PROFILE) {
      delete defaults.AWS_ACCESS_KEY_ID;
      delete defaults.AWS_SECRET_ACCESS_KEY;
    }
    applyDefaults(process.env, defaults);
    if (!process.env.IDEMPOTENCY_TABLE_NAME) applyDefaults(process.env, { IDEMPOTENCY_DIR: path.join(options.dataDir, 'idempotency') });
    if (!process.env.DELIVERY_SIGNING_SECRETS && !process.env.DELIVERY_SIGNING_SECRETS_ARN) {
      process.env.DELIVERY_SIGNING_SECRETS = (await localDeliverySecrets(options.dataDir)).json;
    }
  } catch (error) {
    server.close();
    throw error;
  }

  const handlers = await loadHandlers();
  const substitutions = {
    ValidateFunctionArn: localFunctionArn('validate'),
    InvokeAgentFunctionArn: localFunctionArn('invoke-agent'),
    ClassifyFunctionArn: localFunctionArn('classify'),
    DeliverFunctionArn: localFunctionArn('deliver'),
    ExportFunctionArn: localFunctionArn('export'),
    FailedDeliveryQueueUrl: LOCAL_FAILED_DELIVERY_QUEUE_URL,
  };
  const resources = {
    [localFunctionArn('validate')]: handlers.validate,
    [localFunctionArn('invoke-agent')]: handlers['invoke-agent'],
    [localFunctionArn('classify')]: handlers.classify,
    [localFunctionArn('deliver')]: handlers.deliver,
    [localFunctionArn('export')]: handlers.export,
    'arn:aws:states:::sqs:sendMessage': (params: unknown) => failedDeliveries.sendMessage(params as never),
  };
  const workflow = new LocalWorkflow({
    name: 'conversation',
    file: path.join(STATEMACHINE_DIR, 'conversation.asl.json'),
    substitutions,
    resources,
    retryIntervalOverrides: options.retryIntervalOverrides,
  });
  const redeliveryWorkflow = new LocalWorkflow({
    name: 'redelivery',
    file: path.join(STATEMACHINE_DIR, 'redelivery.asl.json'),
    substitutions,
    resources,
    retryIntervalOverrides: options.retryIntervalOverrides,
  });
  const redelivery = new LocalRedelivery(failedDeliveries, redeliveryWorkflow, executions);
  redelivery.start(options.redeliveryPollMs, options.onRedelivery);

  /** The history is on disk before the caller gets its answer, so `conversations show` right after a curl finds it. */
  async function runConversation(input: ExecutionInput): Promise<ExecutionRecord> {
    const record = await workflow.run(input, input.request_id);
    const conversationId = conversationIdOf(record);
    if (conversationId) await executions.save(conversationId, record);
    return record;
  }

  const limiter = new RateLimiter(parseRateLimits(process.env.RATE_LIMITS));

  async function handleWebhook(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const headers = { 'x-request-id': requestId };
    const contentType = String(req.headers['content-type'] ?? '');
    if (!/^application\/json\s*(;|$)/i.test(contentType)) {
      req.resume();
      return sendJson(res, 415, errorBody('UNSUPPORTED_MEDIA_TYPE', `Content-Type must be application/json, got "${contentType || 'none'}"`), headers);
    }
    const tooLarge = () =>
      sendJson(res, 413, errorBody('PAYLOAD_TOO_LARGE', `Request body must be at most ${MAX_BODY_BYTES} bytes (the Step Functions input limit)`), {
        ...headers,
        connection: 'close',
      });
    if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
      req.resume();
      return tooLarge();
    }
    let raw: Buffer;
    try {
      raw = await readBody(req, MAX_BODY_BYTES);
    } catch (error) {
      if (error instanceof BodyTooLargeError) return tooLarge();
      throw error;
    }
    const input: ExecutionInput = {
      body: raw.toString('utf8'),
      headers: pickForwardedHeaders(req.headers),
      request_id: requestId,
      source_ip: req.socket.remoteAddress ?? 'unknown',
      received_at: new Date().toISOString(),
    };
    if (Buffer.byteLength(JSON.stringify(input)) > MAX_EXECUTION_INPUT_BYTES) return tooLarge();
    const source = claimedSource(input.body);
    const limited = source === null ? ({ allowed: true } as const) : limiter.take(source);
    if (!limited.allowed) {
      return sendJson(res, 429, errorBody('RATE_LIMITED', `Too many requests from ${source}: ${limited.reason}; retry after ${limited.retryAfterSeconds} s`), {
        ...headers,
        'retry-after': String(limited.retryAfterSeconds),
      });
    }
    const started = performance.now();
    const record = await runConversation(input);
    const result = httpResultForExecution({
      status: record.status,
      output: record.output === undefined ? undefined : JSON.stringify(record.output),
      error: record.error,
      cause: record.cause,
    });
    sendJson(res, result.statusCode, result.body, headers);
    options.onExecution?.({
      http_status: result.statusCode,
      conversation_id: conversationIdOf(record),
      detail: describe(result.body),
      duration_ms: Math.round(performance.now() - started),
    });
  }

  async function handleAgentInvoke(functionName: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = (await readBody(req, 6 * 1024 * 1024)).toString('utf8');
    const expected = process.env.MANAGER_AGENT_FUNCTION_NAME;
    if (decodeURIComponent(functionName) !== expected) {
      return sendJson(res, 404, { Type: 'User', message: `Function not found: ${functionName} (the sample agent answers as ${expected})` }, {
        'x-amzn-errortype': 'ResourceNotFoundException',
      });
    }
    let request: Record<string, unknown> = {};
    try {
      request = JSON.parse(raw || '{}');
    } catch {
      // the sample agent answers anything
    }
    const answer = sampleAgentAnswer(request);
    if (answer.kind === 'slow') await new Promise((r) => setTimeout(r, Number(process.env.SAMPLE_AGENT_SLOW_MS ?? 30_000)));
    const extra: Record<string, string> = { 'x-amz-executed-version': '$LATEST' };
    if (answer.kind === 'error') extra['x-amz-function-error'] = 'Unhandled';
    sendJson(res, 200, answer.payload, extra);
  }

  async function handleAdmin(pathname: string, method: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume();
    const remote = req.socket.remoteAddress ?? '';
    const loopbackHost = /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/i;
    const origin = req.headers.origin;
    // Loopback callers only, addressed by a loopback name (no DNS rebinding), and no cross-site browser requests.
    if (
      !['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(remote) ||
      !loopbackHost.test(req.headers.host ?? '') ||
      (origin !== undefined && !/^http:\/\//.test(origin)) ||
      (origin !== undefined && !loopbackHost.test(origin.replace(/^http:\/\//, '')))
    ) {
      return sendJson(res, 403, errorBody('FORBIDDEN', 'operator endpoints answer loopback callers only'));
    }
    if (pathname === '/local/deliveries' && method === 'GET') return sendJson(res, 200, await failedDeliveries.list());
    const redrive = /^\/local\/deliveries\/([^/]+)\/redrive$/.exec(pathname);
    if (redrive && method === 'POST') {
      const id = decodeURIComponent(redrive[1]!);
      if (!isConversationId(id)) return sendJson(res, 400, errorBody('VALIDATION_ERROR', `"${id}" is not a conversation id`));
      const result: RedriveResult = await redelivery.attempt(id, 'redrive');
      return sendJson(res, result.status === 'not_found' ? 404 : 200, result);
    }
    return sendJson(res, 404, errorBody('NOT_FOUND', `No route for ${method} ${pathname}`));
  }

  route = async (req, res) => {
    const { pathname } = new URL(req.url ?? '/', 'http://local');
    const method = req.method ?? 'GET';
    if (pathname.startsWith('/local/deliveries')) return handleAdmin(pathname, method, req, res);
    if (pathname === '/console' || pathname.startsWith('/console/')) return handleConsole(req, res, { executions, failedDeliveries, bucket: process.env.CONVERSATION_EXPORT_S3_BUCKET!, s3Endpoint: process.env.AWS_ENDPOINT_URL_S3! });
    if (pathname === '/webhook') {
      if (method === 'POST') return handleWebhook(req, res);
      req.resume();
      return sendJson(res, 405, errorBody('METHOD_NOT_ALLOWED', `${method} is not allowed on /webhook; use POST`), { allow: 'POST' });
    }
    if (pathname === '/health') {
      if (method !== 'GET' && method !== 'HEAD') {
        return sendJson(res, 405, errorBody('METHOD_NOT_ALLOWED', `${method} is not allowed on /health; use GET`), { allow: 'GET' });
      }
      return sendJson(res, 200, { status: 'ok', service: 'webhook-gateway', engine: 'aws-local-stepfunctions', time: new Date().toISOString() });
    }
    const invoke = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(pathname);
    if (invoke && method === 'POST') return handleAgentInvoke(invoke[1]!, req, res);
    const receiverPath = /^\/local\/receiver\/([A-Za-z0-9_-]+)$/.exec(pathname);
    if (receiverPath) {
      if (method === 'POST') {
        const raw = (await readBody(req, 1024 * 1024)).toString('utf8');
        await receiver.record(receiverPath[1]!, req.headers, raw);
        return sendJson(res, 200, { received: true });
      }
      if (method === 'GET') return sendJson(res, 200, receiver.byType(receiverPath[1]!));
    }
    req.resume();
    return sendJson(res, 404, errorBody('NOT_FOUND', `No route for ${method} ${pathname}. Try POST /webhook or GET /health.`));
  };

  return {
    url,
    port,
    options,
    s3Endpoint: process.env.AWS_ENDPOINT_URL_S3!,
    bucket: process.env.CONVERSATION_EXPORT_S3_BUCKET!,
    agentFunctionName: process.env.MANAGER_AGENT_FUNCTION_NAME!,
    failedDeliveries,
    redelivery,
    executions,
    receiver,
    runConversation,
    async close() {
      if (!server.listening) return;
      await redelivery.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await s3?.close();
    },
  };
}
