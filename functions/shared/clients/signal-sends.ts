/**
 * `client.send(command, { abortSignal })` with the middleware stack the client resolved once per command type. The
 * SDK's Client.send serves its cached stack (cacheMiddleware) only to a send given no options: a send given an abort
 * signal resolved the whole stack again (and dropped the cached ones), ~0.1 ms of CPU for each of Export's PutObjects
 * and the agent's invoke (docs/performance.md). Here (the stores' DynamoDB client, loaded with it on first use by
 * dynamodb-sdk.ts; the local gateway's clients: the handlers' S3 client, the engine's Lambda client) a send whose only
 * option is its abort signal goes through the cached stack, and its signal
 * reaches the request handler all the same: on the command (a symbol, which each middleware's copy of its arguments
 * carries on), to the request the stack built (a middleware of its last step), to the handler, which gets it as its
 * `abortSignal` option, as before (test/local/engine/signal-sends.test.ts holds it for Export's PutObject and the
 * agent's Invoke). Any other option goes the SDK's own way.
 */

interface SignalledHandler {
  handle(request: object, options?: { abortSignal?: unknown }): Promise<unknown>;
  [WRAPPED]?: true;
}

interface SendingClient {
  config: { requestHandler: unknown };
  middlewareStack: { add(middleware: never, options: { step: 'deserialize'; priority: 'low'; name: string }): void };
  send(command: object, options?: unknown, callback?: unknown): Promise<unknown> | undefined;
}

type Next = (args: { request: object; [SIGNAL]?: AbortSignal }) => Promise<unknown>;

const WRAPPED = Symbol('signalledHandler');
/** A pending send's abort signal, on its command. */
const SIGNAL = Symbol('abortSignal');
/** Each pending send's abort signal, by each request built for it. */
const byRequest = new WeakMap<object, AbortSignal>();

const onlySignal = (options: unknown): options is { abortSignal?: AbortSignal } =>
  typeof options === 'object' && options !== null && Object.keys(options).every((key) => key === 'abortSignal');

/** `client`, its sends given only an abort signal served by its cached middleware stack (see above). */
export function cachedSignalSends<C extends SendingClient>(client: C): C {
  // A second gateway in the same process finds the handlers' S3 client already made, and so changed.
  if ((client as { [WRAPPED]?: true })[WRAPPED]) return client;
  Object.defineProperty(client, WRAPPED, { value: true });
  const handler = client.config.requestHandler as SignalledHandler;
  // One transport may serve several clients (the in-process one to the embedded S3): wrapped once.
  if (!handler[WRAPPED]) {
    const handle = handler.handle.bind(handler);
    handler.handle = (request, options) => {
      const abortSignal = options?.abortSignal ?? byRequest.get(request);
      return handle(request, abortSignal === undefined ? options : { ...options, abortSignal });
    };
    handler[WRAPPED] = true;
  }
  const carry =
    (next: Next): Next =>
    (args) => {
      const signal = args[SIGNAL];
      if (signal) byRequest.set(args.request, signal);
      return next(args);
    };
  client.middlewareStack.add(carry as never, { step: 'deserialize', priority: 'low', name: 'signalOfCachedSend' });
  client.send = function (this: C, command, options, callback) {
    // The class's, looked up at each send, not kept: a test's mock of the client class's send is the one called.
    const own = Object.getPrototypeOf(client).send as SendingClient['send'];
    if (callback !== undefined || !onlySignal(options)) return own.call(this, command, options, callback);
    const { abortSignal } = options;
    if (!abortSignal) return own.call(this, command);
    const signalled = command as { [SIGNAL]?: AbortSignal };
    signalled[SIGNAL] = abortSignal;
    return own.call(this, command)!.finally(() => {
      if (signalled[SIGNAL] === abortSignal) delete signalled[SIGNAL];
    });
  };
  return client;
}
