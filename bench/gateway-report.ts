/**
 * Section 2 of `npm run bench` (alone: `npm run bench -- gateway`): the `npm start` server under load beside the
 * design before the in-process S3 transport (S3 over HTTP in a process of its own) and an instant S3, the embedded S3
 * listing 12,000 objects, and the gateway's CPU profile; what docs/performance.md §2 reports.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { type GatewayRunResult, type LoadLevelResult, runGatewayLoad } from './gateway-load.ts';
import { measureS3Listing } from './s3-listing.ts';
import { PROJECT_ROOT, RESULTS_DIR } from './support/processes.ts';
import { type ProfileSummary, summarizeProfile } from './support/profile.ts';
import type { RequestSizeName } from './support/requests.ts';
import { formatTable, verdict } from './support/table.ts';

export const GATEWAY_TARGET = { conversations_per_s: 150, p99_ms: 50, connections: 4 };

export interface GatewaySectionOptions {
  levels: { size: RequestSizeName; connections: number }[];
  loadSeconds: number;
  listingObjects: number;
}

export interface GatewaySection {
  method: string;
  npm_start: GatewayRunResult;
  s3_over_http_own_process: GatewayRunResult;
  instant_s3: GatewayRunResult;
  npm_start_vs_s3_over_http: {
    connections: number;
    conversations_per_s: number | null;
    p99: number | null;
    gateway_cpu_per_conversation: number | null;
    gateway_main_thread_cpu_per_conversation: number | null;
    all_cpu_per_conversation: number | null;
  };
  s3_listing: Awaited<ReturnType<typeof measureS3Listing>>;
  profile: ProfileSummary | null;
  target_met: boolean;
  best_1kb_level: { connections: number; conversations_per_s: number; p99_ms: number };
}

const ratio = (a: number | null, b: number | null) => (a !== null && b ? Math.round((a / b) * 100) / 100 : null);
const atTarget = (run: GatewayRunResult): LoadLevelResult =>
  run.levels.find((l) => l.size === '1KB' && l.connections === GATEWAY_TARGET.connections)!;

export async function gatewaySection(
  options: GatewaySectionOptions,
  say: (line: string) => void,
): Promise<GatewaySection> {
  const { loadSeconds } = options;
  const npmStart = await runGatewayLoad(
    { label: 'npm-start', levels: options.levels, durationSeconds: loadSeconds, warmupSeconds: 2 },
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
      durationSeconds: loadSeconds,
      warmupSeconds: 1,
      s3: 'separate-process',
    },
    say,
  );
  say(`  comparison: an instant in-memory S3 sink over HTTP (what writing the exports costs the gateway at all) …`);
  const instantS3 = await runGatewayLoad(
    { label: 'instant-S3', levels: compareLevels, durationSeconds: loadSeconds, warmupSeconds: 1, s3: 'instant' },
    say,
  );
  say(
    `  the embedded S3 at ${options.listingObjects.toLocaleString('en')} objects (PUT in-process, listed over HTTP) …`,
  );
  const listing = await measureS3Listing(options.listingObjects, say);
  say(`  profile: node --cpu-prof on the gateway at 1KB c=${GATEWAY_TARGET.connections} …`);
  const profileDir = path.join(RESULTS_DIR, 'profiles');
  await rm(profileDir, { recursive: true, force: true });
  await mkdir(profileDir, { recursive: true });
  const profiled = await runGatewayLoad(
    {
      label: 'profiled',
      levels: [{ size: '1KB', connections: GATEWAY_TARGET.connections }],
      durationSeconds: loadSeconds,
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
  // Keep only the newest profile.
  for (const f of await readdir(profileDir))
    if (profiled.profile_file && path.join(profileDir, f) !== profiled.profile_file) await rm(path.join(profileDir, f));
  if (profile) profile.file = path.relative(PROJECT_ROOT, profile.file);

  const meets = (l: LoadLevelResult) =>
    l.size === '1KB' &&
    l.connections === GATEWAY_TARGET.connections &&
    l.conversations_per_s >= GATEWAY_TARGET.conversations_per_s &&
    l.latency_ms.p99 <= GATEWAY_TARGET.p99_ms;
  const best = [...npmStart.levels.filter((l) => l.size === '1KB')].sort(
    (a, b) => b.conversations_per_s - a.conversations_per_s,
  )[0]!;
  const ours = atTarget(npmStart);
  const before = atTarget(separateS3);
  return {
    method: `bin/webhook-gateway.mjs start (npm start: startGateway, the embedded S3 reached in-process by the handlers, handler logs diverted to a file) in its own process; autocannon in a second process, ${loadSeconds} s per level after a warm-up; instant agent and receiver in a third (the orchestrator). A conversation counts when it was answered 2xx and its export was written.`,
    npm_start: npmStart,
    s3_over_http_own_process: separateS3,
    instant_s3: instantS3,
    npm_start_vs_s3_over_http: {
      connections: GATEWAY_TARGET.connections,
      conversations_per_s: ratio(ours.conversations_per_s, before.conversations_per_s),
      p99: ratio(ours.latency_ms.p99, before.latency_ms.p99),
      gateway_cpu_per_conversation: ratio(ours.cpu_ms_per_conversation.gateway, before.cpu_ms_per_conversation.gateway),
      gateway_main_thread_cpu_per_conversation: ratio(
        ours.gateway_main_thread_cpu_ms_per_conversation,
        before.gateway_main_thread_cpu_ms_per_conversation,
      ),
      all_cpu_per_conversation: ratio(ours.cpu_ms_per_conversation.total, before.cpu_ms_per_conversation.total),
    },
    s3_listing: listing,
    profile,
    target_met: npmStart.levels.some(meets),
    best_1kb_level: {
      connections: best.connections,
      conversations_per_s: best.conversations_per_s,
      p99_ms: best.latency_ms.p99,
    },
  };
}

export function printGatewaySummary(section: GatewaySection, say: (line: string) => void): void {
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
      l.gateway_main_thread_cpu_ms_per_conversation,
      l.cpu_ms_per_conversation.s3_process,
      l.cpu_ms_per_conversation.total,
      l.cores_busy,
      l.two_idle_cores_ceiling_per_s,
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
        'gw main ms',
        'S3 proc ms',
        'all CPU ms',
        'cores busy',
        '2 idle cores ≤ conv/s',
      ],
      [...loadRows(section.npm_start), ...loadRows(section.s3_over_http_own_process), ...loadRows(section.instant_s3)],
    ),
  );
  const target = atTarget(section.npm_start);
  const best = section.best_1kb_level;
  const versus = section.npm_start_vs_s3_over_http;
  const listing = section.s3_listing;
  say(
    `   target ≥ ${GATEWAY_TARGET.conversations_per_s} conv/s at p99 ≤ ${GATEWAY_TARGET.p99_ms} ms, 1 KB, c=${GATEWAY_TARGET.connections}: ${verdict(section.target_met)} — ${target.conversations_per_s} conv/s, p99 ${target.latency_ms.p99} ms (best: ${best.conversations_per_s} conv/s at c=${best.connections}, p99 ${best.p99_ms} ms); its CPU per conversation allows ≤ ${target.two_idle_cores_ceiling_per_s} conv/s on 2 idle cores (main thread ${target.gateway_main_thread_cpu_ms_per_conversation} ms, all processes ${target.cpu_ms_per_conversation.total} ms)`,
  );
  say(
    `   npm start / S3 over HTTP in its own process, same run, c=${GATEWAY_TARGET.connections}: conv/s ×${versus.conversations_per_s}, p99 ×${versus.p99}, gateway CPU per conversation ×${versus.gateway_cpu_per_conversation} (main thread ×${versus.gateway_main_thread_cpu_per_conversation}), all processes ×${versus.all_cpu_per_conversation}`,
  );
  say(
    `   embedded S3 at ${listing.objects} objects: ListObjectsV2 ${listing.list_v2.keys} keys / ${listing.list_v2.pages} pages in ${listing.list_v2.ms} ms; aws s3 ls --recursive ${listing.aws_cli ? `${listing.aws_cli.lines} lines in ${listing.aws_cli.ms} ms` : 'skipped (no AWS CLI)'}`,
  );
  const profile = section.profile;
  if (profile) {
    say(`   gateway CPU profile (${profile.busy_ms} ms busy in the load window), by owner:`);
    say(
      formatTable(
        ['owner', 'ms', '% of busy'],
        profile.by_owner.slice(0, 10).map((o) => [`   ${o.owner}`, o.ms, o.share_of_busy]),
      ),
    );
  }
}
