/**
 * Server-rendered pages of the local console. Every piece of data goes through `html` (escaped). Free text (a question,
 * an answer, a receiver's body) is laid out in its own direction (`dir="auto"`): one in Arabic or Hebrew reads right to
 * left, its question mark at its end.
 */
import { agentTurn, type ConversationRecord, turnText, userQuery } from '../../functions/domain/conversation.ts';
import { shownDeliveryUrl } from '../../functions/domain/delivery-url.ts';
import {
  type EndpointView,
  heldState,
  rotationNote,
  signingLabel,
  stateSince,
} from '../../functions/domain/endpoints.ts';
import { recordFromExport } from '../../functions/domain/export-formats.ts';
import { attemptsMade, type FailedDeliveryEnvelope, owedBy } from '../../functions/domain/failed-delivery.ts';
import { age, timeAgo } from '../../functions/domain/iso-date.ts';
import { ISO_DATE_OR_TIME_PATTERN } from '../../functions/domain/named-queries.ts';
import type { ExecutionRecord } from '../engine/engine.ts';
import { FILTER_STATUSES, FILTER_TYPES } from '../history/conversation-filters.ts';
import { inboundWebhookId, recoveredAfterStop } from '../history/conversations.ts';
import {
  type HeldReceiver,
  NO_HOLDS,
  nextAttemptLabel,
  type ReceiverHolds,
  type UnreadableReceiver,
} from '../history/endpoints.ts';
import {
  type ConversationFigures,
  conversationFigures,
  formatLater,
  formatRunFigures,
  type LaterDelivery,
} from '../history/figures.ts';
import { restartLine, timeline } from '../history/timeline.ts';
import type { EnvelopeHead } from '../store/failed-delivery-store.ts';
import { type ConsolePage, type ConsoleRow, type ExportDocumentView, redeliveryUnderWay } from './data.ts';
import { caption, html, type SafeHtml } from './html.ts';
import { stateClass, workflowSvg } from './workflow-svg.ts';

const token = (value: string | null | undefined) =>
  String(value ?? 'none')
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '');
const badge = (value: string | null | undefined) => html`<span class="badge b-${token(value)}">${value ?? '-'}</span>`;
/**
 * A conversation's status, and before it `interrupted →` when a stop of the gateway cut it and the next start's
 * recovery finished it (docs/operations.md, "After a crash"): what `conversations list --status interrupted` lists.
 */
const statusBadge = (status: string, recovered: boolean | undefined) =>
  recovered && status !== 'interrupted'
    ? html`<span class="recovered" title="a stop of the gateway (crash, kill) cut it; the next start's recovery finished it">${badge('interrupted')} → </span>${badge(status)}`
    : badge(status);
const ms = (value: number | null | undefined) => (value === null || value === undefined ? '-' : `${value} ms`);
/** A duration as the list shows it: ms up to 10 s, then seconds with one decimal. */
const short = (value: number | null | undefined) =>
  value === null || value === undefined ? '-' : value < 10_000 ? `${value} ms` : `${(value / 1000).toFixed(1)} s`;
/** A row's redeliveries after its run (`+1 later`), each with when it ran and its own time, on demand. */
const laterNote = (later: LaterDelivery[]) =>
  later.length === 0
    ? ''
    : html` <small class="later" title="${later.map(formatLater).join('\n')}">+${later.length} later</small>`;
const link = (id: string) => html`<a href="/console/conversations/${encodeURIComponent(id)}">${id}</a>`;
/** The console page of a source's thread (a thread belongs to its source). */
export const threadPath = (sourceSystem: string, threadId: string) =>
  `/console/threads/${encodeURIComponent(sourceSystem)}/${encodeURIComponent(threadId)}`;
const threadLink = (r: { source_system: string; thread_id?: string | null; thread_turn?: number | null }) =>
  r.thread_id
    ? html`<a class="thread" href="${threadPath(r.source_system, r.thread_id)}">${r.thread_id} · ${r.thread_turn ?? '-'}</a>`
    : '-';
/**
 * A time in a table that may wrap it, after its date only (`2026-12-03T` / `17:13:04.873Z`, console.css): the browser
 * cut it after its month, or, kept whole, three of them pushed the Endpoints page's actions out of a laptop's window.
 */
const wrappedTime = (at: string | null | undefined) =>
  at ? html`<span class="date">${at.slice(0, 11)}</span>${at.slice(11)}` : '-';
/** The failed deliveries' next attempt: its time (wrappedTime), or why there is none. */
const timeOrLabel = (label: string) => (/^\d{4}-\d\d-\d\dT/.test(label) ? wrappedTime(label) : label);
const preview = (text: string, max = 90) => {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
};

/** The header's links: each section's page. */
const SECTIONS = [
  ['/console', 'Conversations'],
  ['/console/analytics', 'Analytics'],
  ['/console/endpoints', 'Endpoints'],
] as const;

export interface PageShell {
  title: string;
  /** The header link of this very page (marked aria-current), if it is one of them. */
  current?: (typeof SECTIONS)[number][0];
  version: string;
  versionSrc: string;
  /** What the header's "live" says it follows (its tooltip): what this page's poll asks about. */
  liveTitle?: string;
  /** The least time between two live refreshes, ms (a page whose rows change with every delivery); none unless told. */
  minRefreshMs?: number;
  fragmentSrc: string;
  body: SafeHtml;
}

/** The "live" tooltip of a page that polls the list version (docs/operations.md: each page asks every second). */
const LIVE_TITLE = 'refreshes when a conversation arrives or changes';

