import { describe, expect, it } from 'vitest';
import { classify, KEYWORDS } from '../../../functions/domain/classifier.ts';
import { WEBHOOK_TYPES } from '../../../functions/domain/conversation.ts';

describe('classify: from the query', () => {
  it.each([
    ['deal_analysis', 'What are the top 5 deals closing this quarter?', ['deals', 'closing']],
    ['lead_analysis', 'Which inbound leads should sales call first?', ['leads', 'inbound']],
    ['data_analysis', 'Show me the churn trend on the KPI dashboard', ['churn', 'trend', 'kpi', 'dashboard']],
  ] as const)('reaches %s and names the keywords in the reason', (type, query, words) => {
    const result = classify(query, '');
    expect(result.webhook_type).toBe(type);
    for (const w of words) expect(result.reason).toContain(`query:"${w}"`);
    expect(result.reason).toContain(`scored ${type} ${words.length * 2}`);
    expect(result.scores[type]).toBe(words.length * 2);
  });

  it('reaches general when no keyword appears anywhere, and says so', () => {
    const result = classify('Hello, how are you today?', 'I am fine, thank you.');
    expect(result.webhook_type).toBe('general');
    expect(result.reason).toBe('no deal, lead or data keywords in the query or the answer');
    expect(result.scores).toEqual({ deal_analysis: 0, lead_analysis: 0, data_analysis: 0, general: 0 });
  });

  it('reaches general for empty text', () => {
    expect(classify('', '').webhook_type).toBe('general');
  });

  it('every type is reachable', () => {
    const reached = new Set([
      classify('pipeline review', '').webhook_type,
      classify('prospects list', '').webhook_type,
      classify('monthly metrics', '').webhook_type,
      classify('tell me a joke', '').webhook_type,
    ]);
    expect([...reached].sort()).toEqual([...WEBHOOK_TYPES].sort());
  });
});

describe('classify: scoring', () => {
  it('counts keywords found only in the answer', () => {
    const result = classify(
      'Can you help me with this?',
      'Your pipeline has 12 opportunities and the forecast looks good.',
    );
    expect(result.webhook_type).toBe('deal_analysis');
    expect(result.scores.deal_analysis).toBe(3);
    expect(result.reason).toContain('answer:"pipeline"');
    expect(result.reason).toContain('answer:"opportunities"');
    expect(result.reason).toContain('answer:"forecast"');
    expect(result.reason).not.toContain('query:');
  });

  it('weighs a query hit 2 and an answer hit 1', () => {
    const result = classify('lead', 'data report');
    expect(result.scores).toMatchObject({ lead_analysis: 2, data_analysis: 2 });
    // 2 vs 2: lead wins the tie over data
    expect(result.webhook_type).toBe('lead_analysis');
    const more = classify('lead', 'data report metrics');
    expect(more.scores.data_analysis).toBe(3);
    expect(more.webhook_type).toBe('data_analysis');
  });

  it('breaks ties in the order deal, lead, data', () => {
    expect(classify('deal lead data', '').webhook_type).toBe('deal_analysis');
    expect(classify('lead data', '').webhook_type).toBe('lead_analysis');
    expect(classify('data deal', '').webhook_type).toBe('deal_analysis');
  });

  it('reports the other types’ scores in the reason', () => {
    const result = classify('deals and leads', 'metrics');
    expect(result.webhook_type).toBe('deal_analysis');
    expect(result.reason).toContain('(lead_analysis 2, data_analysis 1)');
  });

  it('matches whole words only, case-insensitively, across punctuation', () => {
    expect(classify('idealistic misleading database', '').webhook_type).toBe('general');
    expect(classify('DEALS!!!', '').webhook_type).toBe('deal_analysis');
    expect(classify('(MQLs), please', '').webhook_type).toBe('lead_analysis');
  });

  it('matches multi-word keywords', () => {
    const result = classify("What's our win rate and close-date slippage?", '');
    expect(result.webhook_type).toBe('deal_analysis');
    expect(result.reason).toContain('query:"win rate"');
    expect(result.reason).toContain('query:"close date"');
  });

  it('uses only keywords from the published lists', () => {
    for (const [type, words] of Object.entries(KEYWORDS)) {
      for (const w of words) expect(classify(w, '').webhook_type).toBe(type);
    }
  });
});

describe('classify: explicit requested type', () => {
  it.each(WEBHOOK_TYPES)('the requested type %s wins over the keywords', (requested) => {
    const result = classify('top deals in the pipeline', 'deals deals deals', requested);
    expect(result.webhook_type).toBe(requested);
    expect(result.reason).toBe(`the request asked for webhook_type ${requested}`);
    // scores are still computed for the record
    expect(result.scores.deal_analysis).toBeGreaterThan(0);
  });

  it.each([null, undefined])('a %s request falls back to the keywords', (requested) => {
    expect(classify('top deals', '', requested).webhook_type).toBe('deal_analysis');
  });
});
