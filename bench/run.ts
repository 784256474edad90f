/**
 * `npm run bench`: the performance figures of docs/performance.md, in one run, written to bench/results/latest.json with a
 * summary table on stdout. `npm run bench -- cost` runs only the cost model (bench/results/cost.json),
 * `npm run bench -- bundles` only the bundles and their cold init, `npm run bench -- gateway` only section 2
 * (bench/gateway-report.ts). Sections: 1 engine overhead, 2 gateway throughput/latency (+ CPU profile), 3 Lambda
 * bundles, 4 cost per 1 M conversations, 5 scaling with request size and concurrency, 6 SQL over the exports (search
 * and the named queries at 10,000 conversations; Athena bytes for 1 M).
 * Everything listens on 127.0.0.1 port 0. Takes about 3-4 minutes on 2 cores. docs/performance.md explains it.
 */
import '../local/node-warnings.ts';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import path from 'node:path';
import { ANALYTICS_TARGET_MS, measureAnalytics } from './analytics.ts';
import { measureBundles } from './bundles.ts';
import { EXPRESS_LOG_ITEM, SCENARIOS } from './cost.ts';
import { costSection } from './cost-report.ts';
import { measureEngineOverhead } from './engine-overhead.ts';
import { GATEWAY_TARGET, gatewaySection, printGatewaySummary } from './gateway-report.ts';
import { argsOrExit, BENCH_USAGE, parseBenchArgs } from './support/args.ts';
import { RESULTS_DIR } from './support/processes.ts';
import type { RequestSizeName } from './support/requests.ts';
import { formatTable, sectionHeader, verdict } from './support/table.ts';

const args = argsOrExit(() => parseBenchArgs(process.argv.slice(2)), BENCH_USAGE);
const QUICK = args.quick;
/** Sections named on the command line (`npm run bench -- cost`): only those run. None: the whole bench. */
const selected = args.sections;
const LOAD_SECONDS = QUICK ? 2 : 5;
const CONCURRENCY = [1, 4, 8, 32];
const SIZES: RequestSizeName[] = ['1KB', '64KB', '250KB'];
const SIZE_CONCURRENCY = 8;
const TARGETS = {
  engine_overhead_median_ms: 2,
  gateway_conversations_per_s: GATEWAY_TARGET.conversations_per_s,
  gateway_p99_ms: GATEWAY_TARGET.p99_ms,
  gateway_connections: GATEWAY_TARGET.connections,
};
/** Section 2's load levels: 1 KB at each concurrency, the larger requests at SIZE_CONCURRENCY. */
const GATEWAY_LEVELS = [
  ...CONCURRENCY.map((connections) => ({ size: '1KB' as const, connections })),
  ...SIZES.filter((s) => s !== '1KB').map((size) => ({ size, connections: SIZE_CONCURRENCY })),
];
/** Conversations the SQL section exports, then searches and queries (the issue's 10,000). */
const ANALYTICS_CONVERSATIONS = QUICK ? 2_000 : 10_000;
/** Export files the listing section stores and lists (≥ 10,000: ten pages and more). */
const LISTING_OBJECTS = QUICK ? 2_000 : 12_000;

const started = Date.now();
const transcript: string[] = [];
const say = (line: string) => {
  transcript.push(line);
  process.stdout.write(`${line}\n`);
};
const elapsed = () => `${Math.round((Date.now() - started) / 1000)} s`;
/** A section's header, with how far into the run it starts. */
const header = (title: string) => sectionHeader(title, started, Date.now());

function machine() {
  return {
    date: new Date().toISOString(),
    nproc: availableParallelism(),
    cpu_model: cpus()[0]?.model ?? 'unknown',
    memory_gb: Math.round(totalmem() / 1024 ** 3),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadavg_at_start: loadavg().map((v) => Math.round(v * 100) / 100),
  };
}

