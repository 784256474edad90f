import { CONVERSATIONS_TABLE } from '../../functions/domain/analytics-table.ts';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { bindNamedQuery, namedQuery, normalizeSince, SINCE_CONDITION } from '../../functions/domain/named-queries.ts';
import type { AnalyticsEngine } from '../analytics/engine.ts';
import { caption, html, type SafeHtml } from './html.ts';

/**
 * The console's Analytics page: conversations per hour by type, delivery success, and agent / total time
 * percentiles over the last day, from the named queries the CLI and Athena run (hourly-by-type, delivery-success,
 * latency-percentiles) on the local engine, and which of the delivery's not_attempted conversations were interrupted
 * (INTERRUPTED_SQL). Charts are SVG drawn here, styled by console.css: no script, no external
 * asset; every value reaches the page through `html` (escaped).
 */
export interface HourlyRow {
  hour: string;
  webhook_type: string;
  conversations: number;
}

export interface DeliveryRow {
  delivery_status: string;
  webhook_type: string;
  conversations: number;
}

/** Conversations interrupted before their agent answered (status interrupted, delivery not_attempted), per type. */
export interface InterruptedRow {
  webhook_type: string;
  conversations: number;
}

/** `conversations` in the window; every percentile is of `conversations_with_both_times` of them (named-queries.ts). */
export type Latency = Record<
  'conversations' | 'conversations_with_both_times' | `${'agent' | 'total'}_p${50 | 90 | 99}_ms`,
  number | null
>;

export interface AnalyticsView {
  /** Where the window starts (ISO): 24 hours before now. */
  since: string;
  /** The hours the window touches, oldest first: 25, the first and the current one in part. */
  hours: string[];
  hourly: HourlyRow[];
  delivery: DeliveryRow[];
  /** Of the delivery rows' not_attempted conversations, those the local gateway stopped in. */
  interrupted: InterruptedRow[];
  latency: Latency | null;
  /**
   * Exported conversations in the table, all days: those of the window's days as they are now, the earlier ones as
   * the last run over every day found them (`conversations query`).
   */
  total: number;
  /** Export documents the engine could not read (not an analysis row: damaged, or being written), and why. */
  skipped: { key: string; reason: string }[];
  error?: string;
}

const HOUR_MS = 3_600_000;
const TYPES = [...WEBHOOK_TYPES, 'none'] as const;

/**
 * The delivery chart's segments, in order: the delivery statuses of the delivery-success query, its not_attempted
 * split into the agent's failures and the conversations the gateway stopped in before the agent answered
 * (docs/operations.md#after-a-crash). `note` says what the segment is, in the legend and the summary line.
 */
const SEGMENTS = [
  { status: 'delivered', label: 'delivered', note: null },
  { status: 'retrying', label: 'retrying', note: 'attempts failed, the schedule goes on' },
  { status: 'failed', label: 'failed', note: 'no automatic attempt follows' },
  { status: 'queued', label: 'queued', note: 'held for the schedule' },
  { status: 'not_attempted', label: 'not attempted', note: 'the agent failed' },
  { status: 'interrupted', label: 'interrupted', note: 'the gateway stopped' },
] as const;
type Segment = (typeof SEGMENTS)[number]['status'];

/**
 * The delivered percentage's denominator: the conversations whose delivery was attempted. Queued ones wait for their
 * first attempt; not_attempted and interrupted ones had nothing to deliver.
 */
const ATTEMPTED: readonly Segment[] = ['delivered', 'retrying', 'failed'];

/**
 * The console's one query of its own, beside the named queries: the conversations the local gateway stopped in
 * before their agent answered, exported as status `interrupted` with delivery `not_attempted`, like an agent failure.
 * Same table, same rows as delivery-success; SQL both engines share.
 */
const INTERRUPTED_SQL = `SELECT coalesce(webhook_type, 'none') AS webhook_type, count(*) AS conversations
FROM ${CONVERSATIONS_TABLE}
WHERE ${SINCE_CONDITION} AND status = 'interrupted' AND delivery_status = 'not_attempted'
GROUP BY 1
ORDER BY 1`;

/** The last 24 hours: from 24 hours before `now` (what every query of the page is given as `since`). */
function lastDaySince(now: Date): string {
  return new Date(now.getTime() - 24 * HOUR_MS).toISOString();
}

/**
 * The hour buckets of the last 24 hours, as the hourly query labels them: from the hour `lastDaySince` falls in to
 * the current one (25 unless `now` is on the hour; the first holds only what came after `since`).
 */
