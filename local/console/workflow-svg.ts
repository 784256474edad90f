/**
 * One execution drawn as its states: a box per state entered, in order, joined by arrows. Failed (or failed and
 * caught) states are red and marked ✗, retried ones carry ↻n; the full error is in the box's tooltip.
 */
import type { TimelineRow } from '../history/timeline.ts';
import { html, type SafeHtml } from './html.ts';

const HEIGHT = 64;
const GAP = 30;
const PAD = 8;

const widthOf = (name: string) => Math.max(100, Math.round(name.length * 7.4) + 24);

export function stateClass(row: TimelineRow): string {
  const failed = row.status === 'failed' || row.status === 'caught';
  return ['state', `s-${row.status}`, failed ? 'failed' : '', row.retries > 0 ? 'retried' : '']
    .filter(Boolean)
    .join(' ');
}

function label(row: TimelineRow): string {
  const mark = row.status === 'succeeded' ? '✓' : row.status === 'running' ? '…' : '✗';
  const duration = row.duration_ms === null ? '' : ` ${row.duration_ms} ms`;
  return `${mark}${duration}${row.retries > 0 ? ` ↻${row.retries}` : ''}`;
}

function tooltip(row: TimelineRow): string {
  const parts = [`${row.state}: ${row.status === 'caught' ? 'failed, caught' : row.status}`];
  if (row.duration_ms !== null) parts.push(`${row.duration_ms} ms`);
  if (row.retries > 0) parts.push(`${row.retries} ${row.retries === 1 ? 'retry' : 'retries'}`);
  if (row.error) parts.push(row.error);
  return parts.join(' · ');
}

export function workflowSvg(rows: TimelineRow[], markerId: string): SafeHtml {
  let x = PAD;
  const boxes: SafeHtml[] = [];
  rows.forEach((row, i) => {
    const w = widthOf(row.state);
    if (i > 0) {
      boxes.push(
        html`<line class="arrow" x1="${x - GAP + 2}" y1="${PAD + HEIGHT / 2}" x2="${x - 4}" y2="${PAD + HEIGHT / 2}" marker-end="url(#${markerId})"/>`,
      );
    }
    boxes.push(html`<g class="${stateClass(row)}" data-state="${row.state}" data-status="${row.status}" data-retries="${row.retries}">
      <title>${tooltip(row)}</title>
      <rect x="${x}" y="${PAD}" width="${w}" height="${HEIGHT}" rx="8"/>
      <text class="name" x="${x + w / 2}" y="${PAD + 26}">${row.state}</text>
      <text class="detail" x="${x + w / 2}" y="${PAD + 46}">${label(row)}</text>
    </g>`);
    x += w + GAP;
  });
  const width = Math.max(x - GAP + PAD, 200);
  return html`<svg class="workflow" role="img" aria-label="${rows.map((r) => `${r.state} ${r.status}`).join(', ')}" viewBox="0 0 ${width} ${HEIGHT + 2 * PAD}" width="${width}" height="${HEIGHT + 2 * PAD}" xmlns="http://www.w3.org/2000/svg">
    <defs><marker id="${markerId}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>
    ${boxes}
  </svg>`;
}
