import { describe, expect, it } from 'vitest';
import { type AnalyticsView, analyticsFragment, lastDayHours } from '../../../local/console/analytics.ts';

/** The hourly chart as the Analytics page renders it, from a view made here (no exports read). */
const NOW = new Date('2026-12-03T12:34:56Z');
function chart(hourly: AnalyticsView['hourly']): string {
  const view: AnalyticsView = {
    since: '2026-12-02T12:34:56.000Z',
    hours: lastDayHours(NOW),
    hourly,
    delivery: [],
    interrupted: [],
    latency: null,
    total: hourly.reduce((a, r) => a + r.conversations, 0),
    skipped: [],
  };
  return /<figure class="chart" id="chart-hourly">[\s\S]*?<\/figure>/.exec(analyticsFragment(view).value)?.[0] ?? '';
}
const yTicks = (svg: string) => [...svg.matchAll(/<text class="tick y"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);

describe('the Analytics page’s conversations per hour', () => {
  it('marks its count axis in whole conversations only', () => {
    // Before: 0, 0.5, 1 for a busiest hour of one conversation, and 0, 2.5, 5 for one of three.
    expect(yTicks(chart([{ hour: '2026-12-03T12:00:00Z', webhook_type: 'general', conversations: 1 }]))).toEqual([
      '0',
      '1',
    ]);
    expect(yTicks(chart([{ hour: '2026-12-03T12:00:00Z', webhook_type: 'general', conversations: 3 }]))).toEqual([
      '0',
      '5',
    ]);
    expect(yTicks(chart([{ hour: '2026-12-03T12:00:00Z', webhook_type: 'general', conversations: 7 }]))).toEqual([
      '0',
      '5',
      '10',
    ]);
  });

  it('gives its counts as a table too, the hours that had a conversation, for the keyboard and a screen reader', () => {
    // Before: only a bar's title, shown to a pointer hovering it.
    const figure = chart([
      { hour: '2026-12-03T09:00:00Z', webhook_type: 'deal_analysis', conversations: 2 },
      { hour: '2026-12-03T09:00:00Z', webhook_type: 'none', conversations: 1 },
      { hour: '2026-12-03T12:00:00Z', webhook_type: 'general', conversations: 4 },
    ]);
    const table = /<details class="per-hour"[\s\S]*?<\/details>/.exec(figure)?.[0] ?? '';
    expect(table).toContain('<summary>Per hour, as a table</summary>');
    const cells = (row: string) => [...row.matchAll(/<t[hd][^>]*>([^<]*)<\/t[hd]>/g)].map((m) => m[1]);
    const rows = [...table.matchAll(/<tr[^>]*>[\s\S]*?<\/tr>/g)].map((m) => cells(m[0]));
    expect(rows).toEqual([
      ['hour (UTC)', 'deal_analysis', 'data_analysis', 'lead_analysis', 'general', 'none', 'total'],
      ['2026-12-03 09:00', '2', '0', '0', '0', '1', '3'],
      ['2026-12-03 12:00', '0', '0', '0', '4', '0', '4'],
    ]);
  });
});