export function page(shell: PageShell): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${shell.title} · webhook-gateway console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/static/console.css">
<script src="/console/static/console.js" defer></script>
</head>
<body data-version="${shell.version}" data-version-src="${shell.versionSrc}" data-fragment-src="${shell.fragmentSrc}"${shell.minRefreshMs ? html` data-min-refresh-ms="${shell.minRefreshMs}"` : ''}>
<a class="skip" href="#content">Skip to content</a>
<header class="top"><a class="home" href="/console">webhook-gateway · local console</a><nav aria-label="console">${SECTIONS.map(([href, name]) => (href === shell.current ? html`<a href="${href}" aria-current="page">${name}</a>` : html`<a href="${href}">${name}</a>`))}</nav>${shell.versionSrc ? html`<span id="live" class="live" role="status" title="${shell.liveTitle ?? LIVE_TITLE}">live</span>` : ''}</header>
<div id="flash" role="status" aria-live="polite"></div>
<main id="content" tabindex="-1">${shell.body}</main>
</body>
</html>
`.value;
}

/**
 * The list page: the deliveries still owed (the newest `limit` of them: thousands would push the conversations far
 * out of sight), then the newest `limit` conversations.
 */
export function listFragment(
  listed: ConsolePage,
  owed: { deliveries: EnvelopeHead[]; total: number; unreadable?: string[] },
  limit: number,
  holds: ReceiverHolds = NO_HOLDS,
  params: URLSearchParams = new URLSearchParams(),
): SafeHtml {
  const { rows, unreadable } = listed;
  const filtered = [...params.keys()].some((k) => k !== 'cursor');
  const open = owed.deliveries;
  const damaged = owed.unreadable ?? [];
  const deliveries =
    owed.total === 0 && damaged.length === 0
      ? ''
      : html`<section id="failed-deliveries">
  <h2>Failed deliveries <span class="count">${owed.total}</span></h2>
  ${damaged.length === 0 ? '' : html`<p class="err" id="unreadable-deliveries">Left out, their failed-delivery file damaged (nothing redelivers them until it is mended or deleted; each page names the file): ${damaged.map((id, i) => html`${i > 0 ? ', ' : ''}${link(id)}`)}</p>`}
  ${
    owed.total === 0
      ? ''
      : html`<table>${caption(`Failed deliveries still owed, newest first: ${Math.min(open.length, limit)} of ${owed.total}`)}<thead><tr><th scope="col">conversation</th><th scope="col">type</th><th scope="col">state</th><th scope="col">attempts</th><th scope="col">last error</th><th scope="col">next attempt</th></tr></thead>
  <tbody>${open.slice(0, limit).map((e) => html`<tr data-id="${e.conversation_id}"><td>${link(e.conversation_id)}</td><td>${e.webhook_type}</td><td>${badge(e.state)}${e.dead_reason ? html` <small>${e.dead_reason}</small>` : ''}${e.owed === 'export' ? html` <small>export only</small>` : ''}</td><td class="num">${attemptsMade(e)}</td><td class="err">${preview(e.last_error ?? '', 80)}</td><td>${timeOrLabel(nextAttemptLabel(e, holds))}</td></tr>`)}</tbody></table>`
  }
  ${owed.total > open.length ? html`<p class="more">Showing the newest ${open.length} of ${owed.total}. <code>npx webhook-gateway deliveries list --limit N</code> lists more; the <a href="/console/endpoints">Endpoints</a> page recovers them by type.</p>` : ''}
</section>`;
  const table =
    rows.length === 0
      ? unreadable.length > 0
        ? ''
        : filtered || params.has('cursor')
          ? html`<p class="empty">No conversations match${params.has('cursor') ? ' after this point' : ''}. <a href="/console">Show all</a>.</p>`
          : html`<p class="empty">No conversations yet. POST one to <code>/webhook</code>; it appears here within a second.</p>`
      : html`<table id="conversations">${caption(`${filtered ? 'Conversations matching the filters' : 'Recent conversations'}, ${params.has('thread') ? 'in turn order' : 'newest first'}`)}
  <thead><tr><th scope="col" title="the time the gateway received the request, in UTC">received (UTC)</th><th scope="col">conversation</th><th scope="col">source</th><th scope="col">type</th><th scope="col">status</th><th scope="col">delivery</th><th scope="col" class="num detail">runs</th><th scope="col" class="num detail">agent</th><th scope="col" class="num detail" title="the time its own run spent delivering, a part of total; a redelivery after it (+N later) took its own time, at its own time">delivery</th><th scope="col" class="num">total</th><th scope="col">thread · turn</th><th scope="col">query</th></tr></thead>
  <tbody>${rows.map(
    (
      r,
    ) => html`<tr data-id="${r.conversation_id}" data-status="${r.status}" data-delivery="${r.delivery_status}"${r.recovered ? html` data-recovered="true"` : ''}>
    <td class="time" title="${r.received_at}">${r.received_at.slice(0, 19).replace('T', ' ')}</td><td class="id">${link(r.conversation_id)}</td><td class="source" title="${r.source_system}/${r.source_process}">${r.source_system}/${r.source_process}</td>
    <td>${r.webhook_type ?? '-'}</td><td>${statusBadge(r.status, r.recovered)}</td><td>${badge(r.delivery_status)}${r.redelivering ? html` <span class="badge b-redelivering" title="redelivery ${r.redelivering} under way">redelivering</span>` : ''}</td><td class="num detail">${r.executions}</td>
    <td class="num detail">${short(r.agent_ms)}</td><td class="num detail">${short(r.delivery_ms)}${laterNote(r.later_deliveries)}</td><td class="num">${short(r.total_time_ms)}</td><td class="thread">${threadLink(r)}</td><td class="query" dir="auto" title="${preview(r.query, 300)}">${preview(r.query)}</td></tr>`,
  )}</tbody>
