import type { IncomingMessage } from 'node:http';
import { pipeline, Transform } from 'node:stream';
import { InvokeCommand, type InvokeCommandOutput, LambdaClient } from '@aws-sdk/client-lambda';
import { nestedDeeperThan, TOO_DEEP_ANSWER } from '../../functions/domain/agent-contract.ts';
import { cachedSignalSends } from '../../functions/shared/clients/signal-sends.ts';

/**
 * The local engine's side of Step Functions' optimized Lambda integration (`arn:aws:states:::lambda:invoke`): a real
 * Lambda Invoke over HTTP (the SDK, so AWS_ENDPOINT_URL_LAMBDA decides where: the gateway's sample agent, `sam
 * local start-lambda`, or AWS), answered in the shape Step Functions gives a Task, with the errors it raises, as the
 * Step Functions developer guide documents them ("Invoke an AWS Lambda function with Step Functions", "Handle
 * Lambda service exceptions", "Handling errors in Step Functions workflows"):
 *
 * - success: `{ExecutedVersion, Payload (parsed JSON), SdkHttpMetadata: {AllHttpHeaders, HttpHeaders,
 *   HttpStatusCode}, SdkResponseMetadata: {RequestId}, StatusCode}`;
 * - the function failed: Error = its `errorType`, Cause = the error payload as the function returned it; without
 *   an `errorType` (a crash, a function timeout): `Lambda.Unknown` and "The cause could not be determined…";
 * - the Lambda service refused (throttled, not found, 5xx): `Lambda.<ExceptionName>`; a network failure, or an
 *   error answer that is not the Lambda API's (the SDK cannot unmarshall it): `Lambda.SdkClientException`;
 * - an output over 256 KB: `States.DataLimitExceeded`, which no Catch or Retry can handle (a terminal error);
 * - an answer over what Lambda returns from a synchronous invoke (the Lambda developer guide, "Lambda quotas":
 *   invocation payload, request and response, 6 MB each for synchronous invocations; the Lambda API Reference,
 *   "Invoke": "For synchronous invocations, the maximum payload size is 6 MB"): Lambda never sends one. It fails the
 *   invoke itself, answering 200 with `FunctionError: Unhandled` and its own error payload `{"errorType":
 *   "Function.ResponseSizeTooLarge", "errorMessage": "Response payload size exceeded maximum allowed payload size
 *   (6291556 bytes)."}` (the guides name neither: this is what Lambda answers), so Step Functions fails the Task
 *   with that errorType as it does any function error (above), which Catch `States.ALL` handles, unlike
 *   States.DataLimitExceeded. The guides give no byte count for "6 MB", and Lambda's is neither 6,000,000 nor 6 MiB
 *   (6,291,456) but the 6,291,556 bytes its message names, a payload of exactly that still returned. The local engine
 *   reads no more than that of an answer (one whose Content-Length says more is refused before its body; one
 *   without, chunked, is counted as it arrives) and fails the Task the same way, so an endpoint at
 *   AWS_ENDPOINT_URL_LAMBDA that answers gigabytes costs the gateway 6 MB; an error answer (not 2xx) that long is not
 *   the Lambda API's: `Lambda.SdkClientException`;
 * - one departure: an answer nested deeper than LOCAL_ENGINE_MAX_DEPTH is refused here, as `AgentAnswerRejected`
 *   with the message Classify would give it (docs/contract.md, "The manager agent"), because the engine, the
 *   journal and the history write every state with JSON.stringify, which overflows the stack a few thousand levels
 *   down. Step Functions documents no nesting limit: on AWS such an answer reaches Classify, which refuses it.
 *
 * The state's TimeoutSeconds(Path) is enforced by the engine (States.Timeout); `timeoutMs` only stops the HTTP
 * request once the engine has given up on it, as Step Functions abandons its call.
 */
export interface LambdaInvokeParameters {
  FunctionName: string;
  Payload?: unknown;
  Qualifier?: string;
  InvocationType?: 'RequestResponse' | 'Event' | 'DryRun';
  ClientContext?: string;
}

