/**
 * 2. Gateway throughput and latency: the `npm start` server (bin/webhook-gateway.mjs start → startGateway, with the
 * real embedded S3 and the handler-log diversion of `start`) in its own process, loaded by autocannon in a second
 * process (bench/load-client.ts), with an instant agent and receiver served from this (otherwise idle) process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { Dirent } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WEBHOOK_TYPES } from '../functions/domain/conversation.ts';
import { DELIVERY_URL_VARIABLES } from '../functions/domain/delivery.ts';
import { DEFAULTS } from '../functions/shared/settings.ts';
import type { LoadFigures, LoadSpec } from './load-client.ts';
import { type InstantPeers, startInstantPeers, startInstantS3 } from './support/peers.ts';
import { BENCH_DIR, cpuMsOf, PROJECT_ROOT, rssMbOf, runTs, waitForExit } from './support/processes.ts';
import { makeRequest, REQUEST_SIZES, type RequestSizeName } from './support/requests.ts';

export interface LoadLevelResult extends Omit<LoadFigures, 'conversation_ids'> {
  size: RequestSizeName;
  /** 2xx answers whose conversation was exported (the handlers logged WEBHOOK_CONVERSATION_EXPORTED for it). */
  conversations_ok: number;
  /** … per second of load: the throughput figure. A 2xx whose export failed does not count. */
  conversations_per_s: number;
  /** 2xx answers whose export failed (deferred to the redelivery schedule). */
  export_failed: number;
  request_bytes: number;
  /** CPU the gateway process used per successful conversation (user + system). */
  gateway_cpu_ms_per_conversation: number | null;
  /**
   * … of which its main thread (the event loop: JavaScript, and every synchronous system call). One thread cannot use
   * more than one core: 1000 / this is the most conversations per second the gateway can serve.
   */
  gateway_main_thread_cpu_ms_per_conversation: number | null;
  /** Share of one core the gateway process used during the run. */
  gateway_cpu_utilisation: number | null;
  gateway_rss_mb: number | null;
  /**
   * CPU per successful conversation of every process of the test (ms): the gateway, the S3 process when S3 runs in
   * one, the instant peers (this process) and the load generator. On 2 cores the total is what bounds throughput.
   */
  cpu_ms_per_conversation: {
    gateway: number | null;
    s3_process: number | null;
    peers: number;
    load_client: number;
    total: number | null;
  };
  /** Cores busy with this test during the load (total CPU / load duration), out of the machine's cores. */
  cores_busy: number | null;
  /**
   * The conversations per second this CPU per conversation allows on 2 cores that nothing else uses: the lower of
   * 1000 / the main thread's ms (one event loop) and 2 × 1000 / every process's ms (gateway, peers, load generator).
   * CPU time measured on a busy machine is inflated (caches and cores shared with other work), so on an idle
   * machine the ceiling is higher, not lower.
   */
  two_idle_cores_ceiling_per_s: number | null;
  /** Local state the gateway wrote per conversation at this level (execution history, S3 files, handler log). */
  local_bytes_per_conversation: Record<string, number>;
}

export interface GatewayRunResult {
  label: string;
  levels: LoadLevelResult[];
  /** Local state written per conversation over the whole run, warm-up and all sizes included. */
  data_bytes_per_conversation: Record<string, number>;
  profile_file?: string;
  /** CLOCK_MONOTONIC µs windows of the measured load levels (for the CPU profile). */
  load_windows_us: [number, number][];
}

export interface GatewayRunOptions {
  label: string;
  levels: { size: RequestSizeName; connections: number }[];
  durationSeconds: number;
  warmupSeconds: number;
  /** node flags for the gateway process, e.g. --cpu-prof. */
  nodeArgs?: string[];
  /** Use the gateway's built-in sample agent and receiver instead of the instant external ones. */
  builtInPeers?: boolean;
  extraEnv?: Record<string, string>;
  /**
   * Where S3 runs: `embedded` (npm start: the embedded S3 in the gateway process, reached in-process by the handlers),
   * `separate-process` (the same embedded S3 in a process of its own, reached over HTTP through AWS_ENDPOINT_URL_S3:
   * the design before the in-process transport) or `instant` (an in-memory PUT sink in this process).
   */
  s3?: 'embedded' | 'separate-process' | 'instant';
}

