import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { bindNamedQuery, namedQuery } from '../../functions/domain/named-queries.ts';
import type { AnalyticsEngine } from '../analytics/engine.ts';
import { html, type SafeHtml } from './html.ts';

/**
 * The console's Analytics page: conversations per hour by type, delivery success, and agent / total time
 * percentiles over the last day, from the named queries the CLI and Athena run (hourly-by-type, delivery-success,
 * latency-percentiles) on the local engine. Charts are SVG drawn here, styled by console.css: no script, no external
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

export type Latency = Record<'conversations' | `${'agent' | 'total'}_p${50 | 90 | 99}_ms`, number | null>;

export interface AnalyticsView {
  /** The first hour shown (ISO), 23 hours before the current one. */
  since: string;
  hours: string[];
  hourly: HourlyRow[];
  delivery: DeliveryRow[];
  latency: Latency | null;
  /** Exported conversations in the table, all days. */
  total: number;
  error?: string;
}

const HOUR_MS = 3_600_000;
const TYPES = [...WEBHOOK_TYPES, 'none'] as const;
const STATUSES = ['delivered', 'retrying', 'failed', 'not_attempted'] as const;

/** The 24 hour buckets ending with the current one, as the hourly query labels them. */
export function lastDayHours(now: Date): string[] {
  const current = Math.floor(now.getTime() / HOUR_MS) * HOUR_MS;
  return Array.from(
    { length: 24 },
    (_, i) => `${new Date(current - (23 - i) * HOUR_MS).toISOString().slice(0, 13)}:00:00Z`,
  );
}

async function run<T>(engine: AnalyticsEngine, id: string, since: string): Promise<T[]> {
  const query = namedQuery(id)!;
  return (await engine.query(query.sql, bindNamedQuery(query, { since }, new Date(since)))).rows as T[];
}

/** The page's data: the three named queries over the last day (the engine is opened and closed here). */
export async function analyticsView(open: () => Promise<AnalyticsEngine>, now: Date): Promise<AnalyticsView> {
  const hours = lastDayHours(now);
  const since = new Date(Date.parse(hours[0]!)).toISOString();
  const empty: AnalyticsView = { since, hours, hourly: [], delivery: [], latency: null, total: 0 };
  let engine: AnalyticsEngine;
  try {
    engine = await open();
  } catch (error) {
    return { ...empty, error: (error as Error).message };
  }
  try {
    const [hourly, delivery, latency] = [
      await run<HourlyRow>(engine, 'hourly-by-type', since),
      await run<DeliveryRow>(engine, 'delivery-success', since),
      await run<Latency>(engine, 'latency-percentiles', since),
    ];
    return { since, hours, hourly, delivery, latency: latency[0] ?? null, total: engine.report.rows };
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
  const grid = [0, top / 2, top].map(
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
</figure>`;
}

function percent(part: number, whole: number): string {
  return whole === 0 ? '–' : `${Math.round((part / whole) * 1000) / 10}%`;
}

function deliveryChart(view: AnalyticsView): SafeHtml {
  const count = (type: string | null, status: string | null) =>
    view.delivery
      .filter((r) => (type === null || r.webhook_type === type) && (status === null || r.delivery_status === status))
      .reduce((a, r) => a + r.conversations, 0);
  const attempted = count(null, null) - count(null, 'not_attempted');
  const delivered = count(null, 'delivered');
  const rows = TYPES.filter((t) => count(t, null) > 0).map((type) => {
    const total = count(type, null);
    let offset = 0;
    const parts = STATUSES.flatMap((status) => {
      const n = count(type, status);
      if (n === 0) return [];
      const width = (n / total) * 100;
      const part = html`<rect class="seg s-${status}" data-status="${status}" data-count="${n}" x="${offset.toFixed(2)}%" y="0" width="${width.toFixed(2)}%" height="18"><title>${type} · ${status}: ${n}</title></rect>`;
      offset += width;
      return [part];
    });
    const typeAttempted = total - count(type, 'not_attempted');
    return html`<tr data-type="${type}" data-rate="${percent(count(type, 'delivered'), typeAttempted)}"><th>${type}</th><td class="bar"><svg class="stack" role="img" aria-label="${type} delivery statuses" width="100%" height="18">${parts}</svg></td><td class="num">${percent(count(type, 'delivered'), typeAttempted)}</td><td class="num">${count(type, 'delivered')} / ${typeAttempted}</td></tr>`;
  });
  return html`<figure class="chart" id="chart-delivery" data-rate="${percent(delivered, attempted)}">
  <figcaption>Delivery success <small>(delivered of attempted, last 24 hours)</small></figcaption>
  <p class="big"><b>${percent(delivered, attempted)}</b> delivered <small>${delivered} of ${attempted}${count(null, 'retrying') ? html` · ${count(null, 'retrying')} retrying` : ''}${count(null, 'failed') ? html` · ${count(null, 'failed')} failed` : ''}${count(null, 'not_attempted') ? html` · ${count(null, 'not_attempted')} not attempted (the agent failed)` : ''}</small></p>
  <table class="rates"><tbody>${rows}</tbody></table>
  <ul class="legend">${STATUSES.map((s) => html`<li><span class="swatch s-${s}"></span>${s}</li>`)}</ul>
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
      html`<tr data-series="${v.what}" data-p="${v.p}" data-ms="${v.ms ?? ''}"><th>${v.what} p${v.p}</th><td class="bar"><svg class="stack" role="img" aria-label="${v.what} p${v.p}" width="100%" height="14"><rect class="seg l-${v.what}" x="0" y="0" width="${(((v.ms ?? 0) / top) * 100).toFixed(2)}%" height="14"><title>${v.what} time p${v.p}: ${v.ms ?? '–'} ms</title></rect></svg></td><td class="num">${v.ms === null ? '–' : `${v.ms} ms`}</td></tr>`,
  );
  return html`<figure class="chart" id="chart-latency">
  <figcaption>Agent and total time <small>(p50, p90, p99 of ${l?.conversations ?? 0} conversations, last 24 hours)</small></figcaption>
  <table class="rates"><tbody>${rows}</tbody></table>
</figure>`;
}

export function analyticsFragment(view: AnalyticsView): SafeHtml {
  const lastDay = view.hourly.reduce((a, r) => a + r.conversations, 0);
  const body = view.error
    ? html`<p class="err">The exports could not be read: ${view.error}</p>`
    : lastDay === 0
      ? html`<p class="empty">No exported conversation in the last 24 hours (${view.total} in all). POST one to <code>/webhook</code>; it appears here within a second.</p>`
      : html`${hourlyChart(view)}<div class="charts">${deliveryChart(view)}${latencyChart(view)}</div>`;
  return html`<p class="crumbs"><a href="/console">← all conversations</a></p>
<section id="analytics" data-conversations="${lastDay}">
  <h1>Analytics <span class="count">${lastDay}</span> <small>since ${view.since}</small></h1>
  ${body}
  <p class="more">From the exports, with the named queries <code>hourly-by-type</code>, <code>delivery-success</code> and <code>latency-percentiles</code>: <code>npx webhook-gateway conversations query --named …</code> runs the same here, and with <code>--aws</code> on Athena.</p>
</section>`;
}