/** Step Functions' limit for a task's output (and any state's input or output). */
export const PAYLOAD_LIMIT_BYTES = 262_144;
/** The most a synchronous Invoke returns: Lambda's "6 MB", in bytes as its Function.ResponseSizeTooLarge names it. */
export const LAMBDA_RESPONSE_LIMIT_BYTES = 6_291_556;
/**
 * The deepest answer the local engine carries to Classify (which refuses anything past 64 levels): well within what
 * the engine, the journal and the history can write (they fail a few thousand levels down, fewer for objects).
 */
const LOCAL_ENGINE_MAX_DEPTH = 1_000;

/** An error as the engine reports it: `name` is the Error a Catch or Retry matches, `message` the Cause. */
export class TaskFailure extends Error {
  /** Read by aws-local-stepfunctions: false makes the error terminal, as States.DataLimitExceeded is on AWS. */
  readonly isCatchable: boolean;
  readonly isRetryable: boolean;
  constructor(error: string, cause: string, terminal = false) {
    super(cause);
    this.name = error;
    this.isCatchable = !terminal;
    this.isRetryable = !terminal;
  }
}

/** An answer of the agent's endpoint past LAMBDA_RESPONSE_LIMIT_BYTES: no more of it was read. */
class AnswerTooLarge extends Error {
  constructor(
    readonly statusCode: number,
    readonly bytes: number,
    readonly declared: boolean,
  ) {
    super(
      `the answer is over ${LAMBDA_RESPONSE_LIMIT_BYTES} bytes (${declared ? `Content-Length: ${bytes}` : `more than ${LAMBDA_RESPONSE_LIMIT_BYTES} read`}), more than the Lambda Invoke API returns`,
    );
    this.name = 'AnswerTooLarge';
  }
}

interface RawResponse {
  statusCode: number;
  headers: Record<string, string | undefined>;
  body: unknown;
}
interface RequestHandler {
  handle(request: unknown, options?: unknown): Promise<{ response: RawResponse }>;
}

/**
 * Caps the answer's body at LAMBDA_RESPONSE_LIMIT_BYTES before the SDK collects it (it buffers a body whole, then
 * the engine would make it a string): one whose Content-Length is over the limit is refused before its body is read;
 * one without (chunked) is counted as it arrives and the connection closed at the first byte past the limit. One with
 * a Content-Length within it needs no count: Node's HTTP parser reads no more than that.
 */
function capAnswers(handler: RequestHandler): void {
  const handle = handler.handle.bind(handler);
  handler.handle = async (request, options) => {
    const result = await handle(request, options);
    const { response } = result;
    const body = response.body as IncomingMessage;
    const length = response.headers['content-length'];
    if (length !== undefined) {
      const declared = Number(length);
      if (declared > LAMBDA_RESPONSE_LIMIT_BYTES) {
        body.destroy();
        throw new AnswerTooLarge(response.statusCode, declared, true);
      }
      return result;
    }
    let read = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        read += chunk.length;
        if (read > LAMBDA_RESPONSE_LIMIT_BYTES) done(new AnswerTooLarge(response.statusCode, read, false));
        else done(null, chunk);
      },
    });
    // Either side's failure ends both: past the limit the connection is closed, a reset reaches the SDK as it was.
    pipeline(body, counted, () => {});
    response.body = counted;
    return result;
  };
}

/** Where the client's middleware leaves an answer's HTTP headers on the output of the invoke that got them. */
const ANSWER_HEADERS = Symbol('answerHeaders');

