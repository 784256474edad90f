/**
 * 3. Lambda bundles: each stage built as the stack builds it (infra/stage-bundle.ts), its size, the imports that
 * dominate it (esbuild metafile), and its cold module-init time: a fresh `node` process importing the bundle, median
 * of several, beside what-ifs and the designs before (`--enable-source-maps`, no Tracer, every SDK package bundled,
 * every SDK package external, the SDK clients' schemas kept whole).
 */
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { type BuildOptions, build, type Metafile, type Plugin } from 'esbuild';
import {
  BUNDLE_FILE,
  FUNCTION_DIRS,
  type HandlerDir,
  LAZY_MODULES,
  stageBuildOptions,
  TRACER_MODULE,
  UNTRACED_STAGES,
} from '../infra/stage-bundle.ts';
import { PROJECT_ROOT, RESULTS_DIR } from './support/processes.ts';
import { median, percentile, round } from './support/stats.ts';

/**
 * Size targets (docs/performance.md): the SDK-heavy functions get more room (Export's S3 client, the scheduler's SQS
 * and Step Functions clients).
 */
export const SIZE_TARGET_KB: Record<HandlerDir, number> = {
  validate: 250,
  classify: 250,
  deliver: 250,
  export: 600,
  'conversation-status': 250,
  'redelivery-scheduler': 600,
};
/**
 * The cold-init target holds for what someone waits on: the workflow's stages and the status route. The redelivery
 * scheduler runs on a schedule, where nobody waits for its cold start: measured, without a target.
 */
const INIT_TARGET_MS: Record<HandlerDir, number | null> = {
  validate: 80,
  classify: 80,
  deliver: 80,
  export: 80,
  'conversation-status': 80,
  'redelivery-scheduler': null,
};

interface BundlingOptions {
  source: string;
  /** Export's options; each stage's externals add the Tracer when it is untraced. */
  esbuild: BuildOptions;
  /** esbuild plugins, by name. */
  plugins: string[];
  /** Stages run with POWERTOOLS_TRACE_ENABLED=false (UNTRACED_STAGES): their init is measured so. */
  untraced_stages: string[];
  /** Left out of the untraced stages' bundles besides `esbuild.external` (TRACER_MODULE). */
  untraced_external: string[];
}

export interface BundleResult {
  stage: HandlerDir;
  bytes: number;
  kb: number;
  gzip_kb: number;
  map_kb: number;
  size_target_kb: number;
  size_met: boolean;
  /** Cold module init: import() of the bundle in a fresh process (ms). */
  init_ms_median: number;
  /** The middle half of the runs (25th–75th percentile): this machine's noise is bimodal (a run lands ~60 or ~90 ms). */
  init_ms_iqr: [number, number];
  init_ms_runs: number[];
  /** The same with --enable-source-maps (what that flag would cost: the functions run without it). */
  init_ms_with_source_maps_median: number;
  /** Whole process (node start-up + import), for reference. */
  process_ms_median: number;
  init_target_ms: number | null;
  /** Null where there is no target. */
  init_met: boolean | null;
  /** Biggest contributors to the bundle (bytes in output), by package or by our own folder. */
  top_inputs: { input: string; kb: number; share: number }[];
  /** External imports left to the runtime (the AWS SDK v3 the Node.js 22 runtime provides), loaded at init. */
  externals: string[];
  /** External imports loaded on first use only (dynamic import()), not at init. */
  lazy_externals: string[];
  /** Importing only those externals (the SDK clients) in a fresh process: the part of init that is the SDK's. */
  externals_import_ms_median: number | null;
  /** What-if: the same bundle with @aws-lambda-powertools/tracer replaced by a no-op (no X-Ray SDK, no cls-hooked). */
  without_tracer: { kb: number; init_ms_median: number };
  /** What-if: the AWS SDK bundled in (no externalModules), so init loads one minified file instead of the SDK's tree. */
  sdk_bundled: { kb: number; init_ms_median: number } | null;
  /** The previous design, measured beside it: every @aws-sdk/* package external (the runtime's SDK loaded at init). */
  sdk_external: { kb: number; init_ms_median: number };
  /** The design before: the SDK clients' schemas kept whole (no literal-schema-keys plugin); null where it is the same bundle. */
  schemas_whole: { kb: number; init_ms_median: number } | null;
}

/** esbuild plugin: @aws-lambda-powertools/tracer → a no-op Tracer (for the what-if column only). */
const noTracer: Plugin = {
  name: 'no-tracer',
  setup(b) {
    b.onResolve({ filter: /^@aws-lambda-powertools\/tracer$/ }, () => ({ path: 'no-tracer', namespace: 'bench-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'bench-stub' }, () => ({
      loader: 'js',
      contents:
        'export class Tracer { isTracingEnabled() { return false } getSegment() { return undefined } setSegment() {} captureAWSv3Client(c) { return c } }',
    }));
  },
};

