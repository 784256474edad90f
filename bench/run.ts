/**
 * `npm run bench`: the performance figures of docs/performance.md, in one run, written to bench/results/latest.json with a
 * summary table on stdout. `npm run bench -- cost` runs only the cost model (bench/results/cost.json),
 * `npm run bench -- bundles` only the bundles and their cold init. Sections: 1 engine overhead, 2 gateway throughput/latency (+ CPU profile),
 * 3 Lambda bundles, 4 cost per 1 M conversations, 5 scaling with request size and concurrency, 6 SQL over the
 * exports (search and the named queries at 10,000 conversations; Athena bytes for 1 M).
 * Everything listens on 127.0.0.1 port 0. Takes about 3-4 minutes on 2 cores. docs/performance.md explains it.
 */
import '../local/node-warnings.ts';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import path from 'node:path';
import { ANALYTICS_TARGET_MS, measureAnalytics } from './analytics.ts';
import { measureBundles } from './bundles.ts';
import { EXPRESS_LOG_ITEM, SCENARIOS } from './cost.ts';
import { costSection } from './cost-report.ts';
import { measureEngineOverhead } from './engine-overhead.ts';
import { type GatewayRunResult, type LoadLevelResult, runGatewayLoad } from './gateway-load.ts';
import { measureS3Listing } from './s3-listing.ts';
import { PROJECT_ROOT, RESULTS_DIR } from './support/processes.ts';
import { summarizeProfile } from './support/profile.ts';
import type { RequestSizeName } from './support/requests.ts';
import { formatTable, verdict } from './support/table.ts';

const QUICK = process.argv.includes('--quick');
/** Sections named on the command line (`npm run bench -- cost`): only those run. None: the whole bench. */
const SECTIONS = ['cost', 'bundles'] as const;
const selected = process.argv.slice(2).filter((a) => !a.startsWith('--'));
for (const name of selected)
  if (!(SECTIONS as readonly string[]).includes(name))
    throw new Error(`unknown bench section ${name}: choose from ${SECTIONS.join(', ')} (or none for all)`);
const LOAD_SECONDS = QUICK ? 2 : 5;
const CONCURRENCY = [1, 4, 8, 32];
const SIZES: RequestSizeName[] = ['1KB', '64KB', '250KB'];
const SIZE_CONCURRENCY = 8;
const TARGETS = {
  engine_overhead_median_ms: 2,
  gateway_conversations_per_s: 150,
  gateway_p99_ms: 50,
  gateway_connections: 4,
};
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

function bestLevel(levels: LoadLevelResult[]): LoadLevelResult | undefined {
  return [...levels].sort((a, b) => b.conversations_per_s - a.conversations_per_s)[0];
}