/** The clients by the endpoint (AWS_ENDPOINT_URL_LAMBDA) each was made for: one, except in tests. */
const clients = new Map<string | undefined, LambdaClient>();
/**
 * One client per agent endpoint, created on first use (after the gateway has set the endpoint), keyed by
 * AWS_ENDPOINT_URL_LAMBDA as it is at each invoke: the SDK reads the variable once, when the client is made, so a
 * second gateway started in the same process (a test's second world) invoked the first one's agent. No SDK retries:
 * Retry is the state's. Every invoke, its timeout's abort signal given or not, reuses the middleware stack resolved
 * for the first (cacheMiddleware, signal-sends.ts): so the answer's headers
 * are taken by a middleware of the client's, which writes them onto each call's own output, never by one added to a
 * command, which the cached stack would keep with the first command's closure. No socket pool
 * limit: Step Functions invokes each conversation's agent on its own, bounded only by the agent's Lambda concurrency
 * (a throttle is Lambda.TooManyRequestsException), while the SDK's default pool of 50 sockets per host made the 51st
 * agent call, a fast one too, wait for one of 50 slow agents to answer, its wait counted against its own
 * agent_seconds. A kept connection is closed after 4 s unused, or a second before the endpoint's `Keep-Alive:
 * timeout=N` says it will close it (Node applies that hint only to an agent with a timeout of its own): without it,
 * an invoke that took the kept connection as the endpoint closed it (Node's servers close after 5 s) was reset, and
 * its conversation failed with 502 AGENT_ERROR (Lambda.SdkClientException), an invoke that never reached the agent.
 */
function lambda(): LambdaClient {
  const endpoint = process.env.AWS_ENDPOINT_URL_LAMBDA;
  let client = clients.get(endpoint);
  if (!client) {
    const unpooled = { keepAlive: true, maxSockets: Number.POSITIVE_INFINITY, timeout: 4_000 };
    client = new LambdaClient({
      maxAttempts: 1,
      cacheMiddleware: true,
      requestHandler: { httpAgent: unpooled, httpsAgent: unpooled },
    });
    capAnswers(client.config.requestHandler as unknown as RequestHandler);
    client.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        const headers = (result.response as { headers?: Record<string, string> }).headers ?? {};
        Object.defineProperty(result.output, ANSWER_HEADERS, { value: headers });
        return result;
      },
      { step: 'initialize', name: 'captureInvokeHeaders' },
    );
    // Inert here: it adds a trace header only when the caller is itself a Lambda, which the gateway's process is not;
    // each invoke ran it all the same (its environment reads, docs/performance.md §2, perf25).
    client.middlewareStack.remove('recursionDetectionMiddleware');
    cachedSignalSends(client); // an invoke given its timeout's signal served by the cached stack too
    clients.set(endpoint, client);
  }
  return client;
}

