import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LoggedAttempt } from '../../functions/domain/attempt-log.ts';
import { WEBHOOK_TYPES, type WebhookType } from '../../functions/domain/conversation.ts';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import type { BreakerPolicy } from '../../functions/domain/endpoints.ts';
import { attemptsMade, resendRefusal } from '../../functions/domain/failed-delivery.ts';
import { errorBody } from '../../functions/domain/gateway-contract.ts';
import { isoInstant } from '../../functions/domain/named-queries.ts';
import type { SecretsBySource } from '../../functions/domain/signatures.ts';
import type { EndpointStore } from '../../functions/shared/endpoint-store.ts';
import { type RedeliveryResult, withHeldReason } from '../../functions/shared/redelivery.ts';
import { settings } from '../../functions/shared/settings.ts';
import { sendTestDelivery, testDeliveryTarget } from '../../functions/shared/test-delivery.ts';
import { cutUnfinished, type LocalRedelivery } from '../engine/redelivery.ts';
import { notAWebhookType, webhookTypeNamed } from '../history/conversation-filters.ts';
import { latestRecord } from '../history/conversations.ts';
import { receiverRows } from '../history/endpoints.ts';
import { withLoggedCounts } from '../history/logged-counts.ts';
import type { ExecutionStore } from '../store/execution-store.ts';
import { type EnvelopeSummary, envelopeStates, type LocalFailedDeliveryStore } from '../store/failed-delivery-store.ts';
import { DATA_DIR_HEADER, DATA_DIR_HOLDER_HEADER } from './config.ts';
import { sendJson } from './http.ts';
import { operatorOnly } from './loopback.ts';
import { type RouteHandler, router } from './router.ts';

export interface OperatorContext {
  failedDeliveries: LocalFailedDeliveryStore;
  redelivery: LocalRedelivery;
  executions: ExecutionStore;
  /** The receivers' run-time state (LOCAL_DATA_DIR/deliveries), and the URLs the gateway was started with. */
  endpoints: EndpointStore;
  deployedUrls: Record<WebhookType, string | null>;
  breaker: BreakerPolicy;
  /** The delivery secrets the gateway signs with, by type (counted, never shown); null when not known here. */
  signingSecrets: () => Promise<SecretsBySource | null>;
  /** A conversation's attempts in the attempt log (GET /local/deliveries counts the tries only the log has). */
  attempts: (conversationId: string) => Promise<readonly LoggedAttempt[]>;
  /** The data folder this gateway serves (LOCAL_DATA_DIR), and what it wrote in its gateway.pid. */
  dataDir: string;
  dataDirHolder: string;
}

/**
 * Why a command that names another data folder (DATA_DIR_HEADER) than this gateway's is refused, or null. Its
 * redrive or resend read that folder's deliveries; this gateway holds others: before, it answered "no failed delivery
 * of <id> is stored" (404), as if the delivery were no longer owed, when the PORT it found it at was another
 * gateway's (the folder's own not running). The folder is this gateway's when its gateway.pid names this gateway
 * (DATA_DIR_HOLDER_HEADER): the same file by any path to it, a symbolic link or a container's mount of the folder. A
 * request without the header (the console, curl) is not asked.
 */
function otherDataDir(req: IncomingMessage, ctx: Pick<OperatorContext, 'dataDir' | 'dataDirHolder'>): string | null {
  const named = req.headers[DATA_DIR_HEADER];
  if (typeof named !== 'string' || named === '') return null;
  let folder: string;
  let holder: string;
  try {
    folder = decodeURIComponent(named);
    holder = decodeURIComponent([req.headers[DATA_DIR_HOLDER_HEADER] ?? ''].flat()[0] ?? '');
  } catch {
    return `${DATA_DIR_HEADER} and ${DATA_DIR_HOLDER_HEADER} must be URI-encoded`;
  }
  if (holder === ctx.dataDirHolder) return null;
  return `this gateway serves the data folder ${ctx.dataDir}, not ${folder}: nothing was done. Start the gateway of ${folder} (LOCAL_DATA_DIR=${folder} npm start), or run the command with this gateway's LOCAL_DATA_DIR`;
}

const badRequest = (res: ServerResponse, message: string) => sendJson(res, 400, errorBody('VALIDATION_ERROR', message));

