/**
 * The local web console, served by the running gateway under /console: recent conversations, each conversation's
 * state-by-state timeline, export documents and delivery attempts, and a Redrive button (which POSTs to the
 * existing /local/deliveries/<id>/redrive endpoint). Plain server-rendered HTML, one small script, no build step.
 * Like the operator endpoints it answers the local operator only (local/server/loopback.ts).
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withAttemptLog } from '../../functions/domain/attempt-log.ts';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import type { FailedDeliveryEnvelope } from '../../functions/domain/failed-delivery.ts';
import {
  canonicalSource,
  NAME_CHARACTERS,
  nameBreak,
  SOURCE_NAME_RULE,
  sourceNameProblem,
} from '../../functions/domain/source-identity.ts';
import { MAX_THREAD_ID_LENGTH, THREAD_ID_PATTERN } from '../../functions/domain/thread.ts';
import { UnreadableFileError } from '../../functions/shared/local-files.ts';
import { type ConversationFilter, FilterError, parseFilter } from '../history/conversation-filters.ts';
import { latestRecord } from '../history/conversations.ts';
import { receiverHolds } from '../history/endpoints.ts';
import { type ListCursor, parseCursor } from '../history/listing.ts';
import { operatorRefusal } from '../server/loopback.ts';
import { type Refuse, type RouteHandler, router } from '../server/router.ts';
import {
  STORAGE_RETRY_AFTER_SECONDS,
  type StorageFailure,
  storageFailureLine,
  storageFailureOf,
  storageRefusal,
} from '../server/storage-failure.ts';
import { damagedFileMessage, wrongKindMessage } from '../store/damaged-files.ts';
import {
  type ConsoleContext,
  conversationExecutions,
  endpointsFingerprint,
  endpointsVersion,
  exportDocuments,
  listedConversations,
  openDeliveries,
  threadConversations,
  version,
} from './data.ts';
import {
  conversationFragment,
  endpointsFragment,
  errorFragment,
  listFragment,
  listRefusedFragment,
  notFoundFragment,
  page,
  threadFragment,
  threadPath,
} from './pages.ts';

export type { ConsoleContext } from './data.ts';

const STATIC_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'static');
const STATIC_FILES: Record<string, string> = {
  'console.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
};
const LIST_LIMIT = 100;
/** The most `GET /console/api/conversations?limit=` gives: each conversation is a history read. */
const MAX_API_LIMIT = 1_000;

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    ...extra,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

const sendHtml = (req: IncomingMessage, res: ServerResponse, status: number, body: string) =>
  send(req, res, status, 'text/html; charset=utf-8', body);
const sendData = (req: IncomingMessage, res: ServerResponse, status: number, body: unknown) =>
  send(req, res, status, 'application/json; charset=utf-8', JSON.stringify(body));

/** A page that refreshes when what it shows changes (the list version unless told): the whole page, or its fragment. */
function sendPage(
  req: IncomingMessage,
  res: ServerResponse,
  fragment: boolean,
  shell: Omit<Parameters<typeof page>[0], 'versionSrc'> & { versionSrc?: string },
): void {
  sendHtml(req, res, 200, fragment ? shell.body.value : page({ versionSrc: '/console/api/version', ...shell }));
}

/** What the Endpoints page polls: its receivers' and failed deliveries' fingerprint (data.ts, endpointsVersion). */
const ENDPOINTS_VERSION_SRC = '/console/api/version?of=endpoints';
/**
 * The least time between two live refreshes of the Endpoints page, ms: on a busy gateway its rows change with every
 * delivery (last success, queued), and a page replaced every second cannot be read, selected or copied from.
 */
const ENDPOINTS_MIN_REFRESH_MS = 5_000;
/**
 * The least time between two live refreshes of the Analytics page, ms: its charts are of hours and each refresh runs
 * its three queries on the SQL engine, which a busy gateway (a conversation every second) did every second per tab.
 */