/** How the stack builds the functions (infra/stage-bundle.ts), as the bench reports it. */
function bundlingOptions(): BundlingOptions {
  const { plugins, ...esbuild } = stageBuildOptions('export');
  return {
    source: 'infra/stage-bundle.ts',
    esbuild: { ...esbuild, entryPoints: undefined, external: [...LAZY_MODULES] },
    plugins: (plugins ?? []).map((p) => p.name),
    untraced_stages: [...UNTRACED_STAGES],
    untraced_external: [TRACER_MODULE],
  };
}

function inputGroup(input: string): string {
  const nm = input.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = input.slice(nm + 'node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  const parts = input.split('/');
  return parts.length > 2 ? `${parts[0]}/${parts[1]}/ (ours)` : `${input} (ours)`;
}

function topInputs(metafile: Metafile, outfile: string, limit = 6): { input: string; kb: number; share: number }[] {
  const output = Object.entries(metafile.outputs).find(([name]) => name.endsWith(path.basename(outfile)))?.[1];
  if (!output) return [];
  const groups = new Map<string, number>();
  let total = 0;
  for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
    groups.set(inputGroup(input), (groups.get(inputGroup(input)) ?? 0) + bytesInOutput);
    total += bytesInOutput;
  }
  return [...groups.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([input, bytes]) => ({ input, kb: round(bytes / 1024, 1), share: round(bytes / total, 3) }));
}

function nodeRun(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`node exited with ${code}: ${err.slice(-2000)}`)),
    );
  });
}

/** import() the module(s) in a fresh process; returns [import ms, whole-process ms]. */
async function coldInit(
  file: string | string[],
  sourceMaps: boolean,
  cwd = PROJECT_ROOT,
  traced = true,
): Promise<[number, number]> {
  const specifiers = (Array.isArray(file) ? file : [pathToFileURL(file).href]).map((f) => JSON.stringify(f));
  const script =
    `const t0 = performance.now(); for (const s of [${specifiers.join(',')}]) await import(s); const t1 = performance.now();` +
    `process.stdout.write(JSON.stringify([t1 - t0, t1]));`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
    POWERTOOLS_SERVICE_NAME: 'webhook-gateway',
    POWERTOOLS_METRICS_NAMESPACE: 'RevOps/WebhookGateway',
    LOG_LEVEL: 'INFO',
    CONVERSATION_EXPORT_S3_BUCKET: 'bench',
    MANAGER_AGENT_FUNCTION_NAME: 'bench-agent',
    NODE_NO_WARNINGS: '1',
    // As the function's environment has it (UNTRACED_STAGES of infra/stage-bundle.ts).
    ...(traced ? {} : { POWERTOOLS_TRACE_ENABLED: 'false' }),
  };
  const out = await nodeRun(
    [...(sourceMaps ? ['--enable-source-maps'] : []), '--input-type=module', '-e', script],
    env,
    cwd,
  );
  return JSON.parse(out) as [number, number];
}