/** How many deliveries (or plan rows, or results) an answer holds unless `?limit=` says otherwise, and at most. */
/**
 * How long a console button's change of a receiver waits for its lock at most: a local holder's 5 s, never the 11 s a
 * lock of another pid namespace may be waited on (functions/shared/local-files.ts), which the console's answer is
 * not kept waiting for.
 */
const CONSOLE_LOCK_WAIT_MS = 5_000;
const consoleLockWait = () => ({ until: Date.now() + CONSOLE_LOCK_WAIT_MS });

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 1000;

/** `?limit=N` (1 to MAX_LIMIT, DEFAULT_LIMIT when absent); the reason when it is not one. */
function limitOf(req: IncomingMessage): number | string {
  const asked = new URL(req.url ?? '/', 'http://local').searchParams.get('limit');
  if (asked === null) return DEFAULT_LIMIT;
  const limit = Number(asked);
  return /^\d+$/.test(asked) && limit >= 1 && limit <= MAX_LIMIT
    ? limit
    : `limit must be a whole number from 1 to ${MAX_LIMIT}, got "${asked}"`;
}

/**
 * Answers 400 (true) to a query with a parameter the route does not take, or one given twice (the first would count):
 * else a mistyped `?typ=deal_analysis` recovered every type, and `<id>/redrive?dry_run=1` redrove.
 */
function refusedQuery(req: IncomingMessage, res: ServerResponse, takes: readonly string[]): boolean {
  const params = new URL(req.url ?? '/', 'http://local').searchParams;
  for (const name of new Set(params.keys())) {
    const reason = !takes.includes(name)
      ? `unknown parameter "${name}": this route takes ${takes.length > 0 ? takes.join(', ') : 'none'}`
      : params.getAll(name).length > 1
        ? `${name} takes one value, got ${params.getAll(name).length}`
        : null;
    if (reason) {
      badRequest(res, reason);
      return true;
    }
  }
  return false;
}

/** `?since=ISO&type=T` of a recover (redrive --all); null with the reason when a value cannot be used. */
function recoverFilter(req: IncomingMessage): { since: number | null; type: string | null } | string {
  const params = new URL(req.url ?? '/', 'http://local').searchParams;
  const since = params.get('since') || null;
  const asked = params.get('type') || null;
  const type = asked === null ? null : webhookTypeNamed(asked);
  const sinceMs = since === null ? null : isoInstant(since);
  if (sinceMs !== null && Number.isNaN(sinceMs))
    return `since must be an ISO 8601 date or date-time with a zone (e.g. 2026-11-29 or 2026-11-29T08:00:00Z), got "${since}"`;
  if (asked !== null && type === null) return `type must be one of ${WEBHOOK_TYPES.join(', ')}, got "${asked}"`;
  return { since: sinceMs, type };
}

/**
 * /local/deliveries and /local/endpoints: what `webhook-gateway deliveries redrive | resend` and the console's
 * buttons call (the endpoints commands write the store's files themselves). The local operator only (operatorOnly).
 */