</table>`;
  const older = new URLSearchParams(params);
  if (listed.next_cursor !== null) older.set('cursor', listed.next_cursor);
  const pages = html`${params.has('cursor') ? html`<a id="newest" href="${listHref(withoutCursor(params))}">← Newest</a> ` : ''}${listed.next_cursor === null ? '' : html`<a id="older" href="${listHref(older)}">Older →</a>`}`;
  // One h1, first (the page's title); the owed deliveries above the conversations, each section an h2 under it.
  return html`<h1>Conversations</h1>${deliveries}<section>
  <h2>${filtered ? 'Matching conversations' : 'Recent conversations'} <span class="count">${rows.length}${listed.next_cursor === null ? '' : '+'}</span></h2>
  ${filterForm(params)}
  ${listed.unwritten_index === undefined ? '' : html`<p class="err" id="summary-index-unwritten">The summary index cannot be written (${listed.unwritten_index}); the gateway tries again by itself. Listings read the histories it lacks meanwhile, more slowly.</p>`}
  ${unreadable.length === 0 ? '' : html`<p class="err" id="unreadable-conversations">Left out, their history damaged (each page names the file and what to do): ${unreadable.map((id, i) => html`${i > 0 ? ', ' : ''}${link(id)}`)}</p>`}
  ${table}
  <p class="more pages">${pages}</p>
</section>`;
}

const withoutCursor = (params: URLSearchParams) => {
  const without = new URLSearchParams(params);
  without.delete('cursor');
  return without;
};
const listHref = (params: URLSearchParams) => (params.size > 0 ? `/console?${params}` : '/console');

/** The list's filters, as `conversations list` takes them (docs/operations.md): a GET form, so the address holds them. */
function filterForm(params: URLSearchParams, refused?: string): SafeHtml {
  // The field refused (listRefusedFragment): marked, described by why, and given the keyboard to mend it.
  const marked = (name: string) =>
    name === refused ? html` aria-invalid="true" aria-describedby="filter-error" autofocus` : '';
  const field = (name: string, label: string, hint: string, list?: string) =>
    html`<label>${label} <input name="${name}" value="${params.get(name) ?? ''}" aria-label="filter by ${label}" placeholder="${hint}" autocomplete="off" spellcheck="false"${list ? html` list="${list}"` : ''}${marked(name)}></label>`;
  return html`<form id="filters" method="get" action="/console" role="search" aria-label="filter conversations">
  ${field('id', 'id', 'conversation id, or part')}
  ${field('key', 'key', 'Idempotency-Key or webhook-id')}
  ${field('status', 'status', 'failed,retrying', 'filter-statuses')}
  ${field('type', 'type (receiver)', 'e.g. deal_analysis', 'filter-types')}
  ${field('source', 'source', 'system[/process]')}
  ${field('since', 'since', '2026-12-01')}
  ${field('until', 'until', 'ISO, excluded')}
  ${params.has('thread') ? field('thread', 'thread', 'thread_id') : ''}
  <datalist id="filter-statuses">${FILTER_STATUSES.map((v) => html`<option value="${v}"></option>`)}</datalist>
  <datalist id="filter-types">${FILTER_TYPES.map((v) => html`<option value="${v}"></option>`)}</datalist>
  <button type="submit">Filter</button>${[...params.keys()].length > 0 ? html` <a href="/console">Clear</a>` : ''}
</form>`;
}

/** The list page asked for a filter it cannot use: the form, as asked, and why. */
export function listRefusedFragment(params: URLSearchParams, reason: string): SafeHtml {
  // The reason names the field first ("since must be …", "status takes …"), as the CLI's message names its flag.
  const refused = [...params.keys()].find((name) => reason.startsWith(`${name} `));
  return html`<h1>Conversations</h1><section>
  ${filterForm(params, refused)}
  <p class="err" id="filter-error" role="alert">${reason}</p>
</section>`;
}

/** The way back to the list, atop every page below it. */
const crumbs = () => html`<p class="crumbs"><a href="/console">← all conversations</a></p>`;

/**
 * A source's thread, its conversations in turn order: each question with its answer, as the thread went; of a long
 * thread the newest turns (threadConversations), and a line saying how many earlier ones and how to list them.
 */
export function threadFragment(
  sourceSystem: string,
  threadId: string,
  { turns, earlier }: { turns: { row: ConsoleRow; record: ConversationRecord }[]; earlier: number },
): SafeHtml {
  const command = `npx webhook-gateway conversations list --thread ${threadId} --source ${sourceSystem}`;
  const body =
    turns.length === 0
      ? html`<p class="empty">No conversation of ${sourceSystem} is in thread ${threadId} (yet).</p>`
      : html`<ol class="thread">${turns.map(
          ({ row, record }) => html`<li data-id="${row.conversation_id}" data-turn="${row.thread_turn ?? ''}">
  <p class="turn">turn ${row.thread_turn ?? '-'} · ${link(row.conversation_id)} · <span class="time">${row.received_at}</span> · ${statusBadge(row.status, row.recovered)} ${badge(row.delivery_status)}</p>
  <pre class="text question" dir="auto">${userQuery(record)}</pre>
  <pre class="text answer" dir="auto">${agentTurn(record) ? turnText(agentTurn(record)) : '(no answer)'}</pre>
</li>`,
        )}</ol>`;
  return html`${crumbs()}<section>
  <h1>Thread ${threadId} <small>${sourceSystem}</small> <span class="count">${turns.length + earlier}</span></h1>
  ${
    earlier > 0
      ? html`<p class="more" id="earlier-turns">The newest ${turns.length} turns; the ${earlier} earlier ones are not shown here: <code>${command} --limit ${turns.length + earlier}</code></p>`
      : html`<p class="more"><code>${command}</code></p>`
  }
  ${body}