export function lastDayHours(now: Date): string[] {
  const first = Math.floor(Date.parse(lastDaySince(now)) / HOUR_MS) * HOUR_MS;
  const hours: string[] = [];
  for (let h = first; h <= now.getTime(); h += HOUR_MS) hours.push(`${new Date(h).toISOString().slice(0, 13)}:00:00Z`);
  return hours;
}

async function select<T>(engine: AnalyticsEngine, sql: string, params: string[]): Promise<T[]> {
  return (await engine.query(sql, params)).rows as T[];
}

async function run<T>(engine: AnalyticsEngine, id: string, since: string): Promise<T[]> {
  const query = namedQuery(id)!;
  return select<T>(engine, query.sql, bindNamedQuery(query, { since }, new Date(since)));
}

/** The page's data: the three named queries and INTERRUPTED_SQL over the last day (the engine is opened and closed here). */
export async function analyticsView(
  open: (fromDay?: string | null) => Promise<AnalyticsEngine>,
  now: Date,
): Promise<AnalyticsView> {
  const hours = lastDayHours(now);
  const since = lastDaySince(now);
  const empty: AnalyticsView = {
    since,
    hours,
    hourly: [],
    delivery: [],
    interrupted: [],
    latency: null,
    total: 0,
    skipped: [],
  };
  let engine: AnalyticsEngine;
  try {
    // Only the day folders of the last 24 hours are listed and read (every export was: 22.8 s at 54,000).
    engine = await open(since.slice(0, 10).replaceAll('-', '/'));
  } catch (error) {
    return { ...empty, error: (error as Error).message };
  }
  try {
    const [hourly, delivery, interrupted, latency] = [
      await run<HourlyRow>(engine, 'hourly-by-type', since),
      await run<DeliveryRow>(engine, 'delivery-success', since),
      await select<InterruptedRow>(engine, INTERRUPTED_SQL, [normalizeSince(since), normalizeSince(since)]),
      await run<Latency>(engine, 'latency-percentiles', since),
    ];
    return {
      since,
      hours,
      hourly,
      delivery,
      interrupted,
      latency: latency[0] ?? null,
      total: engine.report.rows,
      skipped: engine.report.skipped,
    };
  } catch (error) {
    return { ...empty, error: (error as Error).message };
  } finally {
    engine.close();
  }
}

/** A round upper bound for an axis: 1, 2, 5, 10, 20, 50, … at least `max`. */
export function niceMax(max: number): number {
  if (max <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * power).find((v) => v >= max)!;
}

const W = 760;
const H = 240;
const LEFT = 40;
const BOTTOM = 28;
const TOP = 12;

function hourlyChart(view: AnalyticsView): SafeHtml {
  const byHour = new Map<string, Map<string, number>>();
  for (const r of view.hourly) {
    const hour = byHour.get(r.hour) ?? new Map<string, number>();
    hour.set(r.webhook_type, (hour.get(r.webhook_type) ?? 0) + r.conversations);
    byHour.set(r.hour, hour);
  }
  const totals = view.hours.map((h) => [...(byHour.get(h)?.values() ?? [])].reduce((a, b) => a + b, 0));
  const top = niceMax(Math.max(0, ...totals));
  const plotW = W - LEFT - 8;
  const plotH = H - TOP - BOTTOM;
  const step = plotW / view.hours.length;
  const barW = Math.max(4, step * 0.7);
  const y = (v: number) => TOP + plotH - (v / top) * plotH;
  const bars = view.hours.map((hour, i) => {
    const x = LEFT + i * step + (step - barW) / 2;
    let base = 0;
    const segments = TYPES.flatMap((type) => {
      const n = byHour.get(hour)?.get(type) ?? 0;
      if (n === 0) return [];
      const segment = html`<rect class="seg t-${type}" data-hour="${hour}" data-type="${type}" data-count="${n}" x="${x.toFixed(1)}" y="${y(base + n).toFixed(1)}" width="${barW.toFixed(1)}" height="${(y(base) - y(base + n)).toFixed(1)}"><title>${hour.slice(11, 16)} UTC · ${type}: ${n}</title></rect>`;
      base += n;
      return [segment];
    });
    const label =
      i % 3 === 0
        ? html`<text class="tick" x="${(x + barW / 2).toFixed(1)}" y="${H - 10}">${hour.slice(11, 16)}</text>`
        : '';
    return html`<g class="hour" data-hour="${hour}" data-total="${totals[i]}">${segments}${label}</g>`;
  });
  // Counts of conversations: no tick at half of 1 or of 5.
  const grid = [0, top / 2, top]
    .filter(Number.isInteger)
    .map(
      (v) =>
        html`<line class="grid" x1="${LEFT}" x2="${W - 8}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/><text class="tick y" x="${LEFT - 6}" y="${(y(v) + 4).toFixed(1)}">${v}</text>`,
    );
  const legendCounts = TYPES.map(
    (type) =>
      [type, view.hourly.filter((r) => r.webhook_type === type).reduce((a, r) => a + r.conversations, 0)] as const,
  );
  return html`<figure class="chart" id="chart-hourly">
  <figcaption>Conversations per hour by type <small>(UTC, last 24 hours)</small></figcaption>
  <svg class="bars" role="img" aria-label="conversations per hour by type" viewBox="0 0 ${W} ${H}" xmlns="http://www.w3.org/2000/svg">${grid}${bars}</svg>
  <ul class="legend">${legendCounts.map(([type, n]) => html`<li data-type="${type}"><span class="swatch t-${type}"></span>${type} <b>${n}</b></li>`)}</ul>
  ${hourTable(view, byHour, totals)}
</figure>`;
}