async function main(): Promise<void> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const info = machine();
  say(
    `webhook-gateway bench — ${info.date} — ${info.nproc} cores (${info.cpu_model}), node ${info.node}, load average ${info.loadavg_at_start.join(' ')}`,
  );

  // 1. Engine overhead.
  say(header(`[1/6] engine overhead (LocalWorkflow vs plain chaining, in process)`));
  const overhead = await measureEngineOverhead(
    { sizes: SIZES, iterations: QUICK ? 200 : 1000, warmup: QUICK ? 50 : 200 },
    say,
  );

  // 2. Gateway under load.
  say(
    header(`[2/6] gateway under load (npm start server + autocannon in a second process, ${LOAD_SECONDS} s per level)`),
  );
  const gatewayResult = await gatewaySection(
    { levels: GATEWAY_LEVELS, loadSeconds: LOAD_SECONDS, listingObjects: LISTING_OBJECTS },
    say,
  );
  const gateway = gatewayResult.npm_start;

  // 3. Bundles.
  say(
    header(
      `[3/6] Lambda bundles (built as the stack builds them, infra/stage-bundle.ts; cold init in fresh node processes)`,
    ),
  );
  const bundles = await measureBundles({ runs: QUICK ? 5 : 15 }, say);

  // 4. Cost.
  say(header(`[4/6] cost per 1 M conversations (template synthesized in a child process)`));
  const cost = await costSection(overhead, say);
  const costs = cost.results;

  // SQL over the exports.
  say(
    header(
      `[5/6] SQL over the exports (${ANALYTICS_CONVERSATIONS.toLocaleString('en')} conversations on DuckDB; Athena bytes for 1 M)`,
    ),
  );
  const analytics = await measureAnalytics(ANALYTICS_CONVERSATIONS, say);

  // 5. Scaling (assembled from the above).
  const sizeRow = (size: RequestSizeName) => {
    const o = overhead.find((r) => r.size === size)!;
    const g = gateway.levels.find((l) => l.size === size && l.connections === SIZE_CONCURRENCY)!;
    const c = costs.find((r) => r.size === size && r.scenario === SCENARIOS[0]!.name)!;
    return {
      size,
      request_bytes: o.request_bytes,
      engine_median_ms: o.engine.median,
      plain_median_ms: o.plain.median,
      engine_overhead_median_ms: o.overhead_median_ms,
      gateway_conversations_per_s_c8: g.conversations_per_s,
      gateway_p99_ms_c8: g.latency_ms.p99,
      gateway_cpu_ms_per_conversation: g.gateway_cpu_ms_per_conversation,
      s3_put_bytes: o.per_conversation.s3_put_bytes,
      express_log_kb_estimate: Math.round(c.log_bytes[EXPRESS_LOG_ITEM]! / 102.4) / 10,
      cost_usd_per_million: c.total_usd_per_million,
    };
  };
  const scaling = {
    by_request_size: SIZES.map(sizeRow),
    by_concurrency: gateway.levels
      .filter((l) => l.size === '1KB')
      .map((l) => ({
        connections: l.connections,
        conversations_per_s: l.conversations_per_s,
        p50_ms: l.latency_ms.p50,
        p99_ms: l.latency_ms.p99,
        gateway_cpu_ms_per_conversation: l.gateway_cpu_ms_per_conversation,
        all_processes_cpu_ms_per_conversation: l.cpu_ms_per_conversation.total,
        cores_busy: l.cores_busy,
      })),
  };

  const o1 = overhead.find((r) => r.size === '1KB')!;
  const result = {
    issue: 7,
    machine: {
      ...info,
      loadavg_at_end: loadavg().map((v) => Math.round(v * 100) / 100),
      duration_s: Math.round((Date.now() - started) / 1000),
    },
    targets: TARGETS,
    engine_overhead: {
      method:
        'same five handlers, (a) LocalWorkflow on statemachine/conversation.asl.json, (b) chained in plain code; one conversation at a time, (a)/(b) alternating; instant in-process agent stub, in-memory S3 stub, instant loopback HTTP receiver',
      results: overhead,
      target_met: o1.overhead_median_ms <= TARGETS.engine_overhead_median_ms,
    },
    gateway: gatewayResult,
    bundles,
    cost,
    scaling,
    analytics,
  };
  await writeFile(path.join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);

  // Summary.
  say(`\n[6/6] summary (${elapsed()}; load average ${result.machine.loadavg_at_end.join(' ')})\n`);
  say('1. Engine overhead per conversation (ms)');
  say(
    formatTable(
      [
        'size',
        'engine p50',
        'engine p99',
        'plain p50',
        'plain p99',
        'overhead p50',
        'ratio p50',
        'ratio p99',
        'target ≤ 2 ms',
      ],
      overhead.map((o) => [
        o.size,
        o.engine.median,
        o.engine.p99,
        o.plain.median,
        o.plain.p99,
        o.overhead_median_ms,
        o.ratio_median,
        o.ratio_p99,
        verdict(o.overhead_median_ms <= TARGETS.engine_overhead_median_ms),
      ]),
    ),
  );
  say('\n2. Gateway under load (npm start server; autocannon in a second process)');
  printGatewaySummary(gatewayResult, say);
  say('\n3. Lambda bundles (esbuild, as infra/stage-bundle.ts builds them for the stack)');
  say(
    formatTable(
      [
        'stage',
        'init KB',
        'target',
        'size',
        'asset KB',
        'init ms',
        '+maps ms',
        'SDK ms',
        'target',
        'init',
        'DynamoDB first use ms (chunk / before: package)',
        'no-Tracer KB/ms',
        'SDK-bundled KB/ms',
        'before: SDK external KB/ms',
        'before: schemas whole KB/ms',
        'largest inputs',
      ],
      bundles.bundles.map((b) => [
        b.stage,
        b.kb,
        b.size_target_kb,
        verdict(b.size_met),
        b.asset_kb,
        b.init_ms_median,
        b.init_ms_with_source_maps_median,
        b.externals_import_ms_median,
        b.init_target_ms ?? '-',
        b.init_met === null ? '-' : verdict(b.init_met),
        b.dynamodb_first_use
          ? `${b.dynamodb_first_use.ms_median} / ${b.dynamodb_first_use.runtime_sdk_ms_median}`
          : '-',
        `${b.without_tracer.kb}/${b.without_tracer.init_ms_median}`,
        b.sdk_bundled ? `${b.sdk_bundled.kb}/${b.sdk_bundled.init_ms_median}` : '-',
        `${b.sdk_external.kb}/${b.sdk_external.init_ms_median}`,
        b.schemas_whole ? `${b.schemas_whole.kb}/${b.schemas_whole.init_ms_median}` : '-',
        b.top_inputs
          .slice(0, 2)
          .map((t) => `${t.input} ${t.kb}`)
          .join(', '),
      ]),
    ),
  );
  say(
    `\n4. Cost per 1 M conversations (1 KB; agent 0 / 2.5 / 10 s): ${Object.values(cost.file.per_million_usd)
      .map((v) => `$${v.toFixed(2)}`)
      .join(
        ' / ',
      )}; ${cost.file.log_kb_per_conversation} KB of logs per conversation (tables above, bench/results/cost.json)`,
  );
  say('\n5. Scaling with request size (gateway at c=8) and concurrency (1 KB)');
  say(
    formatTable(
      [
        'size',
        'engine p50 ms',
        'overhead ms',
        'conv/s',
        'p99 ms',
        'CPU ms/conv',
        'S3 bytes',
        'Express log KB',
        'USD / 1 M',
      ],
      scaling.by_request_size.map((r) => [
        r.size,
        r.engine_median_ms,
        r.engine_overhead_median_ms,
        r.gateway_conversations_per_s_c8,
        r.gateway_p99_ms_c8,
        r.gateway_cpu_ms_per_conversation,
        r.s3_put_bytes,
        r.express_log_kb_estimate,
        r.cost_usd_per_million.toFixed(2),
      ]),
    ),
  );
  say(
    formatTable(
      ['conns', 'conv/s', 'p50 ms', 'p99 ms', 'gw CPU ms/conv', 'all CPU ms/conv', 'cores busy'],
      scaling.by_concurrency.map((r) => [
        r.connections,
        r.conversations_per_s,
        r.p50_ms,
        r.p99_ms,
        r.gateway_cpu_ms_per_conversation,
        r.all_processes_cpu_ms_per_conversation,
        r.cores_busy,
      ]),
    ),
  );
  say(
    `\n6. SQL over the exports: ${analytics.conversations.toLocaleString('en')} conversations, ${analytics.bytes_per_conversation.total} bytes of exports each; in process, open (refresh from the exports) + query`,
  );
  say(
    formatTable(
      ['query', 'rows', 'first ms', 'then p50 ms', 'then max ms', `target < ${ANALYTICS_TARGET_MS} ms`],
      analytics.queries.map((q) => [
        q.name,
        q.rows,
        q.first_ms,
        Math.round(q.warm.median),
        Math.round(q.warm.max),
        verdict(q.target_met),
      ]),
    ),
  );
  say(
    `   the real command: ${analytics.cli_wall_ms.command} ${analytics.cli_wall_ms.ms} ms (webhook-gateway help: ${analytics.cli_wall_ms.help_ms} ms)`,
  );
  say(
    formatTable(
      ['Athena, 1 M conversations', 'window', 'days read', 'GB scanned', 'USD'],
      analytics.athena_estimate.per_query.map((q) => [q.name, q.window, q.days_read, q.gb_scanned, q.usd.toFixed(4)]),
    ),
  );
  say(
    `\nwrote ${path.relative(process.cwd(), path.join(RESULTS_DIR, 'latest.json'))} (and latest.txt, this output) in ${elapsed()}`,
  );
  await writeFile(path.join(RESULTS_DIR, 'latest.txt'), `${transcript.join('\n')}\n`);
}