export function operatorRoutes(ctx: OperatorContext): RouteHandler {
  // The type of /local/endpoints/<type>/…, in any case: another word is 400 naming it and the types there are, as
  // `endpoints <command> <type>` and `?type=` refuse it, not the 404 of a path that is not there (docs/contract.md).
  const webhookTypeOf = (res: ServerResponse, raw: string): WebhookType | null => {
    const value = decodeURIComponent(raw);
    const type = webhookTypeNamed(value);
    if (type === null) badRequest(res, notAWebhookType(value));
    return type;
  };
  const conversationId = (res: ServerResponse, raw: string): string | null => {
    const id = decodeURIComponent(raw);
    if (isConversationId(id)) return id;
    badRequest(res, `"${id}" is not a conversation id`);
    return null;
  };
  // Every receiver as it reads now: one whose file is damaged is named in its row (the file and what to do), the
  // others shown all the same, as `endpoints list` does.
  const rows = async () =>
    receiverRows(
      ctx.endpoints,
      (await ctx.failedDeliveries.summaries()).summaries,
      ctx.deployedUrls,
      ctx.breaker,
      await ctx.signingSecrets(),
    );
  // The receiver changed, as it reads now: another type's damaged file is no failure of this change. Its lock held by
  // another process past CONSOLE_LOCK_WAIT_MS: 503 STORAGE_UNAVAILABLE, nothing changed (LockBusyError: the gateway's
  // answer to a busy data folder, local/server/storage-failure.ts).
  const endpointAction =
    (act: (type: WebhookType) => Promise<unknown>) =>
    async (req: IncomingMessage, res: ServerResponse, match: RegExpExecArray) => {
      if (refusedQuery(req, res, [])) return;
      const type = webhookTypeOf(res, match[1]!);
      if (!type) return;
      await act(type);
      sendJson(
        res,
        200,
        (await rows()).find((v) => v.webhook_type === type),
      );
    };
  /**
   * A recover of one type whose receiver's file is damaged: refused, naming the file and what to do (an
   * UnreadableFileError: 500 STATE_UNREADABLE, as its Pause and Resume), rather than planned and then held.
   */
  const receiverReadable = async (type: string | null) => {
    if (type !== null) await ctx.endpoints.get(type as WebhookType);
  };
  // A held redrive or resend says why: its receiver paused or disabled since when, or at its rate.
  const explained = (result: RedeliveryResult) => withHeldReason(result, ctx.endpoints, ctx.breaker, new Date());
  const typePath = '([^/]+)';
  const routes = router([
    {
      // The newest `limit` envelopes in `state` (pending and dead unless asked), and how many more there are: as
      // `deliveries list`, chosen by the store's summaries, so only those returned are read (docs/operations.md).
      path: /^\/local\/deliveries$/,
      methods: {
        GET: async (req, res) => {
          if (refusedQuery(req, res, ['state', 'limit'])) return;
          const limit = limitOf(req);
          if (typeof limit === 'string') return badRequest(res, limit);
          const wanted = new URL(req.url ?? '/', 'http://local').searchParams.get('state') || 'pending,dead';
          const states = envelopeStates(wanted);
          if (!states) return badRequest(res, `state takes pending, dead, settled or all, got "${wanted}"`);
          const { envelopes: newest, total } = await ctx.failedDeliveries.newest({ limit, states });
          // As `deliveries list`: with the tries only the attempt log has (a log that cannot be read: the envelope's).
          const { envelopes } = await withLoggedCounts(newest, ctx.attempts);
          sendJson(res, 200, { deliveries: envelopes, total, not_shown: total - envelopes.length });
        },
      },
    },
    {
      path: /^\/local\/deliveries\/plan$/,
      methods: {
        GET: async (req, res) => {
          if (refusedQuery(req, res, ['since', 'type', 'limit'])) return;
          const filter = recoverFilter(req);
          if (typeof filter === 'string') return badRequest(res, filter);
          const limit = limitOf(req);
          if (typeof limit === 'string') return badRequest(res, limit);
          await receiverReadable(filter.type);
          const planned = await ctx.failedDeliveries.plan(filter);
          const shown = await plannedRows(ctx, planned.slice(0, limit));
          sendJson(res, 200, { count: planned.length, deliveries: shown, not_shown: planned.length - shown.length });
        },
      },
    },
    {
      path: /^\/local\/deliveries\/redrive$/,
      methods: {
        POST: async (req, res) => {
          if (refusedQuery(req, res, ['since', 'type', 'limit'])) return;
          const filter = recoverFilter(req);
          if (typeof filter === 'string') return badRequest(res, filter);
          const limit = limitOf(req);
          if (typeof limit === 'string') return badRequest(res, limit);
          await receiverReadable(filter.type);
          // Every planned delivery is redriven; the answer counts them all and holds the first `limit` results.
          const planned = await ctx.failedDeliveries.plan(filter);
          const results: RedeliveryResult[] = [];
          const counts: Record<string, number> = {};
          for (const e of planned) {
            const result = await ctx.redelivery.redrive(e.conversation_id);
            counts[result.status] = (counts[result.status] ?? 0) + 1;
            if (results.length < limit) results.push(await explained(result));
          }
          sendJson(res, 200, { count: planned.length, counts, results, not_shown: planned.length - results.length });
        },
      },
    },
    {
      path: /^\/local\/deliveries\/([^/]+)\/redrive$/,
      methods: {
        POST: async (req, res, match) => {
          if (refusedQuery(req, res, [])) return;
          const id = conversationId(res, match[1]!);
          if (!id) return;
          const result = await explained(await ctx.redelivery.redrive(id));
          // Nothing stored to redrive: a 404 in the contract's error shape, as every other refusal (docs/contract.md).
          if (result.status === 'not_found') return sendJson(res, 404, errorBody('NOT_FOUND', result.error ?? id));
          sendJson(res, 200, result);
        },
      },
    },
    {
      path: /^\/local\/deliveries\/([^/]+)\/resend$/,
      methods: {
        POST: async (req, res, match) => {
          if (refusedQuery(req, res, [])) return;
          const id = conversationId(res, match[1]!);
          if (!id) return;
          // A resend of it the data folder cut is finished first, so that the record read has its attempt.
          if (!(await ctx.redelivery.cutFinished())) return sendJson(res, 200, cutUnfinished(id));
          const record = latestRecord(await ctx.executions.executions(id));
          if (!record) return sendJson(res, 404, errorBody('NOT_FOUND', `no conversation ${id} in the local history`));
          const refused = resendRefusal(record, await ctx.failedDeliveries.get(id));
          if (refused) return sendJson(res, 409, errorBody('RESEND_REFUSED', refused));
          sendJson(res, 200, await explained(await ctx.redelivery.resend(record)));
        },
      },
    },
    { path: /^\/local\/endpoints$/, methods: { GET: async (_req, res) => sendJson(res, 200, await rows()) } },
    {
      path: new RegExp(`^/local/endpoints/${typePath}/pause$`, 'i'),
      methods: {
        POST: endpointAction((type) =>
          ctx.endpoints.configure(type, { paused: true }, new Date(), undefined, consoleLockWait()),
        ),
      },
    },
    {
      path: new RegExp(`^/local/endpoints/${typePath}/resume$`, 'i'),
      methods: { POST: endpointAction((type) => ctx.endpoints.resume(type, new Date(), consoleLockWait())) },
    },
    {
      // One signed test delivery to the receiver, sent now and kept nowhere (docs/contract.md#test-deliveries).
      path: new RegExp(`^/local/endpoints/${typePath}/test$`, 'i'),
      methods: {
        POST: async (req, res, match) => {
          if (refusedQuery(req, res, [])) return;
          const type = webhookTypeOf(res, match[1]!);
          if (!type) return;
          const target = testDeliveryTarget(type, (await ctx.endpoints.get(type)).config.url ?? ctx.deployedUrls[type]);
          if ('refused' in target) return badRequest(res, target.refused);
          const secrets = await ctx.signingSecrets();
          const timeoutMs = settings().deliveryTimeoutMs;
          sendJson(res, 200, await sendTestDelivery(type, target.url, secrets && (secrets[type] ?? []), timeoutMs));
        },
      },
    },
  ]);
  return operatorOnly(async (req, res) => {
    req.resume();
    const other = otherDataDir(req, ctx);
    if (other !== null) return sendJson(res, 409, errorBody('OTHER_DATA_DIR', other));
    return routes(req, res);
  }, 'the operator endpoint');
}

/**
 * A plan's rows, its attempts counted as GET /local/deliveries and `deliveries list` count them: the envelopes shown
 * (only those, not every one planned) read whole, with the tries only the attempt log has (withLoggedCounts), the last
 * attempt's number (attemptsMade). One gone or unreadable meanwhile, or whose log cannot be read: as its summary or
 * envelope has it.
 */
async function plannedRows(ctx: OperatorContext, shown: readonly EnvelopeSummary[]) {
  // A plan is not refused for an envelope that cannot be read now: its rows say their summaries' counts then.
  const read = await ctx.failedDeliveries.read(shown.map((e) => e.conversation_id)).catch(() => []);
  const { envelopes } = await withLoggedCounts(read, ctx.attempts);
  const made = new Map(envelopes.map((e) => [e.conversation_id, attemptsMade(e)]));
  return shown.map((e) => ({
    conversation_id: e.conversation_id,
    webhook_type: e.webhook_type,
    state: e.state,
    attempts: made.get(e.conversation_id) ?? e.attempt_count,
    created_at: e.created_at,
  }));
}