interface RunningServer {
  child: ChildProcess;
  url: string;
  dataDir: string;
  output: () => string;
}

async function startServer(
  peers: InstantPeers | null,
  dataDir: string,
  nodeArgs: string[],
  extraEnv: Record<string, string>,
): Promise<RunningServer> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of [
    'AWS_ENDPOINT_URL_S3',
    'AWS_ENDPOINT_URL_LAMBDA',
    'AWS_PROFILE',
    'LOCAL_LOG_TO_STDOUT',
    ...Object.values(DELIVERY_URL_VARIABLES),
  ])
    delete env[name];
  Object.assign(env, {
    PORT: '0',
    LOCAL_S3_PORT: '0',
    HOST: '127.0.0.1',
    LOCAL_DATA_DIR: dataDir,
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  if (peers) {
    env.AWS_ENDPOINT_URL_LAMBDA = peers.agentUrl;
    env.MANAGER_AGENT_FUNCTION_NAME = 'bench-agent';
    for (const type of WEBHOOK_TYPES) env[DELIVERY_URL_VARIABLES[type]] = `${peers.receiverUrl}/hooks/${type}`;
  }
  Object.assign(env, extraEnv);
  const child = spawn(process.execPath, [...nodeArgs, path.join(PROJECT_ROOT, 'bin', 'webhook-gateway.mjs'), 'start'], {
    cwd: PROJECT_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let head = '';
  let lines = 0;
  const onData = (d: Buffer) => {
    if (head.length < 20_000) head += d.toString();
    lines += 1;
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // not left running, without a parent, once the bench gives up on it
      reject(new Error(`the gateway did not start within 30 s:\n${head}`));
    }, 30_000);
    const check = () => {
      const m = /listening on (http:\/\/\S+)/.exec(head);
      if (m && head.includes('Ctrl-C stops everything')) {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited with ${code}:\n${head}`));
    });
  });
  return { child, url, dataDir, output: () => `${head}\n(${lines} chunks)` };
}

/** See LoadLevelResult.two_idle_cores_ceiling_per_s. */
export function ceilingOnTwoCores(mainThreadMs: number | null, allProcessesMs: number | null): number | null {
  if (!mainThreadMs || !allProcessesMs) return null;
  return Math.round(Math.min(1000 / mainThreadMs, 2000 / allProcessesMs));
}

async function duBytes(dir: string): Promise<number> {
  let total = 0;
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await duBytes(p);
    else total += (await stat(p).catch(() => null))?.size ?? 0; // a temporary file may be renamed meanwhile
  }
  return total;
}

export async function runGatewayLoad(
  options: GatewayRunOptions,
  log: (line: string) => void = () => undefined,
): Promise<GatewayRunResult> {
  const peers = options.builtInPeers ? null : await startInstantPeers();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-bench-'));
  const bodies = new Map<RequestSizeName, { file: string; bytes: number }>();
  for (const size of new Set(options.levels.map((l) => l.size))) {
    const request = makeRequest(REQUEST_SIZES[size]);
    const file = path.join(dataDir, `request-${size}.json`);
    await writeFile(file, request.body);
    bodies.set(size, { file, bytes: request.bytes });
  }
  const extraEnv = { ...options.extraEnv };
  let stopS3: () => Promise<void> = async () => undefined;
  let s3Pid: number | null = null;
  let assertS3Alive = () => undefined;
  if (options.s3 === 'instant') {
    const s3 = await startInstantS3();
    extraEnv.AWS_ENDPOINT_URL_S3 = s3.endpoint;
    stopS3 = () => s3.close();
  } else if (options.s3 === 'separate-process') {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(BENCH_DIR, 'support', 's3-server.ts'),
        path.join(dataDir, 'data', 's3'),
        DEFAULTS.exportBucket,
      ],
      {
        cwd: PROJECT_ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    extraEnv.AWS_ENDPOINT_URL_S3 = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /endpoint (\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`the S3 process exited with ${code} before it listened`)));
    });
    extraEnv.CONVERSATION_EXPORT_S3_BUCKET = DEFAULTS.exportBucket;
    s3Pid = child.pid ?? null;
    // A dead S3 process would leave the gateway deferring every export: the measurement would be of something else.
    assertS3Alive = () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`the S3 process exited (${child.exitCode ?? child.signalCode}) during the measurement`);
      }
    };
    stopS3 = async () => {
      child.kill('SIGTERM');
      await waitForExit(child, 10_000);
    };
  }
  let server: RunningServer;
  try {
    server = await startServer(peers, path.join(dataDir, 'data'), options.nodeArgs ?? [], extraEnv);
  } catch (error) {
    await peers?.close();
    await stopS3();
    throw error;
  }
  const pid = server.child.pid!;
  const data = path.join(dataDir, 'data');
  const PARTS = ['executions', 's3', 'logs', 'receiver'] as const;
  const usage = async () =>
    Object.fromEntries(await Promise.all(PARTS.map(async (p) => [p, await duBytes(path.join(data, p))] as const)));
  const load = async (size: RequestSizeName, connections: number, seconds: number): Promise<LoadFigures> => {
    const spec: LoadSpec = {
      url: `${server.url}/webhook`,
      bodyFile: bodies.get(size)!.file,
      connections,
      durationSeconds: seconds,
    };
    const out = await runTs(path.join(BENCH_DIR, 'load-client.ts'), [JSON.stringify(spec)], {
      timeoutMs: (seconds + 60) * 1000,
    });
    return JSON.parse(out.trim().split('\n').at(-1)!) as LoadFigures;
  };
  // What the handlers logged: which conversations were exported (read on from where the last level stopped).
  const handlerLog = path.join(data, 'logs', 'handlers.jsonl');
  let logOffset = 0;
  const exportedSinceLastLevel = async (): Promise<Set<string>> => {
    const text = await readFile(handlerLog, 'utf8').catch(() => '');
    const exported = new Set<string>();
    for (const line of text.slice(logOffset).split('\n')) {
      if (!line.includes('"WEBHOOK_CONVERSATION_EXPORTED"')) continue;
      const id = (JSON.parse(line) as { conversation_id?: string }).conversation_id;
      if (id) exported.add(id);
    }
    logOffset = text.length;
    return exported;
  };
  const levels: LoadLevelResult[] = [];
  let totalOk = 0;
  try {
    if (options.warmupSeconds > 0) totalOk += (await load(options.levels[0]!.size, 8, options.warmupSeconds)).ok_2xx;
    await exportedSinceLastLevel();
    for (const level of options.levels) {
      const before = await usage();
      const cpuBefore = cpuMsOf(pid);
      const mainBefore = cpuMsOf(pid, pid);
      const s3CpuBefore = s3Pid !== null ? cpuMsOf(s3Pid) : null;
      const peersCpuBefore = process.cpuUsage();
      const { conversation_ids: answered, ...figures } = await load(
        level.size,
        level.connections,
        options.durationSeconds,
      );
      const cpuAfter = cpuMsOf(pid);
      const mainAfter = cpuMsOf(pid, pid);
      assertS3Alive();
      const s3CpuAfter = s3Pid !== null ? cpuMsOf(s3Pid) : null;
      const peersUsage = process.cpuUsage(peersCpuBefore);
      const peersCpu = (peersUsage.user + peersUsage.system) / 1000;
      // Files are written when each conversation ends: a short settle before measuring them.
      await new Promise((r) => setTimeout(r, 300));
      const after = await usage();
      const exported = await exportedSinceLastLevel();
      const conversationsOk = answered.filter((id) => exported.has(id)).length;
      const loadMs = (figures.window_us[1] - figures.window_us[0]) / 1000;
      totalOk += figures.ok_2xx;
      const cpu = cpuBefore !== null && cpuAfter !== null ? cpuAfter - cpuBefore : null;
      const mainCpu = mainBefore !== null && mainAfter !== null ? mainAfter - mainBefore : null;
      const s3Cpu = s3CpuBefore !== null && s3CpuAfter !== null ? s3CpuAfter - s3CpuBefore : null;
      const perConv = (ms: number | null) =>
        ms === null || figures.ok_2xx === 0 ? null : Math.round((ms / figures.ok_2xx) * 100) / 100;
      const totalCpu = cpu === null ? null : cpu + (s3Cpu ?? 0) + peersCpu + figures.client_cpu_ms;
      const result: LoadLevelResult = {
        size: level.size,
        request_bytes: bodies.get(level.size)!.bytes,
        ...figures,
        conversations_ok: conversationsOk,
        conversations_per_s: Math.round((conversationsOk / figures.duration_s) * 10) / 10,
        export_failed: answered.length - conversationsOk,
        // CPU is sampled around the whole client process (its start-up, with the gateway idle, included).
        gateway_cpu_ms_per_conversation:
          cpu !== null && figures.ok_2xx > 0 ? Math.round((cpu / figures.ok_2xx) * 100) / 100 : null,
        gateway_main_thread_cpu_ms_per_conversation: perConv(mainCpu),
        gateway_cpu_utilisation: cpu !== null ? Math.round((cpu / loadMs) * 100) / 100 : null,
        gateway_rss_mb: rssMbOf(pid),
        cpu_ms_per_conversation: {
          gateway: perConv(cpu),
          s3_process: perConv(s3Cpu),
          peers: perConv(peersCpu) ?? 0,
          load_client: perConv(figures.client_cpu_ms) ?? 0,
          total: perConv(totalCpu),
        },
        cores_busy: totalCpu === null ? null : Math.round((totalCpu / loadMs) * 100) / 100,
        two_idle_cores_ceiling_per_s: ceilingOnTwoCores(perConv(mainCpu), perConv(totalCpu)),
        local_bytes_per_conversation: Object.fromEntries(
          PARTS.map((p) => [
            p,
            figures.ok_2xx > 0 ? Math.round(((after[p] ?? 0) - (before[p] ?? 0)) / figures.ok_2xx) : 0,
          ]),
        ),
      };
      levels.push(result);
      log(
        `  ${options.label} ${level.size} c=${level.connections}: ${result.conversations_per_s} conv/s, p50 ${figures.latency_ms.p50} ms, p99 ${figures.latency_ms.p99} ms, ` +
          `errors ${figures.errors + figures.timeouts}, non-2xx ${figures.non_2xx}, export failed ${result.export_failed}, CPU ms/conv gateway ${result.cpu_ms_per_conversation.gateway}` +
          `${s3Pid !== null ? ` + S3 ${result.cpu_ms_per_conversation.s3_process}` : ''} + peers ${result.cpu_ms_per_conversation.peers} + autocannon ${result.cpu_ms_per_conversation.load_client}` +
          ` = ${result.cpu_ms_per_conversation.total} (${result.cores_busy} cores busy; main thread ${result.gateway_main_thread_cpu_ms_per_conversation}; 2 idle cores: ≤ ${result.two_idle_cores_ceiling_per_s} conv/s)`,
      );
    }
  } finally {
    server.child.kill('SIGINT');
    const code = await waitForExit(server.child, 20_000);
    if (code !== 0) log(`  (gateway exited with ${code})`);
    await peers?.close();
    await stopS3();
  }
  const perConversation: Record<string, number> = {};
  for (const part of PARTS) {
    perConversation[part] = totalOk > 0 ? Math.round((await duBytes(path.join(data, part))) / totalOk) : 0;
  }
  let profileFile: string | undefined;
  const profDirArg = (options.nodeArgs ?? []).find((a) => a.startsWith('--cpu-prof-dir='));
  if (profDirArg) {
    const dir = profDirArg.slice('--cpu-prof-dir='.length);
    const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
    const stats = await Promise.all(files.map(async (f) => ({ f, t: (await stat(path.join(dir, f))).mtimeMs })));
    const newest = stats.sort((a, b) => b.t - a.t)[0];
    if (newest) profileFile = path.join(dir, newest.f);
  }
  await rm(dataDir, { recursive: true, force: true });
  return {
    label: options.label,
    levels,
    data_bytes_per_conversation: perConversation,
    profile_file: profileFile,
    load_windows_us: levels.map((l) => l.window_us),
  };
}