/** Only the sections named on the command line, each written to its own file. */
async function runSelected(): Promise<void> {
  const info = machine();
  say(
    `webhook-gateway bench (${selected.join(', ')}) — ${info.date} — ${info.nproc} cores (${info.cpu_model}), node ${info.node}, load average ${info.loadavg_at_start.join(' ')}`,
  );
  await mkdir(RESULTS_DIR, { recursive: true });
  const out: Record<string, unknown> = { machine: info };
  if (selected.includes('bundles')) {
    say(header(`[bundles] built as the stack builds them, infra/stage-bundle.ts; cold init in fresh node processes`));
    out.bundles = await measureBundles({ runs: QUICK ? 5 : 15 }, say);
  }
  if (selected.includes('gateway')) {
    say(header(`[gateway] npm start server + autocannon in a second process, ${LOAD_SECONDS} s per level`));
    out.gateway = await gatewaySection(
      { levels: GATEWAY_LEVELS, loadSeconds: LOAD_SECONDS, listingObjects: LISTING_OBJECTS },
      say,
    );
    say('');
    printGatewaySummary(out.gateway as Awaited<ReturnType<typeof gatewaySection>>, say);
  }
  if (selected.includes('cost')) {
    say(header(`[cost] handler times, logs and the execution's events (1 KB, in process)`));
    const overhead = await measureEngineOverhead({ sizes: ['1KB'], iterations: 200, warmup: 50 }, say);
    out.cost = await costSection(overhead, say);
  }
  const end = loadavg().map((v) => Math.round(v * 100) / 100);
  say(
    `\ndone in ${elapsed()}; load average ${info.loadavg_at_start.join(' ')} at the start, ${end.join(' ')} at the end`,
  );
  await writeFile(
    path.join(RESULTS_DIR, `latest-${selected.join('-')}.json`),
    `${JSON.stringify({ ...out, loadavg_at_end: end }, null, 2)}\n`,
  );
}

await (selected.length > 0 ? runSelected() : main());
