/**
 * Decides which outbound webhook an answer goes to, and says why.
 * An explicit `webhook_type` in the request wins. Otherwise keywords are scored: a hit in the query counts 2,
 * a hit in the agent's answer counts 1; the highest score wins (ties in the order deal, lead, data);
 * with no hit at all the answer is `general`.
 */
import type { WebhookType } from './conversation.ts';

export const KEYWORDS: Record<Exclude<WebhookType, 'general'>, readonly string[]> = {
  deal_analysis: [
    'deal',
    'deals',
    'pipeline',
    'opportunity',
    'opportunities',
    'closing',
    'close date',
    'win rate',
    'forecast',
    'quota',
    'booking',
    'bookings',
  ],
  lead_analysis: [
    'lead',
    'leads',
    'prospect',
    'prospects',
    'mql',
    'mqls',
    'sql',
    'sqls',
    'lead score',
    'inbound',
    'nurture',
    'conversion',
  ],
  data_analysis: [
    'data',
    'metric',
    'metrics',
    'report',
    'reports',
    'trend',
    'trends',
    'dashboard',
    'analytics',
    'kpi',
    'kpis',
    'churn',
    'average',
    'breakdown',
  ],
};
const ORDER = ['deal_analysis', 'lead_analysis', 'data_analysis'] as const;

export interface Classification {
  webhook_type: WebhookType;
  reason: string;
  scores: Record<WebhookType, number>;
}

/** The text as keywords are looked up in: lower case, every run of other characters one space, a space each end. */
const asWords = (text: string): string => ` ${text.toLowerCase().replace(/[^a-z0-9]+/g, ' ')} `;

/** The keywords in a text made into words (asWords). */
function hits(lower: string, words: readonly string[]): string[] {
  return words.filter((w) => lower.includes(` ${w} `));
}

export function classify(query: string, answer: string, requested?: WebhookType | null): Classification {
  const scores: Record<WebhookType, number> = { deal_analysis: 0, lead_analysis: 0, data_analysis: 0, general: 0 };
  const evidence: Record<string, string[]> = {};
  // Each text made into words once, not once per type (three times each: docs/performance.md §2, perf25).
  const queryWords = asWords(query);
  const answerWords = asWords(answer);
  for (const type of ORDER) {
    const inQuery = hits(queryWords, KEYWORDS[type]);
    const inAnswer = hits(answerWords, KEYWORDS[type]);
    scores[type] = inQuery.length * 2 + inAnswer.length;
    evidence[type] = [...inQuery.map((w) => `query:"${w}"`), ...inAnswer.map((w) => `answer:"${w}"`)];
  }
  if (requested) {
    return { webhook_type: requested, reason: `the request asked for webhook_type ${requested}`, scores };
  }
  let best: WebhookType = 'general';
  for (const type of ORDER) if (scores[type] > (best === 'general' ? 0 : scores[best])) best = type;
  if (best === 'general') {
    return { webhook_type: 'general', reason: 'no deal, lead or data keywords in the query or the answer', scores };
  }
  const others = ORDER.filter((t) => t !== best)
    .map((t) => `${t} ${scores[t]}`)
    .join(', ');
  return {
    webhook_type: best,
    reason: `keywords ${evidence[best]!.join(', ')} scored ${best} ${scores[best]} (${others})`,
    scores,
  };
}