export async function measureBundles(
  options: { runs: number },
  log: (line: string) => void = () => undefined,
): Promise<{ options: BundlingOptions; bundles: BundleResult[] }> {
  const bundling = bundlingOptions();
  const outRoot = path.join(RESULTS_DIR, 'bundles');
  await rm(outRoot, { recursive: true, force: true });
  const bundles: BundleResult[] = [];
  for (const stage of FUNCTION_DIRS) {
    const outdir = path.join(outRoot, stage);
    const buildOptions = stageBuildOptions(stage);
    const traced = !UNTRACED_STAGES.includes(stage);
    /** A variant of the stage's bundle, built into `outdir/<name>/`. */
    const variant = async (name: string, change: BuildOptions) => {
      const file = path.join(outdir, name, BUNDLE_FILE);
      await build({ ...buildOptions, ...change, outfile: file });
      return file;
    };
    const outfile = path.join(outdir, BUNDLE_FILE);
    const result = await build({ ...buildOptions, outfile, metafile: true });
    await writeFile(path.join(outdir, 'meta.json'), JSON.stringify(result.metafile));
    const code = await readFile(outfile);
    const map = await readFile(`${outfile}.map`).catch(() => Buffer.alloc(0));
    const builtins = new Set(builtinModules);
    const externalImports = (dynamic: boolean) =>
      [
        ...new Set(
          Object.values(result.metafile!.inputs).flatMap((i) =>
            i.imports
              .filter(
                (x) =>
                  x.external &&
                  !x.path.startsWith('node:') &&
                  !builtins.has(x.path) &&
                  (x.kind === 'dynamic-import') === dynamic,
              )
              .map((x) => x.path),
          ),
        ),
      ].sort();
    // Static ones load with the bundle (on the init path); dynamic ones on first use.
    const externals = externalImports(false);
    const lazyExternals = externalImports(true);
    // The Tracer bundled (as a traced stage has it) but replaced by a no-op.
    const stubbedFile = await variant('without-tracer', {
      external: LAZY_MODULES,
      plugins: [...(buildOptions.plugins ?? []), noTracer],
    });
    const stubbedBytes = (await readFile(stubbedFile)).length;
    const stubbed: number[] = [];
    const externalsOnly: number[] = [];
    const sdkFile =
      externals.length + lazyExternals.length > 0
        ? await variant('sdk-bundled', { external: traced ? [] : [TRACER_MODULE] })
        : null;
    // The design before, for comparison in the same run: every @aws-sdk/* package left to the runtime.
    const sdkExternalFile = await variant('sdk-external', { external: ['@aws-sdk/*'] });
    // The design before this one: the SDK clients' schemas kept whole. Measured where it is another bundle.
    const schemasWholeFile = await variant('schemas-whole', { plugins: [] });
    const schemasWholeBytes = (await readFile(schemasWholeFile)).length;
    const schemasWhole = schemasWholeBytes === code.length ? null : ([] as number[]);
    const sdkExternal: number[] = [];
    const sdkBundled: number[] = [];
    const plain: number[] = [];
    const withMaps: number[] = [];
    const whole: number[] = [];
    // Alternate the two modes so that machine noise hits both alike.
    for (let i = 0; i < options.runs; i++) {
      const [ms, total] = await coldInit(outfile, false, PROJECT_ROOT, traced);
      plain.push(ms);
      whole.push(total);
      withMaps.push((await coldInit(outfile, true, PROJECT_ROOT, traced))[0]);
      stubbed.push((await coldInit(stubbedFile, false))[0]);
      // Resolved from the bundle's folder, as the bundle resolves them.
      if (externals.length > 0) externalsOnly.push((await coldInit(externals, false, outdir))[0]);
      if (sdkFile) sdkBundled.push((await coldInit(sdkFile, false, PROJECT_ROOT, traced))[0]);
      // The previous design: every stage loaded the Tracer.
      sdkExternal.push((await coldInit(sdkExternalFile, false))[0]);
      schemasWhole?.push((await coldInit(schemasWholeFile, false, PROJECT_ROOT, traced))[0]);
    }
    const kb = code.length / 1024;
    const initMedian = median(plain);
    const bundle: BundleResult = {
      stage,
      bytes: code.length,
      kb: round(kb, 1),
      gzip_kb: round(gzipSync(code).length / 1024, 1),
      map_kb: round(map.length / 1024, 1),
      size_target_kb: SIZE_TARGET_KB[stage],
      size_met: kb <= SIZE_TARGET_KB[stage],
      init_ms_median: round(initMedian, 1),
      init_ms_iqr: [round(percentile(plain, 25), 1), round(percentile(plain, 75), 1)],
      init_ms_runs: plain.map((v) => round(v, 1)),
      init_ms_with_source_maps_median: round(median(withMaps), 1),
      process_ms_median: round(median(whole), 1),
      init_target_ms: INIT_TARGET_MS[stage],
      init_met: INIT_TARGET_MS[stage] === null ? null : initMedian <= INIT_TARGET_MS[stage],
      top_inputs: topInputs(result.metafile!, outfile),
      externals,
      lazy_externals: lazyExternals,
      externals_import_ms_median: externalsOnly.length > 0 ? round(median(externalsOnly), 1) : null,
      without_tracer: { kb: round(stubbedBytes / 1024, 1), init_ms_median: round(median(stubbed), 1) },
      sdk_external: {
        kb: round((await readFile(sdkExternalFile)).length / 1024, 1),
        init_ms_median: round(median(sdkExternal), 1),
      },
      sdk_bundled: sdkFile
        ? { kb: round((await readFile(sdkFile)).length / 1024, 1), init_ms_median: round(median(sdkBundled), 1) }
        : null,
      schemas_whole: schemasWhole
        ? { kb: round(schemasWholeBytes / 1024, 1), init_ms_median: round(median(schemasWhole), 1) }
        : null,
    };
    bundles.push(bundle);
    log(
      `  bundle ${stage}: ${bundle.kb} KB (gzip ${bundle.gzip_kb} KB), init ${bundle.init_ms_median} ms (middle half ${bundle.init_ms_iqr.join('–')} ms; with source maps ${bundle.init_ms_with_source_maps_median} ms, ` +
        `SDK imports alone ${bundle.externals_import_ms_median ?? '-'} ms; without the Tracer ${bundle.without_tracer.kb} KB, ${bundle.without_tracer.init_ms_median} ms; ` +
        `all SDK external (before) ${bundle.sdk_external.kb} KB, ${bundle.sdk_external.init_ms_median} ms; ` +
        `SDK bundled ${bundle.sdk_bundled ? `${bundle.sdk_bundled.kb} KB, ${bundle.sdk_bundled.init_ms_median} ms` : '-'}; ` +
        `schemas whole (before) ${bundle.schemas_whole ? `${bundle.schemas_whole.kb} KB, ${bundle.schemas_whole.init_ms_median} ms` : '-'}); ` +
        `top: ${bundle.top_inputs
          .slice(0, 3)
          .map((t) => `${t.input} ${t.kb} KB`)
          .join(', ')}`,
    );
  }
  return { options: bundling, bundles };
}