</section>`;
}

function summary(
  id: string,
  record: ConversationRecord | null,
  executions: ExecutionRecord[],
  damaged: boolean,
  exported: ConversationRecord | null,
): SafeHtml {
  if (!record)
    return html`<h1 class="id">${id}</h1>${exported?.metadata.thread_id ? html`<p id="thread">Of thread ${threadLink(exported.metadata)} <small>(from its export)</small></p>` : ''}<p class="empty" id="no-history">${
      damaged
        ? html`Its history could not be read (see Timeline): the export documents below still have the conversation, and <code>npx webhook-gateway conversations search ${id}</code> finds it.`
        : executions.length === 0
          ? html`No execution history of it is kept here (the retention sweep removes it after <code>LOCAL_HISTORY_DAYS</code>, or it ran elsewhere): the export documents below are the conversation as it was last exported, and <code>npx webhook-gateway conversations search ${id}</code> finds it.`
          : 'No conversation record in its executions yet.'
    }</p>`;
  const ctx = record.webhook_context;
  const answer = agentTurn(record);
  return html`<h1 class="id">${id}</h1>
<dl class="summary">
  <dt>source</dt><dd>${record.metadata.source_system} / ${record.metadata.source_process}</dd>
  <dt>received</dt><dd>${record.metadata.received_at}</dd>
  ${record.metadata.thread_id ? html`<dt>thread</dt><dd id="thread">${threadLink(record.metadata)} <small>turn ${record.metadata.thread_turn ?? '-'}</small></dd>` : ''}
  <dt>status</dt><dd id="conversation-status"${recoveredAfterStop(executions) ? html` data-recovered="true"` : ''}>${statusBadge(record.execution.status, recoveredAfterStop(executions))}</dd>
  <dt>type</dt><dd>${ctx.webhook_type ?? '-'} <small>${ctx.classification_reason ?? 'not classified'}</small></dd>
  <dt>delivery</dt><dd id="delivery-status" data-status="${ctx.delivery_status}">${badge(ctx.delivery_status)} <small>${ctx.delivery_target ? shownDeliveryUrl(ctx.delivery_target) : ''}</small></dd>
${requestKeys(record, executions)}
  <dt>delivery id</dt><dd><code>${ctx.delivery_id}</code></dd>
  ${timings(conversationFigures(record, executions))}