function parsePayload(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The errorType of Lambda's own failure of an invoke whose answer is over LAMBDA_RESPONSE_LIMIT_BYTES. */
const RESPONSE_TOO_LARGE = 'Function.ResponseSizeTooLarge';

/** What Step Functions reports for an SDK or network error of the Invoke call. */
function serviceFailure(
  error: Error & { code?: unknown; $metadata?: { httpStatusCode?: number; requestId?: string } },
): TaskFailure {
  if (error instanceof AnswerTooLarge) {
    if (error.statusCode < 300)
      return new TaskFailure(
        RESPONSE_TOO_LARGE,
        JSON.stringify({
          errorType: RESPONSE_TOO_LARGE,
          errorMessage: `Response payload size exceeded maximum allowed payload size (${LAMBDA_RESPONSE_LIMIT_BYTES} bytes).`,
        }),
      );
    return new TaskFailure(
      'Lambda.SdkClientException',
      `Unable to unmarshall error response (${error.message.split('\n')[0]}). Response Code: ${error.statusCode}: the Lambda endpoint did not answer as the Lambda Invoke API does (is AWS_ENDPOINT_URL_LAMBDA right?)`,
    );
  }
  const status = error.$metadata?.httpStatusCode;
  if (status === undefined)
    return new TaskFailure('Lambda.SdkClientException', `Unable to execute HTTP request: ${error.message}`);
  // The connection failed while the answer was read (the agent's Lambda endpoint reset it mid-body): the SDK keeps the
  // status it had (200) and adds a hint about its own internals. A network failure, as Step Functions reports one.
  if (typeof error.code === 'string' && /^E[A-Z]+$/.test(error.code)) {
    const reason = error.message.split('\n')[0] ?? '';
    return new TaskFailure(
      'Lambda.SdkClientException',
      `Unable to execute HTTP request: the connection failed while the answer was read (${reason}: ${error.code}; Response Code: ${status})`,
    );
  }
  // Not a Lambda error response at all (an HTML error page, another service's XML: AWS_ENDPOINT_URL_LAMBDA points at
  // something else): the SDK could not read it, as Step Functions' SDK reports an error response it cannot unmarshall.
  if (error.name === 'SyntaxError') {
    const reason = error.message.split('\n')[0] ?? '';
    return new TaskFailure(
      'Lambda.SdkClientException',
      `Unable to unmarshall error response (${reason}). Response Code: ${status}: the Lambda endpoint did not answer as the Lambda Invoke API does (is AWS_ENDPOINT_URL_LAMBDA right?)`,
    );
  }
  const requestId = error.$metadata?.requestId ?? 'unknown';
  return new TaskFailure(
    `Lambda.${error.name}`,
    `${error.message} (Service: AWSLambda; Status Code: ${status}; Error Code: ${error.name}; Request ID: ${requestId}; Proxy: null)`,
  );
}

/** The Task handler for `arn:aws:states:::lambda:invoke` (see the module comment). */
export async function invokeLambdaTask(input: unknown, timeoutMs?: number): Promise<unknown> {
  const params = input as LambdaInvokeParameters;
  const command = new InvokeCommand({
    FunctionName: params.FunctionName,
    Qualifier: params.Qualifier,
    InvocationType: params.InvocationType,
    ClientContext: params.ClientContext,
    Payload: params.Payload === undefined ? undefined : Buffer.from(JSON.stringify(params.Payload)),
  });
  let out: InvokeCommandOutput;
  try {
    // A little after the engine's own timeout, so the engine reports States.Timeout first.
    out = await lambda().send(command, timeoutMs ? { abortSignal: AbortSignal.timeout(timeoutMs + 250) } : undefined);
  } catch (error) {
    throw serviceFailure(error as Error);
  }
  const text = out.Payload ? Buffer.from(out.Payload).toString('utf8') : '';
  if (out.FunctionError) {
    const payload = parsePayload(text) as { errorType?: unknown } | null;
    if (payload && typeof payload === 'object' && typeof payload.errorType === 'string')
      throw new TaskFailure(payload.errorType, text);
    throw new TaskFailure(
      'Lambda.Unknown',
      `The cause could not be determined because Lambda did not return an error type. Returned payload: ${text}`,
    );
  }
  const headers = (out as { [ANSWER_HEADERS]?: Record<string, string> })[ANSWER_HEADERS] ?? {};
  const requestId = out.$metadata.requestId ?? headers['x-amzn-requestid'] ?? '';
  const payload = parsePayload(text);
  const result = {
    ExecutedVersion: out.ExecutedVersion ?? '$LATEST',
    Payload: payload,
    SdkHttpMetadata: {
      AllHttpHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
      HttpHeaders: headers,
      HttpStatusCode: out.StatusCode ?? 200,
    },
    SdkResponseMetadata: { RequestId: requestId },
    StatusCode: out.StatusCode ?? 200,
  };
  // A payload too deep for JSON.stringify is measured by its text (white space counts: a little more than Step Functions').
  const tooDeep = nestedDeeperThan(payload, LOCAL_ENGINE_MAX_DEPTH);
  const bytes = tooDeep
    ? Buffer.byteLength(JSON.stringify({ ...result, Payload: null })) - 'null'.length + Buffer.byteLength(text)
    : Buffer.byteLength(JSON.stringify(result));
  if (bytes > PAYLOAD_LIMIT_BYTES) {
    throw new TaskFailure(
      'States.DataLimitExceeded',
      `The state/task 'lambda' returned a result with a size exceeding the maximum number of bytes service limit (${bytes} > ${PAYLOAD_LIMIT_BYTES}).`,
      true,
    );
  }
  if (tooDeep) throw new TaskFailure('AgentAnswerRejected', TOO_DEEP_ANSWER);
  return result;
}