async function main(): Promise<void> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const info = machine();
  say(
    `webhook-gateway bench — ${info.date} — ${info.nproc} cores (${info.cpu_model}), node ${info.node}, load average ${info.loadavg_at_start.join(' ')}`,
  );

  // 1. Engine overhead.
  say(`\n[1/6] engine overhead (LocalWorkflow vs plain chaining, in process) … ${elapsed()}`);
  const overhead = await measureEngineOverhead(
    { sizes: SIZES, iterations: QUICK ? 200 : 1000, warmup: QUICK ? 50 : 200 },
    say,
  );

  // 2. Gateway under load.
  say(
    `\n[2/6] gateway under load (npm start server + autocannon in a second process, ${LOAD_SECONDS} s per level) … ${elapsed()}`,
  );
  const levels = [
    ...CONCURRENCY.map((connections) => ({ size: '1KB' as const, connections })),
    ...SIZES.filter((s) => s !== '1KB').map((size) => ({ size, connections: SIZE_CONCURRENCY })),
  ];
  const gateway = await runGatewayLoad(
    { label: 'npm-start', levels, durationSeconds: LOAD_SECONDS, warmupSeconds: 2 },
    say,
  );
  say(
    `  comparison: the embedded S3 in a process of its own, reached over HTTP (AWS_ENDPOINT_URL_S3): the design before the in-process transport …`,
  );
  const compareLevels = [
    { size: '1KB' as const, connections: 4 },
    { size: '1KB' as const, connections: 8 },
  ];
  const separateS3 = await runGatewayLoad(
    {
      label: 'S3-over-HTTP',
      levels: compareLevels,
      durationSeconds: LOAD_SECONDS,
      warmupSeconds: 1,
      s3: 'separate-process',
    },
    say,
  );
  say(`  comparison: an instant in-memory S3 sink over HTTP (what writing the exports costs the gateway at all) …`);
  const instantS3 = await runGatewayLoad(
    { label: 'instant-S3', levels: compareLevels, durationSeconds: LOAD_SECONDS, warmupSeconds: 1, s3: 'instant' },
    say,
  );
  say(`  the embedded S3 at ${LISTING_OBJECTS.toLocaleString('en')} objects (PUT in-process, listed over HTTP) …`);
  const listing = await measureS3Listing(LISTING_OBJECTS, say);
  say(`  profile: node --cpu-prof on the gateway at 1KB c=${TARGETS.gateway_connections} …`);
  const profileDir = path.join(RESULTS_DIR, 'profiles');
  await rm(profileDir, { recursive: true, force: true });
  await mkdir(profileDir, { recursive: true });
  const profiled: GatewayRunResult = await runGatewayLoad(
    {
      label: 'profiled',
      levels: [{ size: '1KB', connections: TARGETS.gateway_connections }],
      durationSeconds: LOAD_SECONDS,
      warmupSeconds: 1,
      nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
    },
    say,
  );
  const profile = profiled.profile_file
    ? await summarizeProfile(profiled.profile_file, PROJECT_ROOT, new RegExp(`${PROJECT_ROOT}/(functions|local)/`), {
        top: 14,
        windows: profiled.load_windows_us,
      })
    : null;
  if (profile) profile.file = path.relative(PROJECT_ROOT, profile.file);

  // 3. Bundles.
  say(`\n[3/6] Lambda bundles (esbuild as NodejsFunction runs it; cold init in fresh node processes) … ${elapsed()}`);
  const bundles = await measureBundles({ runs: QUICK ? 3 : 7 }, say);

  // 4. Cost.
  say(`\n[4/6] cost per 1 M conversations (template synthesized in a child process) … ${elapsed()}`);
  const cost = await costSection(overhead, say);
  const costs = cost.results;

  // SQL over the exports.
  say(
    `\n[5/6] SQL over the exports (${ANALYTICS_CONVERSATIONS.toLocaleString('en')} conversations on DuckDB; Athena bytes for 1 M) … ${elapsed()}`,
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
  const meeting = gateway.levels.filter(
    (l) =>
      l.size === '1KB' &&
      l.connections === TARGETS.gateway_connections &&
      l.conversations_per_s >= TARGETS.gateway_conversations_per_s &&
      l.latency_ms.p99 <= TARGETS.gateway_p99_ms,
  );
  const atTarget = (run: GatewayRunResult) =>
    run.levels.find((l) => l.size === '1KB' && l.connections === TARGETS.gateway_connections)!;
  const ratio = (a: number | null, b: number | null) => (a !== null && b ? Math.round((a / b) * 100) / 100 : null);
  const versusHttp = {
    connections: TARGETS.gateway_connections,
    conversations_per_s: ratio(atTarget(gateway).conversations_per_s, atTarget(separateS3).conversations_per_s),
    p99: ratio(atTarget(gateway).latency_ms.p99, atTarget(separateS3).latency_ms.p99),
    gateway_cpu_per_conversation: ratio(
      atTarget(gateway).cpu_ms_per_conversation.gateway,
      atTarget(separateS3).cpu_ms_per_conversation.gateway,
    ),
    all_cpu_per_conversation: ratio(
      atTarget(gateway).cpu_ms_per_conversation.total,
      atTarget(separateS3).cpu_ms_per_conversation.total,
    ),
  };
  const best = bestLevel(gateway.levels.filter((l) => l.size === '1KB'))!;
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
    gateway: {
      method: `bin/webhook-gateway.mjs start (npm start: startGateway, the embedded S3 reached in-process by the handlers, handler logs diverted to a file) in its own process; autocannon in a second process, ${LOAD_SECONDS} s per level after a warm-up; instant agent and receiver in a third (the orchestrator). A conversation counts when it was answered 2xx and its export was written.`,
      npm_start: gateway,
      s3_over_http_own_process: separateS3,
      instant_s3: instantS3,
      npm_start_vs_s3_over_http: versusHttp,
      s3_listing: listing,
      profile,
      target_met: meeting.length > 0,
      best_1kb_level: {
        connections: best.connections,
        conversations_per_s: best.conversations_per_s,
        p99_ms: best.latency_ms.p99,
      },
    },
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
  const loadRows = (run: GatewayRunResult) =>
    run.levels.map((l) => [
      run.label,
      l.size,
      l.connections,
      l.conversations_per_s,
      l.latency_ms.p50,
      l.latency_ms.p99,
      l.errors + l.timeouts,
      l.non_2xx,
      l.export_failed,
      l.cpu_ms_per_conversation.gateway,
      l.cpu_ms_per_conversation.s3_process,
      l.cpu_ms_per_conversation.total,
      l.cores_busy,
    ]);
  say(
    formatTable(
      [
        'server',
        'size',
        'conns',
        'conv/s',
        'p50 ms',
        'p99 ms',
        'errors',
        'non-2xx',
        'no export',
        'gw CPU ms',
        'S3 proc ms',
        'all CPU ms',
        'cores busy',
      ],
      [...loadRows(gateway), ...loadRows(separateS3), ...loadRows(instantS3)],
    ),
  );
  const target = atTarget(gateway);
  say(
    `   target ≥ ${TARGETS.gateway_conversations_per_s} conv/s at p99 ≤ ${TARGETS.gateway_p99_ms} ms, 1 KB, c=${TARGETS.gateway_connections}: ${verdict(meeting.length > 0)} — ${target.conversations_per_s} conv/s, p99 ${target.latency_ms.p99} ms (best: ${best.conversations_per_s} conv/s at c=${best.connections}, p99 ${best.latency_ms.p99} ms)`,
  );
  say(
    `   npm start / S3 over HTTP in its own process, same run, c=${TARGETS.gateway_connections}: conv/s ×${versusHttp.conversations_per_s}, p99 ×${versusHttp.p99}, gateway CPU per conversation ×${versusHttp.gateway_cpu_per_conversation}, all processes ×${versusHttp.all_cpu_per_conversation}`,
  );
  say(
    `   embedded S3 at ${listing.objects} objects: ListObjectsV2 ${listing.list_v2.keys} keys / ${listing.list_v2.pages} pages in ${listing.list_v2.ms} ms; aws s3 ls --recursive ${listing.aws_cli ? `${listing.aws_cli.lines} lines in ${listing.aws_cli.ms} ms` : 'skipped (no AWS CLI)'}`,
  );
  if (profile) {
    say(`   gateway CPU profile (${profile.busy_ms} ms busy in the load window), by owner:`);
    say(
      formatTable(
        ['owner', 'ms', '% of busy'],
        profile.by_owner.slice(0, 10).map((o) => [`   ${o.owner}`, o.ms, o.share_of_busy]),
      ),
    );
  }
  say('\n3. Lambda bundles (esbuild, options of infra/constructs/stage-function.ts)');
  say(
    formatTable(
      [
        'stage',
        'KB',
        'target',
        'size',
        'init ms',
        '+maps ms',
        'SDK ms',
        'target',
        'init',
        'no-Tracer KB/ms',
        'SDK-bundled KB/ms',
        'before: SDK external KB/ms',
        'largest inputs',
      ],
      bundles.bundles.map((b) => [
        b.stage,
        b.kb,
        b.size_target_kb,
        verdict(b.size_met),
        b.init_ms_median,
        b.init_ms_with_source_maps_median,
        b.externals_import_ms_median,
        b.init_target_ms,
        verdict(b.init_met),
        `${b.without_tracer.kb}/${b.without_tracer.init_ms_median}`,
        b.sdk_bundled ? `${b.sdk_bundled.kb}/${b.sdk_bundled.init_ms_median}` : '-',
        `${b.sdk_external.kb}/${b.sdk_external.init_ms_median}`,
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
  // Keep only the newest profile.
  for (const f of await readdir(profileDir))
    if (profiled.profile_file && path.join(profileDir, f) !== profiled.profile_file) await rm(path.join(profileDir, f));
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
    say(`\n[bundles] esbuild as NodejsFunction runs it; cold init in fresh node processes … ${elapsed()}`);
    out.bundles = await measureBundles({ runs: QUICK ? 3 : 7 }, say);
  }
  if (selected.includes('cost')) {
    say(`\n[cost] handler times, logs and the execution's events (1 KB, in process) … ${elapsed()}`);
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