const ANALYTICS_MIN_REFRESH_MS = 10_000;
/**
 * The least time between two live refreshes of the Conversations list, ms: on a busy gateway a conversation arrives or
 * changes every second, and a list replaced every second cannot be read, selected or copied from.
 */
const LIST_MIN_REFRESH_MS = 5_000;

/** The list's filter parameters: those of `conversations list` (--source … --key), by the same names. */
const FILTER_PARAMS = ['source', 'type', 'status', 'since', 'until', 'thread', 'id', 'key'] as const;
/** Those that take a comma-separated list: also given as the parameter repeated (`?type=a&type=b`). */
const LIST_PARAMS = new Set<string>(['source', 'type', 'status']);

/** What the list (page and JSON) was asked for: its filter and page, or why it cannot be. */
interface ListQuery {
  filter: ConversationFilter;
  cursor: ListCursor | null;
  /** The filter and cursor as the address has them, empty ones left out (the page's links and its live refresh). */
  params: URLSearchParams;
}

/**
 * The list's query: the filters of `conversations list` (docs/operations.md, "Runbook"), by the same names and with
 * the same rule for each value and the same message for a bad one, and `cursor` (the `next_cursor` of the page
 * before). An empty value (a form's field left blank) is no filter; an unknown parameter is refused, not ignored.
 */
function listQuery(req: IncomingMessage, extra: readonly string[]): ListQuery | string {
  const asked = new URL(req.url ?? '', 'http://local').searchParams;
  const params = new URLSearchParams();
  const flags: Record<string, string> = {};
  for (const name of new Set(asked.keys())) {
    if (!(FILTER_PARAMS as readonly string[]).includes(name) && name !== 'cursor' && !extra.includes(name))
      return `unknown parameter "${name}": the list takes ${[...FILTER_PARAMS, 'cursor', ...extra].join(', ')}`;
    if (extra.includes(name)) continue;
    const values = asked.getAll(name).filter((v) => v.trim() !== '');
    if (values.length > 1 && !LIST_PARAMS.has(name)) return `${name} takes one value, got ${values.length}`;
    if (values.length === 0) continue;
    flags[name] = values.join(',');
    params.set(name, flags[name]);
  }
  try {
    const filter = parseFilter(flags);
    const cursor = flags.cursor === undefined ? null : parseCursor(flags.cursor);
    if (cursor !== null && filter.thread !== null) return 'cursor pages a list newest first; a thread is listed whole';
    // The CLI's flags are named with their --; here they are parameters.
    return { filter, cursor, params };
  } catch (error) {
    if (error instanceof FilterError) return error.message.replace(/--(\w+)/g, '$1');
    throw error;
  }
}

/** What the operator does about a data folder that refuses the console's reads (storage-failure.ts's codes). */
const STORAGE_FIX: Record<StorageFailure['code'], string> = {
  EMFILE:
    'The gateway process is out of file descriptors: close what holds them, or start it again with a higher limit (ulimit -n 1024)',
  ENFILE: 'This system is out of file descriptors: close what holds them',
  ENOSPC: 'Free some space on its disk',
  EDQUOT: 'Free some of its disk quota',
  EROFS: 'Mount its file system read-write',
  EACCES: "Let the gateway's user read and write it (its owner and permissions)",
  EPERM: "Let the gateway's user read and write it (its owner and permissions)",
  EBUSY: 'Nothing was changed: another process (a command, a gateway in another container) holds its lock; try again',
};