</dl>
<h2>Query</h2><pre class="text" dir="auto">${userQuery(record)}</pre>
<h2>Answer</h2><pre class="text" dir="auto">${answer ? turnText(answer) : '(no answer)'}</pre>
${record.execution.errors.length === 0 ? '' : html`<h2>Errors</h2><ul class="errors">${record.execution.errors.map((e) => html`<li><code>${e.at}</code> ${e.stage}: <b>${e.error}</b> ${e.message}</li>`)}</ul>`}`;
}

/**
 * The run's times (its delivery a part of its total), then each redelivery after it on a line of its own, with when it
 * ran and its own time: hours later, added to the run's, it read as a delivery longer than the whole conversation.
 */
function timings(f: ConversationFigures): SafeHtml {
  return html`<dt>timings</dt><dd id="timings">${formatRunFigures(f)}</dd>${f.later.length === 0 ? '' : html`<dt>redeliveries</dt><dd id="later-deliveries"><ul class="later">${f.later.map((l) => html`<li>${formatLater(l)}</li>`)}</ul></dd>`}`;
}

/** The Idempotency-Key (or webhook-id) the gateway keyed the request on, and the inbound webhook-id it carried. */
function requestKeys(record: ConversationRecord, executions: ExecutionRecord[]): SafeHtml | '' {
  const key = record.metadata.idempotency_key;
  const webhookId = inboundWebhookId(executions);
  if (!key && !webhookId) return '';
  return html`<dt>request</dt><dd id="request-keys">idempotency key <code>${key ?? '-'}</code> · webhook-id <code>${webhookId ?? '-'}</code></dd>`;
}

/** What the receiver answered (the attempt log): the first line of its body, the rest and its headers on demand. */
function answerCell(a: ConversationRecord['execution']['delivery_attempts'][number]): SafeHtml {
  if (!a.response) return html`<span class="err">${a.error ?? ''}</span>`;
  const r = a.response;
  return html`<details class="answer" data-attempt="${a.attempt}"><summary>${preview(r.body, 80) || '(empty body)'}</summary>
  ${a.request ? html`<p><small>sent to</small> <code>${shownDeliveryUrl(a.request.url)}</code>${a.execution_name ? html` <small>by</small> <code>${a.execution_name}</code>` : ''}</p>` : ''}
  <dl class="headers">${Object.entries(r.headers).map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>
  <pre class="text" dir="auto">${r.body}</pre>${r.body_truncated ? html`<p><small>the rest of the answer is not kept (over 4 KB, or cut short)</small></p>` : ''}
</details>`;
}

/**
 * What Redrive will do: deliver now, unless the receiver is paused or disabled, which holds an operator's redrive as
 * it holds the schedule (docs/operations.md, "Failed deliveries"): nothing is attempted until it is resumed.
 */
function redriveNote(envelope: FailedDeliveryEnvelope, holds: ReceiverHolds, now: Date): SafeHtml {
  const owed = owedBy(envelope) === 'delivery';
  const hold = owed ? holds.held.get(envelope.webhook_type) : undefined;
  if (hold) return heldNote(hold, 'redrive', now);
  const until = owed ? holds.waits.get(envelope.webhook_type) : undefined;
  if (until) return waitNote(envelope.webhook_type, until, 'redrive', now);
  return html`delivers it now through statemachine/redelivery.asl.json`;
}

/** `in <age>` until a receiver's Retry-After is over, kept current by the page's script (data-age-until). */
const untilSpan = (until: string, now: Date) =>
  html`<span data-age-until="${until}">in ${age(now.toISOString(), Date.parse(until))}</span>`;

/**
 * "<type> asked for nothing before <time> (in <age>; its Retry-After)", as retryAfterNote (functions/domain/endpoints.ts)
 * says it, the age kept current: a page left open an hour said "in 59m".
 */
const retryAfterSpan = (type: string, until: string, now: Date) =>
  html`${type} asked for nothing before ${until} (${untilSpan(until, now)}; its Retry-After)`;

/**
 * Why a redrive or a resend now attempts nothing: the receiver's Retry-After holds it back too, until its time. A
 * redrive's is explained beside the delivery's state (retryAfterHold); a resend's, here.
 */
function waitNote(type: string, until: string, what: 'redrive' | 'resend', now: Date): SafeHtml {
  const why =
    what === 'redrive'
      ? html`<a href="#retry-after-hold">why, and what to do</a>`
      : html`sure it takes deliveries again sooner? <code>npx webhook-gateway endpoints resume ${type}</code> forgets it`;
  return html`a ${what} is held back too, nothing attempted, until ${until} (${untilSpan(until, now)}; ${type}'s Retry-After: ${why})`;
}

/**
 * A delivery its receiver's Retry-After holds (docs/operations.md, "Retry-After"): that it is held, until when and
 * why, and what the operator can do. Before, the page said only `held: Retry-After, until <time>`, and offered Redrive
 * as "delivers it now", which the receiver's hold then held back too.
 */
function retryAfterHold(type: string, until: string, dead: boolean, now: Date): SafeHtml {
  return html`<p class="note" id="retry-after-hold"><b>Held by its receiver:</b> ${retryAfterSpan(type, until, now)}. It answered 429 or 503 with a <code>Retry-After</code>: nothing of its type is sent before then, this delivery included, and a redrive or resend before then is held back too. ${dead ? 'Dead-lettered, it is not tried again by itself: redrive it once that time is over.' : 'The schedule tries it then by itself: nothing to do.'} Sure that ${type} takes deliveries again sooner? Its Resume now on <a href="/console/endpoints">Endpoints</a> (or <code>npx webhook-gateway endpoints resume ${type}</code>) forgets its Retry-After, then Redrive.</p>`;
}

/** `since <time> (<age> ago)`, the age kept current by the page's script (data-age-of). */
const sinceSpan = (since: string, now: Date) =>
  html`<span data-age-of="${since}">since ${timeAgo(since, now.getTime())}</span>`;

/**
 * Why a redrive or a resend of a held receiver's delivery attempts nothing: the receiver holds it until resumed. Said
 * as heldState says it, `<type> is paused since <time> (<age> ago)`, the age kept current by the page's script.
 */
function heldNote(hold: HeldReceiver, what: 'redrive' | 'resend', now: Date): SafeHtml {
  const since = stateSince(hold);
  const state = since ? html`${hold.webhook_type} is ${hold.status} ${sinceSpan(since, now)}` : heldState(hold, now);
  return html`${state}: a ${what} is held back too, nothing attempted, until it is resumed on the <a href="/console/endpoints">Endpoints</a> page`;
}

function deliverySection(
  id: string,
  record: ConversationRecord | null,
  envelope: FailedDeliveryEnvelope | null,
  executions: ExecutionRecord[],
  holds: ReceiverHolds,
  envelopeUnreadable: string | null,
  now: Date,
): SafeHtml {
  const attempts = record?.execution.delivery_attempts ?? [];
  const tries = record ? conversationFigures(record, executions).tries : attempts.length;
  // An unreadable envelope: neither is offered (the gateway cannot tell whether it is owed).
  const redrivable = envelope !== null && envelope.state !== 'settled';
  const resendable =
    !redrivable && envelopeUnreadable === null && record?.webhook_context.delivery_status === 'delivered';
  const resendHold = resendable ? holds.held.get(record!.webhook_context.webhook_type ?? '') : undefined;
  // What a Retry-After of its receiver holds: a delivery still owed, or a resend of one delivered.
  const heldType =
    (redrivable && owedBy(envelope) === 'delivery') || resendable
      ? (envelope?.webhook_type ?? record?.webhook_context.webhook_type ?? null)
      : null;
  const waitUntil = heldType && !holds.held.has(heldType) ? holds.waits.get(heldType) : undefined;
  const retryAfter = heldType && waitUntil ? { type: heldType, until: waitUntil } : null;
  const state =
    envelopeUnreadable !== null
      ? html`<p class="err" id="envelope-unreadable">Failed-delivery store: ${envelopeUnreadable}. Its redelivery state is not shown, the schedule and redrives leave it out, and it can be neither redriven nor resent until the file is mended or deleted.</p>`
      : envelope === null
        ? ''
        : html`<p class="envelope">Failed-delivery store: ${badge(envelope.state)} ${envelope.owed === 'export' ? html`(owes only its export: S3 refused it) ` : ''}${envelope.state === 'pending' ? html`next automatic attempt <code>${nextAttemptLabel(envelope, holds)}</code>` : ''}${envelope.dead_reason ? html`dead-lettered (${envelope.dead_reason}): no more automatic attempts` : ''}</p>`;
  return html`<section id="delivery">
  <h2>Delivery attempts <span class="count" title="every try, retries in the workflow included">${tries}</span></h2>
  ${tries > attempts.length ? html`<p class="note">${tries - attempts.length} of them were retried by the workflow at once and are counted from the execution history; the table lists the attempts the record keeps.</p>` : ''}
  ${state}
  ${retryAfter && redrivable ? retryAfterHold(retryAfter.type, retryAfter.until, envelope.state === 'dead', now) : ''}
  ${redrivable ? html`<p><button type="button" id="redrive" data-id="${id}">Redrive</button> <small id="redrive-note">${redriveNote(envelope, holds, now)}</small></p>` : ''}
  ${resendable ? html`<p><button type="button" id="resend" data-id="${id}">Resend</button> <small id="resend-note">${resendHold ? heldNote(resendHold, 'resend', now) : retryAfter ? waitNote(retryAfter.type, retryAfter.until, 'resend', now) : html`delivers it once more under the same webhook-id <code>${record!.webhook_context.delivery_id}</code>`}</small></p>` : ''}
  ${
    attempts.length === 0
      ? html`<p class="empty">${record ? 'No delivery attempted.' : 'No record of it is read here: its export documents below have its delivery attempts.'}</p>`
      : html`<table id="attempts" class="cards">${caption(`Delivery attempts of ${id}, oldest first`)}
  <thead><tr><th scope="col" class="num">#</th><th scope="col">at</th><th scope="col">via</th><th scope="col">outcome</th><th scope="col" class="num">HTTP</th><th scope="col" class="num">duration</th><th scope="col">the receiver's answer</th></tr></thead>
  <tbody>${attempts.map((a) => html`<tr class="o-${token(a.outcome)}" data-attempt="${a.attempt}"><td class="num" data-label="#">${a.attempt}</td><td class="time" data-label="at">${a.at}</td><td data-label="via">${a.via ?? 'workflow'}</td><td>${badge(a.outcome)}</td><td class="num" data-label="HTTP">${a.status_code ?? '-'}</td><td class="num" data-label="duration">${ms(a.duration_ms)}</td><td class="answer wide">${answerCell(a)}</td></tr>`)}</tbody>
  </table>`
  }
</section>`;
}

/** Each workflow's executions, as the conversation page titles them. */
const EXECUTION_TITLES: Record<string, string> = {
  conversation: 'Conversation',
  accept: 'Accept (Prefer: respond-async)',
  redelivery: 'Redelivery',
};

function executionSection(execution: ExecutionRecord, index: number): SafeHtml {
  const rows = timeline(execution);
  const t0 = Date.parse(execution.started_at);
  return html`<section class="execution" data-name="${execution.execution_name}" data-machine="${execution.state_machine}">
  <h3>${EXECUTION_TITLES[execution.state_machine] ?? 'Conversation'} execution <code>${execution.execution_name}</code> ${badge(execution.status)} <small>${execution.started_at}</small></h3>
  ${execution.error ? html`<p class="err">${execution.error}: ${preview(execution.cause ?? '', 300)}</p>` : ''}
  ${execution.restart ? html`<p class="note restart">${restartLine(execution.restart)}</p>` : ''}
  <div class="diagram">${workflowSvg(rows, `arrow-${index}`)}</div>
  <table class="timeline cards">${caption(html`States of execution ${execution.execution_name}, in the order entered`)}
    <thead><tr><th scope="col">state</th><th scope="col" class="num">start</th><th scope="col" class="num">duration</th><th scope="col" class="num">retries</th><th scope="col">result</th></tr></thead>
    <tbody>${rows.map((r) => html`<tr class="${stateClass(r)}" data-state="${r.state}"><td>${r.state}</td><td class="num" data-label="start">+${Date.parse(r.started_at) - t0} ms</td><td class="num" data-label="duration">${ms(r.duration_ms)}</td><td class="num" data-label="retries">${r.retries}</td><td class="wide">${badge(r.status)} <span class="err">${r.error ?? ''}</span></td></tr>`)}</tbody>
  </table>
</section>`;
}

function exportsSection(bucket: string, documents: ExportDocumentView[], exportEnabled: boolean): SafeHtml {
  return html`<section id="exports">
  <h2>Export documents</h2>
  ${exportEnabled ? '' : html`<p class="empty">ENABLE_CONVERSATION_EXPORT is false: nothing is exported.</p>`}
  ${documents.map(
    (d, i) => html`<details class="export" data-file="${d.file}" ${i === 0 ? html`open` : ''}>
    <summary><b>${d.file}</b> <code>s3://${bucket}/${d.key}</code>${d.text === null ? html` <span class="badge b-missing">${d.error ? 'unreadable' : 'not exported'}</span>` : ''}</summary>
    ${d.text === null ? html`<p class="err">${d.error ?? 'This document does not exist (yet).'}</p>` : html`<pre class="json">${d.text}</pre>`}
  </details>`,
  )}
</section>`;
}

/** The record the conversation.json export holds, if it was exported and reads as one. */
function exportedRecord(documents: ExportDocumentView[]): ConversationRecord | null {
  const text = documents.find((d) => d.file === 'conversation.json')?.text;
  if (!text) return null;
  try {
    return recordFromExport(JSON.parse(text));
  } catch {
    return null;
  }
}

export function conversationFragment(input: {
  id: string;
  record: ConversationRecord | null;
  executions: ExecutionRecord[];
  envelope: FailedDeliveryEnvelope | null;
  /** Why the conversation's failed-delivery file could not be read (it is not JSON), if it could not. */
  envelopeUnreadable?: string | null;
  documents: ExportDocumentView[];
  bucket: string;
  exportEnabled: boolean;
  /** What holds the receivers' deliveries: an operator until resumed, a Retry-After until over. */
  holds?: ReceiverHolds;
  /** The clock of the held receivers' ages. */
  now?: Date;
  /** Each history of the conversation left out as damaged (not JSON, not a history), said with what to do. */
  damagedHistories?: string[];
}): SafeHtml {
  const damaged = input.damagedHistories ?? [];
  return html`${crumbs()}
${summary(input.id, input.record, input.executions, damaged.length > 0, input.record ? null : exportedRecord(input.documents))}
${deliverySection(input.id, input.record, input.envelope, input.executions, input.holds ?? NO_HOLDS, input.envelopeUnreadable ?? null, input.now ?? new Date())}
<section id="executions"><h2>Timeline <span class="count">${input.executions.length} execution${input.executions.length === 1 ? '' : 's'}</span></h2>
${
  input.record?.execution.status !== 'in_progress'
    ? ''
    : input.executions.some((e) => e.status === 'RUNNING')
      ? html`<p class="note" id="run-under-way">Its run is under way: the execution working on it is shown below as far as it went, and whole once it ends (the page refreshes by itself).</p>`
      : html`<p class="note" id="run-under-way">Its run is under way: the execution working on it is shown here once it ends (the page refreshes by itself). Still in progress long after its agent's timeout (<code>ASYNC_AGENT_TIMEOUT_MS</code>), the run was lost: docs/operations.md, "Asynchronous conversations".</p>`
}
${redeliveryNote(input.executions)}
${damaged.length === 0 ? '' : html`<ul class="errors" id="damaged-histories">${damaged.map((m) => html`<li class="err">Left out: ${m}</li>`)}</ul>`}
${input.executions.map(executionSection)}
</section>
${exportsSection(input.bucket, input.documents, input.exportEnabled)}`;
}

/** A redelivery under way (the schedule's, a redrive or a resend): which, and the state it is in. */
function redeliveryNote(executions: ExecutionRecord[]): SafeHtml | string {
  const name = redeliveryUnderWay(executions);
  const run = executions.find((e) => e.execution_name === name);
  if (!run) return '';
  const state = run.events.findLast((e) => e.type === 'StateEntered')?.state ?? 'starting';
  return html`<p class="note" id="redelivery-under-way">A redelivery is under way: execution <code>${run.execution_name}</code>, in <b>${state}</b> (shown below as far as it went; the page refreshes by itself).</p>`;
}

/**
 * A receiver's last error: whole when short, else its first 60 characters with the rest on demand (a disclosure the
 * keyboard and a screen reader open, not a tooltip only a mouse shows).
 */
function lastErrorCell(v: EndpointView): SafeHtml | string {
  const error = v.last_error ?? '';
  const shown = preview(error, 60);
  if (shown === error) return error;
  return html`<details class="answer" data-receiver-error="${v.webhook_type}"><summary>${shown}</summary><pre class="text">${error}</pre></details>`;
}

/**
 * Since when a receiver is paused (the operator's pause) or disabled (the failure that disabled it), as `endpoints
 * list` says it: `since <time> (<age> ago)`; the page's script keeps the age current (data-age-of). Otherwise, while
 * its last Retry-After holds its deliveries, until when (retryAfterNote).
 */
function stateSinceNote(v: EndpointView, now: Date): SafeHtml | string {
  const since = stateSince(v);
  if (!since && v.retry_after_until)
    return html` <small class="retry-after">${retryAfterSpan(v.webhook_type, v.retry_after_until, now)}: the next send is allowed then</small>`;
  if (!since) return '';
  const what = v.status === 'paused' ? 'when the operator paused it' : 'when the circuit breaker disabled it';
  return html` <small class="time state-since" title="${what}" data-age-of="${since}">since ${timeAgo(since, now.getTime())}</small>`;
}

/**
 * How the receiver's deliveries are signed (never the secrets) and, during a rotation, since when and what ends it,
 * as `endpoints list` says it (rotationNote); the age kept current by the page's script.
 */
function signingCell(v: EndpointView, now: Date): SafeHtml {
  const rotation = rotationNote(v, now);
  if (!rotation) return html`${signingLabel(v)}`;
  const { since } = rotation;
  return since
    ? html`<span class="rotation">two secrets ${sinceSpan(since, now)}: ${rotation.end}</span>`
    : html`<span class="rotation">${rotation.text}</span>`;
}

/**
 * While the receiver's Retry-After holds its deliveries (an active receiver; a paused or disabled one has Resume): a
 * Resume that forgets it now, as `endpoints resume <type>` does (docs/operations.md, "Retry-After"). Its title says what
 * that means: the receiver asked for nothing before then, so only when the operator knows it takes deliveries again.
 */
function releaseButton(v: EndpointView, now: Date): SafeHtml | string {
  if (!v.retry_after_until || Date.parse(v.retry_after_until) <= now.getTime()) return '';
  return html` <button type="button" data-endpoint-action="resume" data-releases="retry-after" data-type="${v.webhook_type}" aria-label="Resume ${v.webhook_type} now, forgetting its Retry-After" title="${v.webhook_type} asked for nothing before ${v.retry_after_until}: Resume forgets that, so its queued deliveries go out when the schedule finds them due and a redrive or resend is sent at once. Only when you know it takes deliveries again: another 429 or 503 holds them again.">Resume now</button>`;
}

/** The recover form's default: a day ago. */
const dayBefore = (now: Date) => new Date(now.getTime() - 86_400_000).toISOString();

/**
 * The Endpoints page: each type's receiver (state, URL, rate, last success, failure streak, queued deliveries) with
 * Pause/Resume, and a "recover failed since" form per type: Plan shows the dry-run count, Recover runs it.
 */
export function endpointsFragment(views: (EndpointView | UnreadableReceiver)[], now: Date): SafeHtml {
  return html`<section id="endpoints">
  <h1>Endpoints <span class="count">${views.length}</span></h1>
  <p><small>Each webhook type's receiver. Changes apply from the next delivery (also: <code>npx webhook-gateway endpoints set &lt;type&gt; --url … --rate …</code>).</small></p>
  <table>${caption("Receivers, one per webhook type, with each one's state and actions")}
  <thead><tr><th scope="col">type</th><th scope="col">state</th><th scope="col" title="how its deliveries are signed: one secret, or two while a rotation is under way">signing</th><th scope="col">url</th><th scope="col">rate</th><th scope="col" title="written at most every 10 s (one write, not one per delivery): a receiver taking deliveries may have had a later one">last success</th><th scope="col" class="num">failure streak</th><th scope="col">failing since</th><th scope="col" class="num" title="deliveries still owed to it: waiting for the schedule, or dead-lettered (no more automatic attempts); Recover below redrives both">queued</th><th scope="col">last error</th><th scope="col">action</th></tr></thead>
  <tbody>${views.map((v) =>
    // A damaged file (docs/operations.md, "After a crash"): the file and what to do, in its row; its state is
    // unknown, so both actions are offered (each refuses with the same message until the file is mended).
    'unreadable' in v
      ? html`<tr data-type="${v.webhook_type}" data-state="unreadable">
    <td class="type">${v.webhook_type}</td><td data-label="state">${badge('unreadable')}</td><td colspan="6" class="err receiver-unreadable">${v.unreadable}</td><td class="num queued" data-label="queued">${v.queued}</td><td></td>
    <td class="action"><button type="button" data-endpoint-action="pause" data-type="${v.webhook_type}" aria-label="Pause ${v.webhook_type}">Pause</button> <button type="button" data-endpoint-action="resume" data-type="${v.webhook_type}" aria-label="Resume ${v.webhook_type}">Resume</button></td>
  </tr>`
      : html`<tr data-type="${v.webhook_type}" data-state="${v.status}">
    <td class="type">${v.webhook_type}</td><td class="state" data-label="state">${badge(v.status)}${stateSinceNote(v, now)}</td><td class="signing" data-label="signing">${signingCell(v, now)}</td><td class="url" data-label="url"><code>${v.url ?? '(none)'}</code>${v.url_source === 'deployed' ? html` <small>deployed</small>` : ''}</td>
    <td data-label="rate">${v.rate_per_second === null ? '-' : `${v.rate_per_second}/s`}</td><td class="time" data-label="last success">${wrappedTime(v.last_success_at)}</td>
    <td class="num" data-label="failure streak">${v.consecutive_failures}</td><td class="time" data-label="failing since">${wrappedTime(v.failing_since)}</td><td class="num queued" data-label="queued">${v.queued ?? '-'}</td>
    <td class="err last-error" data-label="last error">${lastErrorCell(v)}${v.last_failure_at ? html` <small class="time">${wrappedTime(v.last_failure_at)}</small>` : ''}</td>
    <td class="action">${v.status === 'paused' || v.status === 'disabled' ? html`<button type="button" data-endpoint-action="resume" data-type="${v.webhook_type}" aria-label="Resume ${v.webhook_type}">Resume</button>` : html`<button type="button" data-endpoint-action="pause" data-type="${v.webhook_type}" aria-label="Pause ${v.webhook_type}">Pause</button>${releaseButton(v, now)}`} <button type="button" data-test-delivery="${v.webhook_type}" aria-label="Send a test delivery to ${v.webhook_type}" title="one signed test delivery, marked as a test; not retried, kept nowhere">Send test</button></td>
  </tr>`,
  )}</tbody>
  </table>
</section>
<section id="recover">
  <h2>Recover failed deliveries</h2>
  <p><small>Redrive every delivery still owed to a receiver since a time (oldest first). Plan shows how many first; nothing runs until you confirm.</small></p>
  <table>${caption('Recover the failed deliveries of each webhook type since a time')}<thead><tr><th scope="col">type</th><th scope="col">since (ISO 8601)</th><th scope="col">plan</th><th scope="col">recover</th></tr></thead>
  <tbody>${views.map(
    // A form per type (a form cannot hold a table row: the field and Plan name it), so Enter in the field plans.
    (v) => html`<tr data-type="${v.webhook_type}"><td class="type">${v.webhook_type}</td>
    <td class="since"><form id="recover-${v.webhook_type}" data-plan-form="${v.webhook_type}" novalidate></form><input type="text" size="26" name="since" form="recover-${v.webhook_type}" data-type="${v.webhook_type}" value="${dayBefore(now)}" pattern="${ISO_DATE_OR_TIME_PATTERN}" aria-label="since, for ${v.webhook_type}"></td>
    <td><button type="submit" form="recover-${v.webhook_type}" data-plan="${v.webhook_type}" aria-label="Plan ${v.webhook_type}">Plan</button></td>
    <td><button type="button" data-recover="${v.webhook_type}" aria-label="Recover ${v.webhook_type}" hidden>Recover</button></td></tr>`,
  )}</tbody></table>
</section>`;
}

/** A page that could not be built: why, as the error says it. */
export function errorFragment(message: string): SafeHtml {
  return html`${crumbs()}<h1>Error</h1><p class="err" id="page-error">${message}</p><p class="more">The gateway's terminal has the whole error.</p>`;
}

export function notFoundFragment(message: string, heading = 'Not found'): SafeHtml {
  return html`${crumbs()}<h1>${heading}</h1><p class="empty">${message}</p>`;
}