/**
 * The chart's counts as a table, the hours that had a conversation: what a bar says only to a pointer hovering it
 * (its title), read from the keyboard or a screen reader too (the chart is one image to them).
 */
function hourTable(view: AnalyticsView, byHour: Map<string, Map<string, number>>, totals: number[]): SafeHtml {
  const rows = view.hours.flatMap((hour, i) =>
    totals[i] === 0
      ? []
      : [
          html`<tr data-hour="${hour}"><th scope="row">${hour.slice(0, 10)} ${hour.slice(11, 16)}</th>${TYPES.map((type) => html`<td class="num">${byHour.get(hour)?.get(type) ?? 0}</td>`)}<td class="num">${totals[i]}</td></tr>`,
        ],
  );
  return html`<details class="per-hour" data-keep="per-hour"><summary>Per hour, as a table</summary>
  <div class="scroll"><table>${caption('Conversations per hour by type (UTC), the hours that had one')}<thead><tr><th scope="col">hour (UTC)</th>${TYPES.map((type) => html`<th scope="col" class="num">${type}</th>`)}<th scope="col" class="num">total</th></tr></thead>
  <tbody>${rows}</tbody></table></div></details>`;
}

function percent(part: number, whole: number): string {
  return whole === 0 ? '–' : `${Math.round((part / whole) * 1000) / 10}%`;
}

function deliveryChart(view: AnalyticsView): SafeHtml {
  const sum = <R extends { webhook_type: string; conversations: number }>(rows: R[], type: string | null) =>
    rows.filter((r) => type === null || r.webhook_type === type).reduce((a, r) => a + r.conversations, 0);
  const byStatus = (status: string) => view.delivery.filter((r) => r.delivery_status === status);
  const count = (type: string | null, segment: Segment): number => {
    const interrupted = Math.min(sum(view.interrupted, type), sum(byStatus('not_attempted'), type));
    if (segment === 'interrupted') return interrupted;
    if (segment === 'not_attempted') return sum(byStatus('not_attempted'), type) - interrupted;
    return sum(byStatus(segment), type);
  };
  const attemptedOf = (type: string | null) => ATTEMPTED.reduce((a, s) => a + count(type, s), 0);
  const attempted = attemptedOf(null);
  const delivered = count(null, 'delivered');
  const rows = TYPES.filter((t) => sum(view.delivery, t) > 0).map((type) => {
    const total = sum(view.delivery, type);
    let offset = 0;
    const shown = SEGMENTS.map((s) => ({ ...s, n: count(type, s.status) })).filter((s) => s.n > 0);
    const parts = shown.map(({ status, label, n }) => {
      const width = (n / total) * 100;
      const part = html`<rect class="seg s-${status}" data-status="${status}" data-count="${n}" x="${offset.toFixed(2)}%" y="0" width="${width.toFixed(2)}%" height="18"><title>${type} · ${label}: ${n}</title></rect>`;
      offset += width;
      return part;
    });
    const summary = shown.map(({ label, n }) => `${n} ${label}`).join(', ');
    const typeAttempted = attemptedOf(type);
    const rate = percent(count(type, 'delivered'), typeAttempted);
    return html`<tr data-type="${type}" data-rate="${rate}"><th scope="row">${type}</th><td class="bar"><svg class="stack" role="img" aria-label="${type}: ${summary}" width="100%" height="18">${parts}</svg></td><td class="num">${rate}</td><td class="num">${count(type, 'delivered')} / ${typeAttempted}</td></tr>`;
  });
  // Beside "N of M": the attempted ones still owed, then those outside M and why.
  const besides = SEGMENTS.filter((s) => s.status !== 'delivered' && count(null, s.status) > 0).map(
    ({ status, label, note }) =>
      html` · ${count(null, status)} ${label}${ATTEMPTED.includes(status) ? '' : html` (${note})`}`,
  );
  return html`<figure class="chart" id="chart-delivery" data-rate="${percent(delivered, attempted)}">
  <figcaption>Delivery success <small>(delivered of attempted: delivered, retrying or failed; last 24 hours)</small></figcaption>
  <p class="big"><b>${percent(delivered, attempted)}</b> delivered <small>${delivered} of ${attempted}${besides}</small></p>
  <table class="rates">${caption('Delivery success per webhook type: delivered of attempted')}<tbody>${rows}</tbody></table>
  <ul class="legend">${SEGMENTS.map(({ status, label, note }) => html`<li data-status="${status}"><span class="swatch s-${status}"></span>${label}${note ? `: ${note}` : ''} <b>${count(null, status)}</b></li>`)}</ul>
</figure>`;
}

