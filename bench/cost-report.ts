/**
 * Section 4 of the bench, also run alone by `npm run bench -- cost`: the cost model (bench/cost.ts) for the default
 * stack and for the lean observability profile (`-c observabilityProfile=lean`), each synthesized in a child process,
 * at the agent latencies of AGENT_LATENCIES_MS; prints the tables and writes bench/results/cost.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  AGENT_LATENCIES_MS,
  type CostResult,
  costPerMillion,
  FALLBACK_FACTS,
  PRICE_TABLE,
  PRICES,
  SCENARIOS,
  type TemplateFacts,
} from './cost.ts';
import type { OverheadResult } from './engine-overhead.ts';
import { BENCH_DIR, RESULTS_DIR, runTs } from './support/processes.ts';
import { formatTable } from './support/table.ts';

export const COST_FILE = path.join(RESULTS_DIR, 'cost.json');
/**
 * The cost targets at agent 2.5 s (docs/performance.md, Current figures), USD per 1 M conversations: the default stack
 * and the lean profile.
 */
const TARGET_USD = { default: 50, lean: 30 };

/**
 * What a target leaves the execution history: everything else is priced first, the rest divided by what one KB of
 * history costs. Printed so that a change to the states shows at once how far it is from the target.
 */
export function historyBudget(full: CostResult, lean: CostResult): string[] {
  const h = full.history;
  const allowedKb = (TARGET_USD.default - h.usd_without_history) / h.usd_per_kb;
  return [
    `   the ≤ $${TARGET_USD.default} target (${full.scenario}): everything but the execution history costs $${h.usd_without_history.toFixed(2)}, ` +
      `so the history may weigh ${allowedKb.toFixed(1)} KB per conversation at $${h.usd_per_kb.toFixed(3)} per KB; ` +
      `it weighs ${h.kb.toFixed(1)} KB in ${h.events} events, ${h.envelope_kb.toFixed(1)} KB of them the events without their data`,
    `   the ≤ $${TARGET_USD.lean} lean target: without any execution history the lean profile would still cost $${lean.history.usd_without_history.toFixed(2)}` +
      ` (its history: ${lean.history.kb.toFixed(1)} KB, $${(lean.total_usd_per_million - lean.history.usd_without_history).toFixed(2)})`,
  ];
}

/** The one context setting of the lean profile (docs/deploy.md). */
export const LEAN_CONTEXT = { observabilityProfile: 'lean' };

