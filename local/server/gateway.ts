import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import {
  type ExecutionInput,
  errorBody,
  healthBody,
  NO_STORE,
  STATUS_ROUTE_PREFIX,
} from '../../functions/domain/gateway-contract.ts';
import { RECORD_ONLY_IN_HISTORY_STATE, RECORD_ONLY_IN_LOGS_STATE } from '../../functions/domain/observability.ts';
import { parseSecretsBySource } from '../../functions/domain/signatures.ts';
import { type CaughtError, parseTaskError } from '../../functions/domain/task-error.ts';
import { attemptLog } from '../../functions/shared/attempt-log.ts';
import { injectClientSettings } from '../../functions/shared/clients/injected-settings.ts';
import { cachedSignalSends } from '../../functions/shared/clients/signal-sends.ts';
import { endpointStore, FileEndpointStore } from '../../functions/shared/endpoint-store.ts';
import { UnreadableFileError } from '../../functions/shared/local-files.ts';
import { endpointGate } from '../../functions/shared/redelivery.ts';
import { DEFAULTS, type Settings, settings } from '../../functions/shared/settings.ts';
import { consoleRoutes } from '../console/index.ts';
import type { EndedExecution, ExecutionRecord, LocalWorkflow, RunRestart } from '../engine/engine.ts';
import { ExecutionJournal, type JournaledRun } from '../engine/journal.ts';
import {
  type RecoveredExecution,
  type RecoveryContext,
  RecoveryFailed,
  RecoveryStopped,
  recoverCut,
  recoverInterrupted,
} from '../engine/recovery.ts';
import { LocalRedelivery } from '../engine/redelivery.ts';
import { type InFlight, RunningExecutions } from '../engine/running.ts';
import { setAsideExecution, setAsideWarning, stillSetAside } from '../engine/set-aside.ts';
import { loadStageHandlers, localWorkflow } from '../engine/workflows.ts';
import { receiverRows } from '../history/endpoints.ts';
import { SummaryIndex } from '../history/summary-index.ts';
import { damagedFileMessage, wrongKindMessage } from '../store/damaged-files.ts';
import { lockDataDir } from '../store/data-dir-lock.ts';
import { dataDirModeWarning, ownerOnlyDataDir } from '../store/data-dir-mode.ts';
import { deliverySecretsFileOf, localDeliverySecrets, readDeliverySecrets } from '../store/delivery-secrets.ts';
import { type EmbeddedS3, startEmbeddedS3 } from '../store/embedded-s3.ts';
import { conversationIdOf, ExecutionStore } from '../store/execution-store.ts';
import { LocalFailedDeliveryStore } from '../store/failed-delivery-store.ts';
import { removeGatewayRuntime, writeGatewayRuntime } from '../store/gateway-runtime.ts';
import { IN_PROCESS_S3_CLIENT_SETTINGS, withoutOutboundMiddleware } from '../store/in-process-s3-transport.ts';
import { sweepLocalHistory } from '../store/retention.ts';
import { parseApiKeys } from './api-keys.ts';
import {
  checkEnvironment,
  type GatewayOptions,
  handlerLogLevel,
  localEnvironmentDefaults,
  resolveOptions,
  withDefaults,
} from './config.ts';
import {
  answerAtTheEdge,
  BodyTooLargeError,
  hostRefusal,
  keepServingAfterErrors,
  readBody,
  refuseBeforeRoutes,
  sendJson,
  transferCodingRefusal,
} from './http.ts';
import { isLoopbackAddress, loopbackOnly, operatorOnly, operatorRefusal } from './loopback.ts';
import { operatorRoutes } from './operator-routes.ts';
import { parseRateLimits, RateLimiter } from './rate-limiter.ts';
import { DeliveryReceiver } from './receiver.ts';
import { type Route, type RouteHandler, router } from './router.ts';
import { handleSampleAgentInvoke } from './sample-agent.ts';
import { handleConversationStatus } from './status-route.ts';
import {
  STORAGE_RETRY_AFTER_SECONDS,
  stateUnreadableBody,
  storageFailureLine,
  storageFailureOf,
  storageUnavailableBody,
} from './storage-failure.ts';
import { asyncRunSummary, handleWebhook, responseTimeout } from './webhook-route.ts';

/** What the accept workflow's StartConversation state passes to `states:startExecution`. */
interface StartExecutionParameters {
  StateMachineArn: string;
  Name: string;
  Input: unknown;
}

export interface RunningGateway {
  url: string;
  port: number;
  options: GatewayOptions;
  /** The handlers' settings as this gateway runs them: what the user set, local defaults for the rest. */
  settings: Settings;
  s3Endpoint: string;
  bucket: string;
  agentFunctionName: string;
  /** Where the handlers invoke the agent (this server's sample agent unless AWS_ENDPOINT_URL_LAMBDA was set). */
  agentEndpoint: string;
  /** Where the local delivery signing secrets were made, when they were not configured. */
  deliverySecretsFile: string | null;
  failedDeliveries: LocalFailedDeliveryStore;
  redelivery: LocalRedelivery;
  executions: ExecutionStore;
  receiver: DeliveryReceiver;
  /** What crash recovery finished at start (executions a previous process left interrupted). */
  recovered: RecoveredExecution[];
  /** Run one conversation exactly as POST /webhook does, without HTTP. */
  runConversation(input: ExecutionInput): Promise<EndedExecution>;
  /** Accept one as POST /webhook with `Prefer: respond-async` does: its run goes on after this settles. */
  acceptConversation(input: ExecutionInput): Promise<EndedExecution>;
  /** Settles once no execution is in flight (the runs of accepted conversations included). */
  idle(): Promise<void>;
  /** How many executions are in flight now, and the latest time their budgets let them end by. */
  inFlight(): InFlight;
  /** Stop taking requests, let the conversations in flight finish, then stop everything. */
  close(): Promise<void>;
  /**
   * Settles with the line saying why once another gateway took this one's data folder over (it stood still for more
   * than 30 s): new conversations are refused from then on; the process should stop at once.
   */
  dataDirLost: Promise<string>;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const listening = (server.address() as AddressInfo).port;
      keepServingAfterErrors(server, `the gateway at ${host}:${listening}`);
      resolve(listening);
    });
  });
}