function latencyChart(view: AnalyticsView): SafeHtml {
  const l = view.latency;
  const values = (['agent', 'total'] as const).flatMap((what) =>
    ([50, 90, 99] as const).map((p) => ({ what, p, ms: l?.[`${what}_p${p}_ms`] ?? null })),
  );
  const top = niceMax(Math.max(1, ...values.map((v) => v.ms ?? 0)));
  const rows = values.map(
    (v) =>
      html`<tr data-series="${v.what}" data-p="${v.p}" data-ms="${v.ms ?? ''}"><th scope="row">${v.what} p${v.p}</th><td class="bar"><svg class="stack" role="img" aria-label="${v.what} p${v.p}" width="100%" height="14"><rect class="seg l-${v.what}" x="0" y="0" width="${(((v.ms ?? 0) / top) * 100).toFixed(2)}%" height="14"><title>${v.what} time p${v.p}: ${v.ms ?? '–'} ms</title></rect></svg></td><td class="num">${v.ms === null ? '–' : `${v.ms} ms`}</td></tr>`,
  );
  return html`<figure class="chart" id="chart-latency">
  <figcaption>Agent and total time <small>(p50, p90, p99 of the ${l?.conversations_with_both_times ?? 0} of ${l?.conversations ?? 0} conversations with both times, last 24 hours)</small></figcaption>
  <table class="rates">${caption('Agent and total time, p50, p90 and p99')}<tbody>${rows}</tbody></table>
</figure>`;
}

/** `exportEnabled`: ENABLE_CONVERSATION_EXPORT; when false, no conversation of this gateway reaches the charts. */
export function analyticsFragment(view: AnalyticsView, exportEnabled = true): SafeHtml {
  const lastDay = view.hourly.reduce((a, r) => a + r.conversations, 0);
  const body = view.error
    ? html`<p class="err">The exports could not be read: ${view.error}</p>`
    : lastDay === 0
      ? html`<p class="empty">No exported conversation in the last 24 hours (${view.total} in all).${exportEnabled ? html` POST one to <code>/webhook</code>; it appears here within a second.` : ''}</p>`
      : html`${hourlyChart(view)}<div class="charts">${deliveryChart(view)}${latencyChart(view)}</div>`;
  return html`<p class="crumbs"><a href="/console">← all conversations</a></p>
<section id="analytics" data-conversations="${lastDay}">
  <h1>Analytics <span class="count">${lastDay}</span> <small>since ${view.since}</small></h1>
  ${view.skipped.length === 0 ? '' : html`<p class="err" id="skipped-exports">Not charted: ${view.skipped.length} export document${view.skipped.length === 1 ? '' : 's'} that could not be read (one being written is read again at the next view): ${view.skipped.slice(0, 10).map(({ key, reason }, i) => html`${i > 0 ? '; ' : ''}<code>${key}</code> (${reason})`)}${view.skipped.length > 10 ? ' …' : ''}.</p>`}
  ${exportEnabled ? '' : html`<p class="note" id="exports-off">ENABLE_CONVERSATION_EXPORT is false: this gateway exports no conversation, so none it runs is charted here (nor in <code>conversations query</code>); the Conversations page lists them.</p>`}
  ${body}
  <p class="more">From the exports, with the named queries <code>hourly-by-type</code>, <code>delivery-success</code> and <code>latency-percentiles</code>: <code>npx webhook-gateway conversations query --named …</code> runs the same here, and with <code>--aws</code> on Athena. Interrupted: the not_attempted conversations of status <code>interrupted</code> (the gateway stopped before the agent answered; <code>conversations list --status interrupted</code> lists every interrupted one).</p>
</section>`;
}