/** The facts the cost model reads from the synthesized template, with extra CDK context. */
export async function templateFacts(context: Record<string, unknown> = {}): Promise<TemplateFacts> {
  const outdir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-bench-synth-'));
  try {
    const out = await runTs(path.join(BENCH_DIR, 'support', 'synth-facts.ts'), [outdir, JSON.stringify(context)], {
      timeoutMs: 180_000,
    });
    const line = out.split('\n').find((l) => l.startsWith('{"stack"'));
    if (!line) throw new Error(`no facts in the output:\n${out.slice(0, 2000)}`);
    return { source: 'synthesized', ...(JSON.parse(line) as Omit<TemplateFacts, 'source'>) };
  } catch (error) {
    return { ...FALLBACK_FACTS, error: (error as Error).message.split('\n').slice(0, 6).join('\n') };
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}

export interface CostReport {
  prices: typeof PRICES;
  price_table: typeof PRICE_TABLE;
  template: TemplateFacts;
  lean_template: TemplateFacts;
  scenarios: typeof SCENARIOS;
  /** Default stack: every measured request size × agent latency. */
  results: CostResult[];
  /** Lean profile: the 1 KB request × agent latency. */
  lean_results: CostResult[];
  file: { per_million_usd: Record<string, number>; log_kb_per_conversation: number };
}

const byLatency = (results: CostResult[]) =>
  Object.fromEntries(
    AGENT_LATENCIES_MS.map((ms, i) => [String(ms), results.find((r) => r.scenario === SCENARIOS[i]!.name)!]),
  ) as Record<string, CostResult>;

const summary = (results: CostResult[]) => {
  const at = byLatency(results);
  return {
    per_million_usd: Object.fromEntries(Object.entries(at).map(([ms, r]) => [ms, r.total_usd_per_million])),
    log_kb_per_conversation: Math.round(at['0']!.log_bytes_total / 102.4) / 10,
  };
};

export async function costSection(overhead: OverheadResult[], say: (line: string) => void): Promise<CostReport> {
  const [facts, leanFacts] = await Promise.all([templateFacts(), templateFacts(LEAN_CONTEXT)]);
  for (const f of [facts, leanFacts])
    if (f.source === 'fallback')
      say(`  (synthesis failed, using the facts known when the bench was written: ${f.error?.split('\n')[0]})`);
  const results = overhead.flatMap((o) => SCENARIOS.map((s) => costPerMillion(facts, o, s)));
  const oneKb = overhead.find((o) => o.size === '1KB') ?? overhead[0]!;
  const leanResults = SCENARIOS.map((s) => costPerMillion(leanFacts, oneKb, s));
  const defaultOneKb = results.filter((r) => r.size === oneKb.size);
  const file = summary(defaultOneKb);
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(
    COST_FILE,
    `${JSON.stringify({ ...file, request: oneKb.size, lean_profile: { ...summary(leanResults), context: LEAN_CONTEXT } }, null, 2)}\n`,
  );

  const typical = byLatency(defaultOneKb)['2500']!;
  say(
    `\n4. Cost per 1 M conversations, us-east-1 list prices as of ${PRICES.as_of.slice(0, 7)} (template: ${facts.source}); ${oneKb.size} request, agent 2.5 s, receiver 200 ms`,
  );
  say(
    formatTable(
      ['line', 'per conversation', 'USD / 1 M', 'share'],
      [
        ...[...typical.lines]
          .sort((a, b) => b.usd_per_million - a.usd_per_million)
          .map((l) => [
            l.item,
            l.quantity_per_conversation,
            l.usd_per_million.toFixed(2),
            `${(l.share * 100).toFixed(1)} %`,
          ]),
        ['total', '', typical.total_usd_per_million.toFixed(2), '100 %'],
      ],
    ),
  );
  const row = (profile: string, size: string, rs: CostResult[]) => {
    const at = byLatency(rs);
    return [
      profile,
      size,
      ...AGENT_LATENCIES_MS.map((ms) => at[String(ms)]!.total_usd_per_million.toFixed(2)),
      (Math.round(at['0']!.log_bytes_total / 102.4) / 10).toFixed(1),
    ];
  };
  say(
    formatTable(
      ['profile', 'request', ...AGENT_LATENCIES_MS.map((ms) => `agent ${ms / 1000} s`), 'log KB/conv'],
      [
        ...overhead.map((o) =>
          row(
            'default',
            o.size,
            results.filter((r) => r.size === o.size),
          ),
        ),
        row('lean (observabilityProfile=lean)', oneKb.size, leanResults),
      ],
    ),
  );
  say(
    formatTable(
      [`what would change (${oneKb.size}, agent 2.5 s)`, 'saves USD / 1 M', 'total after'],
      typical.alternatives.map((a) => [a.change, a.usd_per_million_saved.toFixed(2), a.total_after.toFixed(2)]),
    ),
  );
  for (const line of historyBudget(typical, byLatency(leanResults)['2500']!)) say(line);
  say(`   wrote ${path.relative(process.cwd(), COST_FILE)}: ${JSON.stringify(file)}`);
  return {
    prices: PRICES,
    price_table: PRICE_TABLE,
    template: facts,
    lean_template: leanFacts,
    scenarios: SCENARIOS,
    results,
    lean_results: leanResults,
    file,
  };
}