/** How often the running gateway sweeps its local history (store/retention.ts); it also sweeps at start. */
const SWEEP_EVERY_MS = 3_600_000;

/**
 * The built-in receiver has one path per webhook type: another name (`deal-analysis`) answers 404 naming them,
 * rather than `[]` as if nothing had arrived, or a delivery recorded where nobody looks.
 */
function unknownReceiver(type: string, res: ServerResponse): boolean {
  if ((WEBHOOK_TYPES as readonly string[]).includes(type)) return false;
  const paths = WEBHOOK_TYPES.map((t) => `/local/receiver/${t}`).join(', ');
  sendJson(res, 404, errorBody('NOT_FOUND', `No built-in receiver "${type}": there is one per webhook type, ${paths}`));
  return true;
}

/**
 * A request (any but the console's pages) once another gateway took the data folder over: 503 STOPPING, as a stop
 * answers (docs/contract.md#errors), saying why; nothing is read or written. This gateway stops at once.
 */
function refuseLost(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  sendJson(
    res,
    503,
    errorBody(
      'STOPPING',
      'the gateway is stopping: another gateway took its data folder over; send it again once that one serves it',
    ),
    { ...NO_STORE, 'retry-after': '5', connection: 'close' },
  );
}

/** Start the local gateway: HTTP server, embedded S3, sample agent, built-in receiver, the ASL on the local engine. */
export async function startGateway(partial: Partial<GatewayOptions> = {}): Promise<RunningGateway> {
  const options = resolveOptions(partial);
  const userSettings = checkEnvironment();
  const apiKeys = parseApiKeys(process.env.API_KEYS);
  // Local state holds requests, answers and secrets: the data folder is its owner's alone (made so, or put back so).
  const dataDirWarning = dataDirModeWarning(options.dataDir, await ownerOnlyDataDir(options.dataDir));
  if (dataDirWarning) console.warn(dataDirWarning);
  // Another gateway took the data folder over (this one stood still past 30 s: a paused container): from then on no
  // new conversation is taken (503 STOPPING), close() leaves that gateway's gateway.json, and `dataDirLost` tells the
  // command to stop at once; what was in flight is left to the journal, recovered as after a crash (docs/operations.md,
  // "Processes in other containers"). Before, it only printed the line and two gateways served one folder.
  let lostDataDir: ((line: string) => void) | null = null;
  const dataDirLost = new Promise<string>((resolve) => {
    lostDataDir = resolve;
  });
  /** The line that said so, once another gateway took the data folder over; null while this one holds it. */
  let lost: string | null = null;
  const dataDirLock = await lockDataDir(options.dataDir, {
    notice: (line) => console.warn(`webhook-gateway: ${line}`),
    onLost: (line) => {
      lost = line;
      console.error(`webhook-gateway: ${line}`);
      lostDataDir?.(line);
    },
  });
  if (dataDirLock.tookOver) console.warn(`webhook-gateway: ${dataDirLock.tookOver}`);
  // Each history's summary index entry is written as it is saved: a first filtered listing reads no history for it.
  // Off the caller's path (a folder listing and an append): a history whose entry is not written yet (or never, after
  // a crash) is found by its name and read (summary-index.ts). close() and idle() wait for those under way.
  const indexWrites = new Set<Promise<void>>();
  const executions: ExecutionStore = new ExecutionStore(options.dataDir, {
    held: dataDirLock.held,
    onSaved: async (id, file, record, folder) => {
      const write = summaryIndex.recordSaved(id, file, record, folder);
      indexWrites.add(write);
      void write.finally(() => indexWrites.delete(write));
    },
  });
  // The one its saves, its console and its sweep share (SummaryIndex.of), closed with the gateway.
  const summaryIndex = SummaryIndex.of(executions, options.summaryIndexRetry);
  const failedDeliveries = new LocalFailedDeliveryStore(options.dataDir);
  const receiver = new DeliveryReceiver(options.dataDir);

  let route: (req: IncomingMessage, res: ServerResponse) => Promise<void> = async (req, res) => {
    req.resume();
    sendJson(res, 503, errorBody('STARTING', 'the gateway is starting'), { ...NO_STORE, 'retry-after': '1' });
  };
  // Slow clients are cut off (408): the headers within headersTimeoutMs, the whole request within requestTimeoutMs.
  const server = createServer(
    {
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1_000, Math.ceil(options.headersTimeoutMs / 3)),
      // Refused below in the error shape, with its line, rather than with Node's bare 400.
      requireHostHeader: false,
    },
    (req, res) => {
      // Another gateway serves the data folder now: nothing is read or written here any more (the console says so on
      // its own page: consoleRoutes).
      // At once after the process stood still: held() looks at gateway.pid then (data-dir-lock.ts).
      if (!dataDirLock.held() && !/^\/console(\/|\?|$)/.test(req.url ?? '')) return refuseLost(req, res);
      const badHost = hostRefusal(req);
      if (badHost) return refuseBeforeRoutes(req, res, [400, 'BAD_REQUEST', badHost], options.onExecution);
      const badCoding = transferCodingRefusal(req);
      if (badCoding) return refuseBeforeRoutes(req, res, [501, 'NOT_IMPLEMENTED', badCoding], options.onExecution);
      route(req, res).catch((error: Error) => {
        // A client that went away or was cut off (408 above) failed its own request: nothing to report or answer.
        // (Not req.destroyed: a request whose body was read is destroyed too, and its client still waits.)
        if (res.destroyed || !res.socket || res.socket.destroyed) return;
        // A body past a route's limit (the built-in receiver's 1 MB) is the client's: 413, as POST /webhook answers.
        if (error instanceof BodyTooLargeError && !res.headersSent)
          return sendJson(
            res,
            413,
            errorBody(
              'PAYLOAD_TOO_LARGE',
              `Request too large: this route takes a body of at most ${error.limit} bytes`,
            ),
          );
        const what = `${req.method} ${JSON.stringify(req.url)} failed`;
        const storage = storageFailureOf(error);
        // A damaged file of the data folder is no bug: its line names the file and what to do, without a stack.
        const damaged =
          error instanceof UnreadableFileError ? damagedFileMessage(error.message) : wrongKindMessage(error);
        if (storage) console.error(storageFailureLine(options.dataDir, storage, what));
        else if (damaged) console.error(`webhook-gateway: ${what}: ${damaged}`);
        else console.error(`webhook-gateway: ${what}: ${error.stack ?? error.message}`);
        // Never kept by a cache in between: GET /conversations/{id} answers no-store whatever went wrong.
        if (res.headersSent) res.end();
        else if (storage)
          sendJson(res, 503, storageUnavailableBody(storage), {
            ...NO_STORE,
            'retry-after': String(STORAGE_RETRY_AFTER_SECONDS),
          });
        else if (damaged)
          // The local operator (the commands, the console) is told which file; anyone else only that one is damaged.
          sendJson(
            res,
            500,
            stateUnreadableBody(error.message, operatorRefusal(req) === null ? damaged : undefined),
            NO_STORE,
          );
        else sendJson(res, 500, errorBody('INTERNAL_ERROR', 'internal error in the local gateway'), NO_STORE);
      });
    },
  );
  server.keepAliveTimeout = 5_000;
  answerAtTheEdge(server, options, options.onExecution);
  const port = await listen(server, options.port, options.host).catch(async (error: Error) => {
    await dataDirLock.release();
    throw error;
  });
  // Bound to every interface, the gateway still reaches itself (sample agent, receiver) and is shown on loopback.
  const reachable = options.host === '0.0.0.0' ? '127.0.0.1' : options.host === '::' ? '::1' : options.host;
  const url = `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;

  let s3: EmbeddedS3 | null = null;
  let deliverySecretsFile: string | null = null;
  // The handlers read their settings from the environment, as on Lambda: what the user did not set gets its local
  // default there. The gateway keeps the same values in `handlerEnv` and never reads them back from process.env.
  let handlerEnv: Record<string, string>;
  try {
    if (!process.env.AWS_ENDPOINT_URL_S3) {
      const bucket = userSettings.exportBucket ?? DEFAULTS.exportBucket;
      s3 = await startEmbeddedS3({
        directory: path.join(options.dataDir, 's3'),
        port: options.s3Port,
        bucket,
        headersTimeoutMs: options.headersTimeoutMs,
        requestTimeoutMs: options.requestTimeoutMs,
      });
      // The handlers' S3 client reaches the embedded S3 in this process: no sockets (the same store, the same rules).
      injectClientSettings('s3', IN_PROCESS_S3_CLIENT_SETTINGS);
    }
    const defaults = localEnvironmentDefaults(url, s3?.endpoint ?? null);
    if (process.env.AWS_PROFILE) {
      delete defaults.AWS_ACCESS_KEY_ID;
      delete defaults.AWS_SECRET_ACCESS_KEY;
    }
    if (!userSettings.idempotencyTableName) defaults.IDEMPOTENCY_DIR = path.join(options.dataDir, 'idempotency');
    if (!userSettings.statusTableName) defaults.STATUS_DIR = path.join(options.dataDir, 'status');
    if (!userSettings.threadTableName) defaults.THREAD_DIR = path.join(options.dataDir, 'threads');
    if (!userSettings.deliveriesTableName) defaults.DELIVERIES_DIR = path.join(options.dataDir, 'deliveries');
    const secretsFile = deliverySecretsFileOf(options.dataDir);
    if (secretsFile) {
      const made = await localDeliverySecrets(options.dataDir, secretsFile);
      parseSecretsBySource(made.json, `the delivery secrets in ${made.file}`);
      // Read by Deliver from the file (again whenever it changes: `endpoints set <type> --secret` rotates a secret).
      defaults.DELIVERY_SIGNING_SECRETS_FILE = made.file;
      deliverySecretsFile = made.file;
      if (made.fixedMode)
        console.warn(
          `webhook-gateway: ${made.file} was readable by others (mode ${made.fixedMode}); it is now 0600 (owner only)`,
        );
    }
    handlerEnv = withDefaults(process.env, defaults);
    // The user's file as an absolute path, as the banner and gateway.json name it.
    if (deliverySecretsFile) handlerEnv.DELIVERY_SIGNING_SECRETS_FILE = deliverySecretsFile;
    handlerEnv.LOG_LEVEL = handlerLogLevel(process.env);
    // With local API keys the handlers learn each key's source from them (ids only), whatever else was set.
    if (apiKeys.required) handlerEnv.SOURCE_API_KEY_IDS = apiKeys.sourceApiKeyIds;
    Object.assign(process.env, handlerEnv);
    // Export's PutObjects to the embedded S3, each given its deadline's abort signal, are served by the middleware stack
    // its client resolved once (functions/shared/clients/signal-sends.ts). Loaded only now: the client's module imports
    // the Powertools set-up, which reads POWERTOOLS_TRACE_ENABLED once, at import (see the stores' import below).
    // And without the middleware that only matters for a request sent out of the process (the same module).
    if (s3) cachedSignalSends(withoutOutboundMiddleware((await import('../../functions/shared/clients/s3.ts')).s3));
  } catch (error) {
    // Nothing may be left listening: the command reports the error and its process ends.
    server.close();
    await s3?.close();
    await dataDirLock.release();
    throw error;
  }
  // What the user set, with the local defaults where they set nothing.
  const config = settings({ ...process.env, ...handlerEnv });
  /**
   * The sample agent and the built-in receiver: peers of the handlers that happen to share this server's port. They
   * answer from here on, while the start still recovers (its 503 STARTING is for callers): a conversation run that
   * recovery starts again calls them before the gateway takes requests (docs/operations.md, "After a crash"). Before,
   * such a run got 503 from its own sample agent and ended failed with AGENT_ERROR, its caller holding a 202.
   */
  const helperRoutes: Route[] = [
    {
      path: /^\/2015-03-31\/functions\/([^/]+)\/invocations$/,
      guard: (handler) => operatorOnly(handler),
      methods: {
        POST: (req, res, m) => handleSampleAgentInvoke(m[1]!, config.agentFunctionName, req, res),
      },
    },
    {
      path: /^\/local\/receiver\/([A-Za-z0-9_-]+)$/,
      guard: (handler) => operatorOnly(handler),
      methods: {
        POST: async (req, res, m) => {
          if (unknownReceiver(m[1]!, res)) return;
          const raw = (await readBody(req, 1024 * 1024)).toString('utf8');
          await receiver.record(m[1]!, req.headers, raw);
          sendJson(res, 200, { received: true });
        },
        GET: async (_req, res, m) => {
          if (!unknownReceiver(m[1]!, res)) sendJson(res, 200, receiver.byType(m[1]!));
        },
      },
    },
  ];
  const starting = route;
  route = router([...helperRoutes, { path: /^/, mount: async (req, res) => starting(req, res) }]);
  const s3Endpoint = handlerEnv.AWS_ENDPOINT_URL_S3!;
  const bucket = config.exportBucket!;
  /** The SQL engine over this gateway's exports, for the console's Analytics page (DuckDB is loaded on first use). */
  const openAnalyticsEngine = async (fromDay: string | null = null) => {
    const { openLocalAnalytics } = await import('../analytics/engine.ts');
    const { gatewayAnalysisSource } = await import('../analytics/sources.ts');
    const source = gatewayAnalysisSource({
      dataDir: options.dataDir,
      bucket,
      embedded: s3 !== null,
      endpoint: s3Endpoint,
      env: handlerEnv,
    });
    return openLocalAnalytics(options.dataDir, handlerEnv, source, fromDay);
  };

  let journal: ExecutionJournal;
  let recovered: RecoveredExecution[];
  let recoveryMs: number;
  /** What recovery works with: at start, and for an execution the data folder cut while the gateway runs (finishCut). */
  let recovery: RecoveryContext;
  const handlers = { ...(await loadStageHandlers(options.budgetClock)), ...options.stageOverrides };
  const sendFailedDelivery = (params: unknown) => failedDeliveries.sendMessage(params as never);
  const workflow = localWorkflow('conversation', handlers, sendFailedDelivery, options.retryIntervalOverrides);
  const redeliveryWorkflow = localWorkflow('redelivery', handlers, sendFailedDelivery, options.retryIntervalOverrides);
  const acceptWorkflow = localWorkflow(
    'accept',
    handlers,
    sendFailedDelivery,
    options.retryIntervalOverrides,
    undefined,
    async (params) => startRun(params as StartExecutionParameters),
  );
  // The receivers' run-time state: the handlers reach it through DELIVERIES_DIR (or a table), so does the schedule.
  const endpoints = endpointStore()!;
  /** The executions of this process the data folder cut, by name, until finishCut has finished them. */
  const cut = new Map<string, JournaledRun>();
  /**
   * The executions of this process that ended but whose history the data folder refused (a full disk): saved by
   * finishCut once it takes writes again, so that `conversations show` and the console have them without a restart.
   */
  const unsaved = new Map<string, { conversationId: string; record: ExecutionRecord; run: JournaledRun }>();
  /** Each execution under way as its history so far, shown by the console until its history is saved. */
  const runningExecutions = new RunningExecutions();
  const inFlight = new Set<Promise<unknown>>();
  let started = performance.now();
  try {
    // What a crash of the previous process left in flight ends now, before any request (or redelivery) is taken.
    journal = await ExecutionJournal.open(path.join(options.dataDir, 'journal'), {
      holds: options.onTestHold,
      held: dataDirLock.held,
    });
    started = performance.now();
    // Loaded only now, like the stage handlers: its module imports the Powertools set-up, which reads
    // POWERTOOLS_TRACE_ENABLED once, at import — before the local defaults were set it would load the X-Ray SDK,
    // whose async hook slows every promise of the process (docs/performance.md §2).
    const { idempotencyStore } = await import('../../functions/shared/idempotency-store.ts');
    const { localStatusStore } = await import('../../functions/shared/conversation-status-store.ts');
    const { attemptLog } = await import('../../functions/shared/attempt-log.ts');
    recovery = {
      journal,
      workflow,
      redeliveryWorkflow,
      acceptWorkflow,
      failedDeliveries,
      executions,
      idempotency: idempotencyStore(),
      statuses: localStatusStore(),
      uncleanStop: dataDirLock.stale,
      stopped: options.stopRequested,
      setAside: async (name, entries, error) => {
        // A data folder refusing writes passes: the start fails as before, and the next one tries it again.
        if (storageFailureOf(error)) return null;
        return setAsideExecution(journal.dir, name, entries, error, new Date());
      },
      attempts: attemptLog(),
      // Started before the gateway takes requests, not waited for; close() waits for it as for any run.
      restart: (name, input, run, restart) => runAlone(input, name, run, restart),
    };
    recovered = await recoverInterrupted(recovery);
    // Said at every start while some are set aside: each was a conversation the operator has to retry or drop.
    const setAside = setAsideWarning(journal.dir, await stillSetAside(journal.dir));
    if (setAside) console.warn(setAside);
    recoveryMs = Math.round(performance.now() - started);
  } catch (error) {
    if (error instanceof RecoveryFailed) {
      // The runs it had started again go on to their end (their agent and receiver may be this server) before the
      // gateway stops: journaled ended, nothing of them is lost or found half done at the next start.
      const runs = inFlight.size;
      console.error(
        `webhook-gateway: ${error.message}; the next start tries it again, with what recovery had not finished${runs > 0 ? `; ${runs} conversation run(s) it had started again are finished first` : ''}`,
      );
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    }
    // Stopped by the operator: the runs it had started again finish too, as a Ctrl-C lets a running gateway's finish.
    if (error instanceof RecoveryStopped) {
      options.onRecovery?.(error.recovered, Math.round(performance.now() - started));
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    }
    server.close();
    await s3?.close();
    await dataDirLock.release();
    throw error instanceof RecoveryFailed ? error.cause : error;
  }
  options.onRecovery?.(recovered, recoveryMs);
  let finishing: Promise<void> | null = null;
  /** When the folder last refused finishCut (performance.now()): tried again a second later at the soonest. */
  let refusedAt = Number.NEGATIVE_INFINITY;
  const redelivery = new LocalRedelivery(
    failedDeliveries,
    redeliveryWorkflow,
    executions,
    journal,
    () => endpointGate(endpoints, config.breaker),
    runningExecutions,
    { add: (name, run) => cut.set(name, run), finish: () => finishCut().then(() => cut.size === 0) },
    async (id) => (await attemptLog()?.list(id)) ?? [],
  );
  redelivery.start(options.redeliveryPollMs, options.onRedelivery);
  const retention = {
    dataDir: options.dataDir,
    idempotencyDir: config.idempotencyDir ?? null,
    idempotencyTtlSeconds: config.idempotencyTtlSeconds,
    statusDir: config.statusDir ?? null,
    threadDir: config.threadDir ?? null,
    threadTtlDays: config.threadTtlDays,
    objects: s3?.store ?? null,
    failedDeliveries,
    historiesRemoved: () => summaryIndex.forgetRemoved(),
  };
  const sweep = async () => {
    try {
      const swept = await sweepLocalHistory(retention, options.historyDays, new Date());
      if (Object.values(swept).some((n) => (Array.isArray(n) ? n.length > 0 : n > 0))) options.onSweep?.(swept);
    } catch (error) {
      console.error(
        `webhook-gateway: the local history sweep failed: ${wrongKindMessage(error) ?? (error as Error).message}`,
      );
    }
  };
  let sweeping = sweep();
  const sweepTimer = setInterval(() => {
    sweeping = sweeping.then(sweep);
  }, SWEEP_EVERY_MS);
  sweepTimer.unref();
  // The data folder taken over: what writes to it by itself stops at once (the schedule, the sweep, the index's retry),
  // whether or not the process then exits (the command does: local/cli/main.ts).
  void dataDirLost.then(() => {
    clearInterval(sweepTimer);
    summaryIndex.close();
    return redelivery.stop();
  });

  /** Set by close(): new conversations are refused while those in flight finish (unlessStopping). */
  let stopping = false;
  let closing: Promise<void> | null = null;
  /**
   * One execution, journaled step by step (journal.ts: the journal's first line is written before this returns), so
   * that a crash loses nothing; its history is on disk before the promise settles, so `conversations show` right
   * after a curl finds it.
   */
  function execute(
    target: LocalWorkflow,
    input: unknown,
    name: string,
    run = journal.begin(name, input),
    restart?: RunRestart,
  ): Promise<EndedExecution> {
    const shown = runningExecutions.begin(name, target.name, input);
    const ran = target
      .run(input, name, { observer: run, onEvent: shown.onEvent })
      .then((record) => (restart ? { ...record, restart } : record));
    const running = ran.then(async (record) => {
      const conversationId = conversationIdOf(record);
      // Not for a run the data folder cut (a step it could not journal did not run: the run is finished later, here
      // or by the gateway that took the folder over), whose Export failed for that reason alone.
      const onlyIn =
        run.refused || lost !== null
          ? null
          : (recordOnlyInHistoryLine(record, conversationId) ??
            recordOnlyInLogsLine(record, conversationId, options.dataDir));
      if (onlyIn) console.error(onlyIn);
      const unqueued = run.refused || lost !== null ? null : deliveryUnqueuedLine(record, conversationId);
      if (unqueued) console.error(unqueued);
      // Cut by the data folder (a step it could not journal did not run): finished once the folder takes writes
      // again, by finishCut, as the next start would finish it; its history is the one that recovery saves then.
      if (run.refused && record.status !== 'SUCCEEDED') {
        cut.set(name, run);
        return record;
      }
      try {
        if (conversationId) await executions.save(conversationId, record);
      } catch (error) {
        // The conversation ran to its end (answered, delivered, exported): its caller gets that answer, not a 500 that
        // a source would retry as a second conversation. The journal keeps the execution open, so the next start
        // rebuilds its history from it (recovery.ts). The folder another gateway's now: said once already (onLost).
        if (!dataDirLock.held()) return record;
        // Refused by the folder (a full disk): saved again before the next conversation once it takes writes.
        const later = storageFailureOf(error) !== null;
        if (later) unsaved.set(name, { conversationId: conversationId!, record, run });
        console.error(
          `webhook-gateway: the history of execution ${name} (conversation ${conversationId}) could not be saved; ${later ? 'it is saved once the data folder takes writes again (before the next conversation), or' : 'it is'} rebuilt from the journal at the next start: ${(error as Error).message}`,
        );
        return record;
      }
      run.end();
      return record;
    });
    inFlight.add(running);
    // Shown running until its history is saved (or given up): never neither.
    running.then(
      () => {
        shown.end();
        inFlight.delete(running);
      },
      () => {
        shown.end();
        inFlight.delete(running);
      },
    );
    return running;
  }
  /**
   * Finish the executions the data folder cut, now that it may take writes again (docs/operations.md, "After a
   * crash"): each as the next start would (recovery.ts, recoverCut), its Idempotency-Key settled, so that the retry the
   * caller's 503 asked for gets the conversation's answer, not 409 and then a second conversation. Called before each
   * new conversation and each redelivery (a redelivery run it cut too: local/engine/redelivery.ts); one the folder
   * still refuses waits for a later one (or for the next start).
   */
  function finishCut(): Promise<void> {
    if ((cut.size === 0 && unsaved.size === 0) || performance.now() - refusedAt < 1_000) return Promise.resolve();
    if (finishing) return finishing;
    const begun = (other: string) => cut.has(other) || runningExecutions.list().some((r) => r.execution_name === other);
    const done = (async () => {
      const started = performance.now();
      for (const [name, { conversationId, record, run }] of [...unsaved]) {
        try {
          await executions.save(conversationId, record);
        } catch (error) {
          if (storageFailureOf(error)) {
            refusedAt = performance.now(); // still refused: a later request tries again
            return;
          }
          // Left to the journal: the next start rebuilds it (recovery.ts).
          console.error(
            `webhook-gateway: the history of execution ${name} (conversation ${conversationId}) could not be saved now either; it is rebuilt from the journal at the next start: ${(error as Error).message}`,
          );
          unsaved.delete(name);
          continue;
        }
        unsaved.delete(name);
        run.end();
        console.error(
          `webhook-gateway: the history of execution ${name} (conversation ${conversationId}) is saved now that the data folder takes writes again`,
        );
      }
      for (const [name, run] of [...cut]) {
        let finished: RecoveredExecution | null = null;
        try {
          finished = await recoverCut(recovery, name, await run.entries(), begun);
        } catch (error) {
          if (storageFailureOf(error)) {
            refusedAt = performance.now(); // still refused: a later request tries again
            return;
          }
          console.error(
            `webhook-gateway: execution ${name}, cut by the data folder, could not be finished now; the next start recovers it: ${(error as Error).message}`,
          );
          cut.delete(name);
          continue;
        }
        cut.delete(name);
        // Started again (its own journal lines under the same name): no `end` line, which would read as that run's.
        if (finished?.outcome === 'restarted') run.handOver();
        else run.end();
        if (finished) options.onRecovery?.([finished], Math.round(performance.now() - started), 'running');
      }
    })();
    finishing = done;
    inFlight.add(done);
    const settled = () => {
      finishing = null;
      inFlight.delete(done);
    };
    done.then(settled, settled);
    return done;
  }
  /** `run` once finishCut is done: at once (no extra turn of the event loop) while nothing is cut. */
  const afterCut = (run: () => Promise<EndedExecution>) =>
    cut.size === 0 && unsaved.size === 0 ? run() : finishCut().then(run);
  const runConversation = (input: ExecutionInput) => afterCut(() => execute(workflow, input, input.request_id));
  const acceptConversation = (input: ExecutionInput) =>
    afterCut(() => execute(acceptWorkflow, input, input.request_id));
  /**
   * The accept workflow's StartExecution of the conversation workflow: the run is journaled and under way when this
   * returns, and nobody waits for it (the caller already has its 202; close() lets it finish).
   */
  function startRun(params: StartExecutionParameters) {
    runAlone(params.Input, params.Name);
    return { ExecutionArn: `${params.StateMachineArn}:${params.Name}`, StartDate: new Date().toISOString() };
  }
  /** A conversation run nobody waits for (its caller has its 202); `run`, `restart`: recovery started it again. */
  function runAlone(input: unknown, name: string, run?: JournaledRun, restart?: RunRestart) {
    const started = performance.now();
    execute(workflow, input, name, run, restart).then(
      (record) => options.onExecution?.(asyncRunSummary(record, performance.now() - started)),
      (error: Error) => console.error(`webhook-gateway: conversation ${name} failed: ${error.stack ?? error.message}`),
    );
  }

  const limiter = new RateLimiter(parseRateLimits(process.env.RATE_LIMITS), options.rateLimitClock);

  const webhookContext = {
    runConversation,
    acceptConversation,
    limiter,
    apiKeys,
    baseUrl: url,
    publicUrl: options.publicUrl?.base ?? null,
    onExecution: options.onExecution,
    responseTimeoutMs: config.responseTimeoutMs,
    responseTimer: options.responseTimer ?? responseTimeout,
    now: options.budgetClock?.now ?? Date.now,
    runningConversationId: (name: string) => {
      const run = runningExecutions.list().find((r) => r.execution_name === name);
      return run ? conversationIdOf(run) : null;
    },
  };
  const operator = operatorRoutes({
    failedDeliveries,
    redelivery,
    executions,
    endpoints,
    deployedUrls: config.deliveryUrls,
    breaker: config.breaker,
    // How each receiver's deliveries are signed: counted from the file it signs with (none known when the secrets are
    // DELIVERY_SIGNING_SECRETS).
    signingSecrets: () => readDeliverySecrets(deliverySecretsFile),
    attempts: async (id) => (await attemptLog()?.list(id)) ?? [],
    dataDir: options.dataDir,
    dataDirHolder: dataDirLock.stamp,
  });
  // On a loopback-only listener every legitimate caller is on this machine and names it so: a rebound DNS name is a
  // page on another origin (DNS rebinding), refused even on the public routes. The helper routes (sample agent,
  // receiver) and the operator surfaces answer the local operator only, however the gateway is bound.
  // PUBLIC_URL's host is the one other name they accept: a reverse proxy on this machine that passes the public Host
  // on (docs/security.md). The operator surfaces never do.
  const publicRoute = isLoopbackAddress(options.host)
    ? (handler: RouteHandler) => loopbackOnly(handler, options.publicUrl ?? null)
    : (handler: RouteHandler) => handler;
  /**
   * While close() lets the conversations in flight finish, the listener stays open for them (the sample agent and
   * the built-in receiver are on it) and new conversations are refused: 503 STOPPING, to be sent again once the
   * gateway is back. /health says the same, so a load balancer or a script stops sending.
   */
  const unlessStopping =
    (handler: RouteHandler): RouteHandler =>
    async (req, res, m) => {
      if (!stopping && lost === null) return handler(req, res, m);
      req.resume();
      sendJson(res, 503, errorBody('STOPPING', 'the gateway is stopping: send it again once it is back'), {
        'retry-after': '5',
        connection: 'close',
      });
    };
  route = router(
    [
      {
        path: /^\/webhook$/,
        guard: publicRoute,
        methods: { POST: unlessStopping((req, res) => handleWebhook(req, res, webhookContext)) },
      },
      {
        path: new RegExp(`^${STATUS_ROUTE_PREFIX}([^/]+)$`),
        guard: publicRoute,
        methods: {
          GET: (req, res, m) =>
            handleConversationStatus(req, res, m[1]!, limiter, apiKeys, options.responseTimer ?? responseTimeout),
        },
      },
      {
        path: /^\/health$/,
        guard: publicRoute,
        methods: {
          GET: unlessStopping(async (_req, res) =>
            sendJson(
              res,
              200,
              healthBody({
                service: 'webhook-gateway',
                engine: 'aws-local-stepfunctions',
                time: new Date().toISOString(),
              }),
            ),
          ),
        },
      },
      ...helperRoutes,
      { path: /^\/local\/(deliveries|endpoints)(\/.*)?$/, mount: operator },
      {
        path: /^\/console(\/.*)?$/,
        mount: consoleRoutes({
          attempts: async (id) => (await attemptLog()?.list(id)) ?? [],
          endpoints: async () =>
            receiverRows(
              endpoints,
              (await failedDeliveries.summaries()).summaries,
              config.deliveryUrls,
              config.breaker,
              await readDeliverySecrets(deliverySecretsFile),
            ),
          receiversDir: endpoints instanceof FileEndpointStore ? endpoints.dir : '',
          executions,
          running: () => runningExecutions.list(),
          runningVersion: () => runningExecutions.version(),
          stopping: () => stopping,
          lost: () => (dataDirLock.held() ? null : lost),
          failedDeliveries,
          bucket,
          s3Endpoint,
          exportEnabled: config.exportEnabled,
          analytics: openAnalyticsEngine,
        }),
      },
    ],
    { notFoundHint: 'Try POST /webhook or GET /health.' },
  );
  await writeGatewayRuntime(options.dataDir, {
    pid: process.pid,
    url,
    s3_endpoint: s3Endpoint,
    bucket,
    export_enabled: config.exportEnabled,
    started_at: new Date().toISOString(),
    delivery_urls: config.deliveryUrls,
    delivery_secrets_file: deliverySecretsFile,
    breaker: config.breaker,
  });

  return {
    url,
    port,
    options,
    settings: config,
    s3Endpoint,
    bucket,
    agentFunctionName: config.agentFunctionName,
    agentEndpoint: handlerEnv.AWS_ENDPOINT_URL_LAMBDA!,
    deliverySecretsFile,
    failedDeliveries,
    redelivery,
    executions,
    receiver,
    recovered,
    runConversation,
    acceptConversation,
    inFlight() {
      const limits = new Map([workflow, acceptWorkflow, redeliveryWorkflow].map((w) => [w.name, w.timeoutMs]));
      return runningExecutions.inFlight((machine) => limits.get(machine) ?? null, config.deliveryTimeoutMs);
    },
    async idle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      await Promise.allSettled([...indexWrites]);
    },
    dataDirLost,
    close() {
      if (!server.listening && !closing) return Promise.resolve();
      closing ??= (async () => {
        stopping = true;
        clearInterval(sweepTimer);
        await redelivery.stop();
        await sweeping;
        // The listener stays open until the conversations in flight have finished: their agent calls (the sample
        // agent) and deliveries (the built-in receiver) come back to this server. Closed first, they failed with
        // ECONNREFUSED, and the failures opened the receivers' circuit breakers.
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        await Promise.allSettled([...indexWrites]);
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        // Every timer it started is cleared (the sweep's, the redelivery schedule's above; the index's retry, the
        // journal's rest here): none fires after close, into a data folder that may be deleted by then.
        summaryIndex.close();
        journal.close();
        await s3?.close();
        if (lost === null) await removeGatewayRuntime(options.dataDir);
        await dataDirLock.release();
      })();
      return closing;
    },
  };
}

/**
 * What the operator is told when a conversation's delivery failed and the failed-delivery store refused it too
 * (QueueFailedDelivery's Catch): no automatic attempt follows. On AWS the DeliveriesUnqueued alarm counts its
 * WEBHOOK_DELIVERY_UNQUEUED line (docs/deploy.md); here that line is in the handlers' log, so the gateway prints it.
 */
function deliveryUnqueuedLine(record: ExecutionRecord, conversationId: string | null): string | null {
  const entered = record.events.find(
    (e) =>
      e.type === 'StateEntered' &&
      (e.input as { delivery_queue_error?: CaughtError } | undefined)?.delivery_queue_error,
  );
  if (!entered || !conversationId) return null;
  const refusal = parseTaskError((entered.input as { delivery_queue_error: CaughtError }).delivery_queue_error);
  return `webhook-gateway: conversation ${conversationId}: its delivery failed and the failed-delivery store refused it (${refusal.error}: ${refusal.message}): no automatic attempt follows; deliver it with: webhook-gateway deliveries resend ${conversationId}`;
}

/**
 * What the operator is told when S3 and the failed-delivery store refused a conversation's record and the Export
 * function logged it whole (state RecordOnlyInLogs, not followed by RecordOnlyInHistory): on AWS the RecordsOnlyInLogs
 * alarm counts its WEBHOOK_CONVERSATION_UNSAVED line (docs/deploy.md); here that line is in the handlers' log, which
 * nobody watches, so the gateway prints it. Null for any other execution.
 */
function recordOnlyInLogsLine(record: ExecutionRecord, conversationId: string | null, dataDir: string): string | null {
  const entered = record.events.find((e) => e.type === 'StateEntered' && e.state === RECORD_ONLY_IN_LOGS_STATE);
  if (!entered) return null;
  const refusal = parseTaskError(
    (entered.input as { export_queue_error?: CaughtError } | undefined)?.export_queue_error,
  );
  const log =
    process.env.LOCAL_LOG_TO_STDOUT?.toLowerCase() === 'true'
      ? "the handlers' log lines printed here"
      : path.join(dataDir, 'logs', 'handlers.jsonl');
  return `webhook-gateway: conversation ${conversationId ?? '(unknown)'}: its record is only in the handlers' log: S3 refused its export, then the failed-delivery store refused it (${refusal.error}: ${refusal.message}). The record is the \`record\` of its WEBHOOK_CONVERSATION_UNSAVED line in ${log}; export it by hand once S3 takes it (docs/operations.md)`;
}

/**
 * What the operator is told when a conversation's record was kept nowhere but in its execution history: S3 and the
 * failed-delivery store refused it, then the Export function could not log it (state RecordOnlyInHistory). On AWS a
 * metric filter on the execution log counts it for the RecordsOnlyInLogs alarm (docs/deploy.md); here the gateway
 * prints it. Null for any other execution.
 */
function recordOnlyInHistoryLine(record: ExecutionRecord, conversationId: string | null): string | null {
  const entered = record.events.find((e) => e.type === 'StateEntered' && e.state === RECORD_ONLY_IN_HISTORY_STATE);
  if (!entered) return null;
  const refusal = parseTaskError((entered.input as { log_error?: CaughtError } | undefined)?.log_error);
  return `webhook-gateway: conversation ${conversationId ?? '(unknown)'}: its record is only in the history of execution ${record.execution_name}: S3 and the failed-delivery store refused it, then the Export function could not log it (${refusal.error}: ${refusal.message}). The record is the input of state RecordOnlyInLogs there (the console's execution page, or .data/executions/); export it by hand once S3 takes it (docs/operations.md)`;
}