/** 404 and 400 (an address that does not decode): the console's own page; 405: a line of text. */
const refuse: Refuse = (req, res, status, message, headers) => {
  if (status === 400) {
    const raw = (req.url ?? '/console').split(/[?#]/, 1)[0]!;
    return sendHtml(
      req,
      res,
      400,
      page({
        title: 'Bad address',
        version: '',
        versionSrc: '',
        fragmentSrc: '',
        body: notFoundFragment(
          `${raw} is no address of the console: its percent-encoding (%XX) does not decode. The console lives at /console.`,
          'Bad address',
        ),
      }),
    );
  }
  const pathname = new URL(req.url ?? '/console', 'http://local').pathname;
  if (status !== 404) return send(req, res, status, 'text/plain; charset=utf-8', `${message}\n`, headers);
  return sendHtml(
    req,
    res,
    404,
    page({
      title: 'Not found',
      version: '',
      versionSrc: '',
      fragmentSrc: '',
      body: notFoundFragment(`Nothing at ${pathname}. The console lives at /console.`),
    }),
  );
};

const isFragment = (req: IncomingMessage) =>
  new URL(req.url ?? '/console', 'http://local').searchParams.get('fragment') === '1';

/**
 * The version of what a page is about to show, read before what it shows: a change meanwhile is one its live poll
 * then sees (read beside or after it, the page could take that change as shown and leave it out until the next one).
 * None for a fragment: the poll that asked for it keeps the version it read.
 */
const versionBefore = (req: IncomingMessage, read: () => Promise<string>) =>
  isFragment(req) ? Promise.resolve('') : read();

function consolePages(ctx: ConsoleContext) {
  return router(
    [
      {
        path: /^\/console\/?$/,
        methods: {
          GET: async (req, res) => {
            const query = listQuery(req, ['fragment']);
            const fragment = isFragment(req);
            const shell = { title: 'Conversations', current: '/console' as const, minRefreshMs: LIST_MIN_REFRESH_MS };
            if (typeof query === 'string') {
              // The form stays, with what was asked, above the reason: the operator mends the value in place.
              const body = listRefusedFragment(new URL(req.url ?? '', 'http://local').searchParams, query);
              return sendHtml(
                req,
                res,
                400,
                fragment ? body.value : page({ ...shell, version: '', versionSrc: '', fragmentSrc: '', body }),
              );
            }
            const v = await versionBefore(req, () => version(ctx));
            const [listed, open, receivers] = await Promise.all([
              listedConversations(ctx, query.filter, LIST_LIMIT, query.cursor),
              openDeliveries(ctx, LIST_LIMIT),
              ctx.endpoints().catch(() => []),
            ]);
            const body = listFragment(listed, open, LIST_LIMIT, receiverHolds(receivers), query.params);
            const filtered = query.params.size > 0 ? `?${query.params}` : '';
            sendPage(req, res, fragment, {
              ...shell,
              version: v,
              fragmentSrc: `/console${filtered}${filtered ? '&' : '?'}fragment=1`,
              liveTitle: `refreshes when a conversation arrives or changes, at most every ${LIST_MIN_REFRESH_MS / 1000} s`,
              body,
            });
          },
        },
      },
      {
        path: /^\/console\/analytics$/,
        methods: {
          GET: async (req, res) => {
            const { analyticsFragment, analyticsView } = await import('./analytics.ts');
            const v = await versionBefore(req, () => version(ctx));
            const view = await analyticsView(ctx.analytics, ctx.now?.() ?? new Date());
            sendPage(req, res, isFragment(req), {
              title: 'Analytics',
              current: '/console/analytics',
              version: v,
              fragmentSrc: '/console/analytics?fragment=1',
              liveTitle: `refreshes when a conversation arrives or changes, at most every ${ANALYTICS_MIN_REFRESH_MS / 1000} s`,
              minRefreshMs: ANALYTICS_MIN_REFRESH_MS,
              body: analyticsFragment(view, ctx.exportEnabled),
            });
          },
        },
      },
      {
        path: /^\/console\/endpoints$/,
        methods: {
          GET: async (req, res) => {
            const receivers = await ctx.endpoints();
            // The version of the rows rendered, not of a second read: a change between two reads would go unseen.
            const v = endpointsFingerprint(receivers);
            // Live like the other pages: refreshed when what its rows show changes, at most every 5 s.
            sendPage(req, res, isFragment(req), {
              title: 'Endpoints',
              current: '/console/endpoints',
              version: v,
              fragmentSrc: '/console/endpoints?fragment=1',
              body: endpointsFragment(receivers, ctx.now?.() ?? new Date()),
              versionSrc: ENDPOINTS_VERSION_SRC,
              liveTitle: `refreshes when a receiver or its queued deliveries change, at most every ${ENDPOINTS_MIN_REFRESH_MS / 1000} s`,
              minRefreshMs: ENDPOINTS_MIN_REFRESH_MS,
            });
          },
        },
      },
      {
        path: /^\/console\/conversations\/([^/]+)$/,
        methods: { GET: (req, res, match) => conversationPage(ctx, req, res, decodeURIComponent(match[1]!)) },
      },
      {
        path: /^\/console\/threads\/([^/]+)\/([^/]+)$/,
        methods: {
          GET: async (req, res, match) => {
            const asked = decodeURIComponent(match[1]!);
            const threadId = decodeURIComponent(match[2]!);
            // Nothing the webhook takes (docs/contract.md): said so, not shown as a thread still to come, and never
            // printed into the page's copy-paste command.
            const refused = threadRefusal(asked, threadId);
            if (refused !== null) {
              const body = notFoundFragment(refused);
              const shell = { title: 'Not found', version: '', versionSrc: '', fragmentSrc: '', body };
              return sendHtml(req, res, 404, isFragment(req) ? body.value : page(shell));
            }
            const source = canonicalSource(asked);
            const v = await versionBefore(req, () => version(ctx));
            const turns = await threadConversations(ctx, source, threadId);
            // Live like the list, and as often at most: it follows every conversation's change (the list's version),
            // of any source or thread, and each refresh reads its turns again.
            sendPage(req, res, isFragment(req), {
              title: `Thread ${threadId}`,
              version: v,
              fragmentSrc: `${threadPath(source, threadId)}?fragment=1`,
              body: threadFragment(source, threadId, turns),
              liveTitle: `refreshes when a conversation arrives or changes, at most every ${LIST_MIN_REFRESH_MS / 1000} s`,
              minRefreshMs: LIST_MIN_REFRESH_MS,
            });
          },
        },
      },
      {
        path: /^\/console\/api\/version$/,
        methods: {
          GET: async (req, res) => {
            const params = new URL(req.url ?? '', 'http://local').searchParams;
            const id = params.get('id') ?? undefined;
            // Stopping: the pages say so (the gateway still answers while its conversations in flight finish).
            const v = params.get('of') === 'endpoints' ? await endpointsVersion(ctx) : await version(ctx, id);
            sendData(req, res, 200, ctx.stopping() ? { version: v, stopping: true } : { version: v });
          },
        },
      },
      {
        path: /^\/console\/api\/conversations$/,
        methods: {
          GET: async (req, res) => {
            // The newest `limit` of each (docs/operations.md): all the owed deliveries, with their records, were
            // megabytes at thousands of them. The conversations filtered and paged as the list page is.
            const given = new URL(req.url ?? '', 'http://local').searchParams.getAll('limit');
            const asked = given[0] ?? null;
            const limit = asked === null ? LIST_LIMIT : Number(asked);
            // Given twice, the first counted and the second went unread.
            const badLimit =
              given.length > 1
                ? `limit takes one value, got ${given.length}`
                : !/^\d+$/.test(asked ?? '0') || !Number.isInteger(limit) || limit < 1 || limit > MAX_API_LIMIT
                  ? `limit must be a whole number from 1 to ${MAX_API_LIMIT}, got "${asked}"`
                  : null;
            if (badLimit)
              return sendData(req, res, 400, { success: false, error: { code: 'INVALID_LIMIT', message: badLimit } });
            const query = listQuery(req, ['limit']);
            if (typeof query === 'string')
              return sendData(req, res, 400, { success: false, error: { code: 'INVALID_FILTER', message: query } });
            const [listed, open] = await Promise.all([
              listedConversations(ctx, query.filter, limit, query.cursor),
              openDeliveries(ctx, limit),
            ]);
            sendData(req, res, 200, {
              conversations: listed.rows,
              next_cursor: listed.next_cursor,
              failed_deliveries: open.deliveries,
              failed_deliveries_total: open.total,
            });
          },
        },
      },
      {
        path: /^\/console\/static\/(console\.(?:js|css))$/,
        methods: {
          GET: async (req, res, match) =>
            send(req, res, 200, STATIC_FILES[match[1]!]!, await readFile(path.join(STATIC_DIR, match[1]!), 'utf8')),
        },
      },
    ],
    { refuse },
  );
}

/** Why a thread page's source or thread id names no thread the webhook could have taken, or null. */
function threadRefusal(source: string, threadId: string): string | null {
  const sourceProblem = sourceNameProblem(source);
  if (sourceProblem !== null)
    return `"${source}" is not a source system (${SOURCE_NAME_RULE}): ${sourceProblem}; no thread is of it.`;
  if (threadId.length > MAX_THREAD_ID_LENGTH || !THREAD_ID_PATTERN.test(threadId))
    return `"${threadId}" is not a thread id (${NAME_CHARACTERS}, at most ${MAX_THREAD_ID_LENGTH} characters): ${nameBreak(threadId) ?? `it has ${threadId.length} characters`}; no conversation is in it.`;
  return null;
}

/**
 * The conversation's failed-delivery envelope; a file that is not JSON (cut short, edited by hand) is named instead,
 * as `conversations show` names it, so that the rest of the conversation is still shown.
 */
async function storedEnvelope(
  ctx: ConsoleContext,
  id: string,
): Promise<{ envelope: FailedDeliveryEnvelope | null; unreadable: string | null }> {
  try {
    return { envelope: await ctx.failedDeliveries.get(id), unreadable: null };
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return { envelope: null, unreadable: error.message };
  }
}

async function conversationPage(
  ctx: ConsoleContext,
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
): Promise<void> {
  const fragment = isFragment(req);
  const shell = {
    // What the page is, not the bare id (a tab, a bookmark, a screen reader's window list).
    title: `Conversation ${id}`,
    versionSrc: `/console/api/version?id=${encodeURIComponent(id)}`,
    liveTitle: 'refreshes when this conversation changes',
    fragmentSrc: `/console/conversations/${encodeURIComponent(id)}?fragment=1`,
  };
  const v = await versionBefore(req, () => version(ctx, id));
  // A damaged history is named, not taken for a missing one (docs/operations.md, "After a crash").
  const { executions, damaged } = await conversationExecutions(ctx, id);
  // No history kept (not yet written, or swept after LOCAL_HISTORY_DAYS): the export, the archive, may still have it
  // (docs/operations.md, "What happened to conversation X").
  const exported =
    executions.length === 0 && damaged.length === 0 && isConversationId(id) ? await exportDocuments(ctx, id) : null;
  if (executions.length === 0 && damaged.length === 0 && !exported?.some((d) => d.text !== null)) {
    const body = notFoundFragment(
      isConversationId(id) ? `No conversation ${id} (yet).` : `"${id}" is not a conversation id.`,
    );
    return sendHtml(
      req,
      res,
      404,
      // One still to come keeps its title: the page turns into it by itself (a live refresh swaps only the body).
      fragment
        ? body.value
        : page({
            ...shell,
            title: isConversationId(id) ? shell.title : 'Not found',
            version: v,
            body,
          }),
    );
  }
  const [stored, documents, logged, receivers] = await Promise.all([
    storedEnvelope(ctx, id),
    exported ?? exportDocuments(ctx, id),
    ctx.attempts(id).catch(() => []),
    ctx.endpoints().catch(() => []),
  ]);
  const latest = latestRecord(executions);
  const body = conversationFragment({
    id,
    record: latest && withAttemptLog(latest, logged),
    executions,
    envelope: stored.envelope,
    envelopeUnreadable: stored.unreadable,
    documents,
    bucket: ctx.bucket,
    exportEnabled: ctx.exportEnabled,
    holds: receiverHolds(receivers),
    now: ctx.now?.() ?? new Date(),
    damagedHistories: damaged.map(({ file, reason }) =>
      damagedFileMessage(reason.startsWith(file) ? reason : `${file}: ${reason}`),
    ),
  });
  return sendHtml(req, res, 200, fragment ? body.value : page({ ...shell, version: v, body }));
}

/** The console under /console, for the local operator only (operatorRefusal). */
export function consoleRoutes(ctx: ConsoleContext): RouteHandler {
  const routes = consolePages(ctx);
  return async (req, res) => {
    req.resume();
    const refused = operatorRefusal(req);
    if (refused !== null) {
      return send(
        req,
        res,
        403,
        'text/plain; charset=utf-8',
        `The console answers the local operator only (http://127.0.0.1:<port>/console): ${refused}.\n`,
      );
    }
    // Another gateway took the data folder over: this one stops at once. No Retry-After: it is not coming back; the
    // folder is the other gateway's (its console shows it).
    const lost = ctx.lost?.() ?? null;
    if (lost !== null) {
      const body = errorFragment(
        `This gateway no longer serves its data folder: ${lost.replace(/; stop this gateway$/, '')}. It stops at once; what it had in flight is recovered from the journal by the gateway that serves the folder now: open its console.`,
      );
      const shell = { title: 'Error', version: '', versionSrc: '', fragmentSrc: '', body };
      return send(req, res, 503, 'text/html; charset=utf-8', isFragment(req) ? body.value : page(shell));
    }
    try {
      return await routes(req, res);
    } catch (error) {
      // A page that cannot be built (a store file that is not JSON names itself) says why on a page of the console;
      // the JSON routes and a client gone away keep the gateway's own answer (500 INTERNAL_ERROR, or none).
      const pathname = new URL(req.url ?? '/console', 'http://local').pathname;
      if (res.headersSent || req.socket.destroyed || pathname.startsWith('/console/api/')) throw error;
      // The data folder refusing a read or an open (out of file descriptors, permissions, a full disk): 503 with
      // Retry-After, as the gateway answers its API (local/server/storage-failure.ts), what it was and what to do.
      const storage = storageFailureOf(error);
      if (storage) {
        const what = `${req.method} ${JSON.stringify(req.url)} failed`;
        console.error(storageFailureLine(path.dirname(ctx.executions.dir), storage, what));
        const body = errorFragment(
          `This page could not be built: the local gateway ${storageRefusal(storage)}. ${STORAGE_FIX[storage.code]}; the page is shown again once it can.`,
        );
        const shell = { title: 'Error', version: '', versionSrc: '', fragmentSrc: '', body };
        return send(req, res, 503, 'text/html; charset=utf-8', isFragment(req) ? body.value : page(shell), {
          'retry-after': String(STORAGE_RETRY_AFTER_SECONDS),
        });
      }
      // A file of the data folder that is damaged or of the wrong kind is no bug: the file and what to do, no stack.
      const known = error instanceof UnreadableFileError ? damagedFileMessage(error.message) : wrongKindMessage(error);
      const message = known ?? (error instanceof Error ? error.message : String(error));
      console.error(
        `webhook-gateway: ${req.method} ${JSON.stringify(req.url)} failed: ${known ?? (error as Error).stack ?? message}`,
      );
      const body = errorFragment(`This page could not be built: ${message}`);
      const shell = { title: 'Error', version: '', versionSrc: '', fragmentSrc: '', body };
      return sendHtml(req, res, 500, isFragment(req) ? body.value : page(shell));
    }
  };
}
