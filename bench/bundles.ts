/**
 * 3. Lambda bundles: each stage built as the stack builds it (infra/stage-bundle.ts), the size of its init path
 * (index.mjs, the chunks it imports statically, the Tracer's where traced) and of its whole asset, the imports that
 * dominate the init path (esbuild metafile), its cold module-init time (a fresh `node` process importing index.mjs,
 * median of several), and the first-use import of its DynamoDB chunk against the design before (the package loaded
 * from node_modules as the runtime's SDK was), beside what-ifs and the designs before (`--enable-source-maps`, no
 * Tracer, every SDK package bundled, every SDK package external, the SDK clients' schemas kept whole).
 */
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { BuildOptions, Metafile, Plugin } from 'esbuild';
import {
  BUNDLE_FILE,
  buildFunction,
  CREDENTIAL_FALLBACK_MODULES,
  FIRST_USE_SDK_MODULES,
  FUNCTION_DIRS,
  type HandlerDir,
  stageBuildOptions,
  TRACER_MODULE,
  UNTRACED_STAGES,
} from '../infra/stage-bundle.ts';
import { PROJECT_ROOT, RESULTS_DIR } from './support/processes.ts';
import { median, percentile, round } from './support/stats.ts';

/**
 * Size targets of the init path (docs/performance.md): the SDK-heavy functions get more room (Export's S3 client, the
 * scheduler's SQS and Step Functions clients).
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
/** The packages the design before left to the Lambda runtime's SDK and imported on first use. */
const RUNTIME_SDK_CLIENTS = ['@aws-sdk/client-dynamodb', '@aws-sdk/client-secrets-manager'];
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
  /** The init path: index.mjs, the chunks it imports statically, and the Tracer's chunk in a traced stage. */
  bytes: number;
  kb: number;
  gzip_kb: number;
  /** The init path's files, relative to the function's folder. */
  init_files: string[];
  map_kb: number;
  size_target_kb: number;
  size_met: boolean;
  /**
   * The whole asset: index.mjs and every first-use module (source maps apart). No target: the size limits hold for
   * what a cold start loads (SIZE_TARGET_KB); the asset's is Lambda's (250 MB unzipped).
   */
  asset_kb: number;
  asset_files: number;
  asset_map_kb: number;
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
  /** Biggest contributors to the init path (bytes in output), by package or by our own folder. */
  top_inputs: { input: string; kb: number; share: number }[];
  /** External imports loaded at init (none: every SDK client is bundled). */
  externals: string[];
  /** External imports loaded on first use only (dynamic import()): the credential providers Lambda never needs. */
  lazy_externals: string[];
  /** Importing only the init-path externals in a fresh process; null where there are none. */
  externals_import_ms_median: number | null;
  /**
   * The first DynamoDB call's import, after the cold init in the same fresh process: the function's DynamoDB chunk
   * (with the chunks it adds), against the design before (a build whose DynamoDB and Secrets Manager clients are
   * external: `@aws-sdk/client-dynamodb` loaded from node_modules, as the runtime's SDK was), alternating. Null where
   * the function has no DynamoDB chunk.
   */
  dynamodb_first_use: {
    /** What the first use loads that the init path has not: the chunk and its static imports. */
    kb: number;
    files: string[];
    ms_median: number;
    ms_runs: number[];
    runtime_sdk_ms_median: number;
    runtime_sdk_ms_runs: number[];
    /** The cold init of both builds in those same runs, and the design before's init path. */
    init_ms_median: number;
    runtime_sdk_init_ms_median: number;
    runtime_sdk_init_kb: number;
  } | null;
  /** What-if: the same bundle with @aws-lambda-powertools/tracer replaced by a no-op (no X-Ray SDK, no cls-hooked). */
  without_tracer: { kb: number; init_ms_median: number };
  /** What-if: every SDK package bundled (the credential providers too), init path. */
  sdk_bundled: { kb: number; init_ms_median: number } | null;
  /** A design before, measured beside it: every @aws-sdk/* package external (the runtime's SDK loaded at init). */
  sdk_external: { kb: number; init_ms_median: number };
  /** The design before: the SDK clients' schemas kept whole (no literal-schema-keys plugin); null where its init path is the same. */
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
    esbuild: { ...esbuild, entryPoints: undefined, external: [...CREDENTIAL_FALLBACK_MODULES] },
    plugins: (plugins ?? []).map((p) => p.name),
    untraced_stages: [...UNTRACED_STAGES],
    untraced_external: [TRACER_MODULE],
  };
}

/** The Tracer's module (or the no-tracer stub): functions/shared/powertools.ts imports it at init when tracing is on. */
const TRACER_ENTRY = /@aws-lambda-powertools[\\/]tracer[\\/]|no-tracer/;

/**
 * The output files a cold start loads (paths as the metafile has them): the entry's, the chunks imported statically,
 * and in a traced stage the Tracer's chunk with its own static imports.
 */
function initOutputs(metafile: Metafile, traced: boolean): string[] {
  const outputs = metafile.outputs;
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file) || !outputs[file]) return;
    seen.add(file);
    for (const i of outputs[file].imports) if (i.kind === 'import-statement' && !i.external) visit(i.path);
  };
  visit(entryOutput(metafile));
  if (traced)
    for (const file of [...seen])
      for (const i of outputs[file]!.imports)
        if (i.kind === 'dynamic-import' && !i.external && TRACER_ENTRY.test(outputs[i.path]?.entryPoint ?? ''))
          visit(i.path);
  return [...seen];
}

function entryOutput(metafile: Metafile): string {
  return Object.keys(metafile.outputs).find((f) => path.basename(f) === BUNDLE_FILE)!;
}

/** The output of a module imported on first use, and what it loads that `loaded` has not: [chunk, its closure]. */
function firstUseOutputs(metafile: Metafile, module: string, loaded: string[]): [string, string[]] | null {
  const outputs = metafile.outputs;
  const chunk = Object.keys(outputs).find((f) => outputs[f]!.entryPoint === module);
  if (!chunk) return null;
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file) || loaded.includes(file)) return;
    seen.add(file);
    for (const i of outputs[file]!.imports) if (i.kind === 'import-statement' && !i.external) visit(i.path);
  };
  visit(chunk);
  return [chunk, [...seen]];
}

const bytesOf = (metafile: Metafile, files: string[]) => files.reduce((n, f) => n + metafile.outputs[f]!.bytes, 0);
const kbOf = (bytes: number) => round(bytes / 1024, 1);

function inputGroup(input: string): string {
  const nm = input.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = input.slice(nm + 'node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  const parts = input.split('/');
  return parts.length > 2 ? `${parts[0]}/${parts[1]}/ (ours)` : `${input} (ours)`;
}

function topInputs(metafile: Metafile, files: string[], limit = 6): { input: string; kb: number; share: number }[] {
  const groups = new Map<string, number>();
  let total = 0;
  for (const file of files)
    for (const [input, { bytesInOutput }] of Object.entries(metafile.outputs[file]!.inputs)) {
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

/**
 * import() the module(s) in a fresh process; returns [import ms, whole-process ms, first-use ms], the last the time
 * of importing `firstUse` afterwards in the same process (as a handler's first call does), 0 without it.
 */
async function coldInit(
  file: string | string[],
  sourceMaps: boolean,
  cwd = PROJECT_ROOT,
  traced = true,
  firstUse?: string,
): Promise<[number, number, number]> {
  const specifiers = (Array.isArray(file) ? file : [pathToFileURL(file).href]).map((f) => JSON.stringify(f));
  const then = firstUse ? JSON.stringify(pathToFileURL(firstUse).href) : null;
  const script =
    `const t0 = performance.now(); for (const s of [${specifiers.join(',')}]) await import(s); const t1 = performance.now();` +
    (then ? `await import(${then}); const t2 = performance.now();` : 'const t2 = t1;') +
    `process.stdout.write(JSON.stringify([t1 - t0, t1, t2 - t1]));`;
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
  return JSON.parse(out) as [number, number, number];
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
    /** A variant of the stage's build, into `outdir/<name>/`: its metafile, index.mjs, and its init path's bytes. */
    const variant = async (name: string, change: BuildOptions, tracedInit = traced) => {
      const dir = path.join(outdir, name);
      const metafile = await buildFunction({ ...buildOptions, ...change }, dir);
      return {
        metafile,
        file: path.join(dir, BUNDLE_FILE),
        initBytes: bytesOf(metafile, initOutputs(metafile, tracedInit)),
      };
    };
    const metafile = await buildFunction(buildOptions, outdir);
    await writeFile(path.join(outdir, 'meta.json'), JSON.stringify(metafile));
    const outfile = path.join(outdir, BUNDLE_FILE);
    const init = initOutputs(metafile, traced);
    const code = init.map((f) => metafile.outputs[f]!.bytes).reduce((a, b) => a + b, 0);
    const gzip = (await Promise.all(init.map((f) => readFile(path.join(PROJECT_ROOT, f))))).reduce(
      (n, b) => n + gzipSync(b).length,
      0,
    );
    const maps = async (files: string[]) =>
      (
        await Promise.all(files.map((f) => readFile(path.join(PROJECT_ROOT, `${f}.map`)).catch(() => Buffer.alloc(0))))
      ).reduce((n, b) => n + b.length, 0);
    const assetFiles = Object.keys(metafile.outputs).filter((f) => !f.endsWith('.map'));
    const assetBytes = bytesOf(metafile, assetFiles);
    const builtins = new Set(builtinModules);
    const externalImports = (dynamic: boolean) =>
      [
        ...new Set(
          Object.values(metafile.inputs).flatMap((i) =>
            i.imports
              .filter(
                (x) =>
                  x.external &&
                  !x.path.startsWith('node:') &&
                  !x.path.startsWith('./') &&
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
    // The first DynamoDB call: the chunk, against the design before (the clients external, from node_modules).
    const dynamodb = firstUseOutputs(metafile, FIRST_USE_SDK_MODULES.dynamodb, init);
    const runtimeSdk = dynamodb
      ? await variant('runtime-sdk', { external: [...(buildOptions.external ?? []), ...RUNTIME_SDK_CLIENTS] })
      : null;
    const runtimeSdkChunk = runtimeSdk
      ? firstUseOutputs(runtimeSdk.metafile, FIRST_USE_SDK_MODULES.dynamodb, [])?.[0]
      : undefined;
    // The Tracer bundled (as a traced stage has it) but replaced by a no-op.
    const stubbed = await variant(
      'without-tracer',
      { external: [...CREDENTIAL_FALLBACK_MODULES], plugins: [...(buildOptions.plugins ?? []), noTracer] },
      true,
    );
    const sdkFile =
      externals.length + lazyExternals.length > 0
        ? await variant('sdk-bundled', { external: traced ? [] : [TRACER_MODULE] })
        : null;
    // A design before, for comparison in the same run: every @aws-sdk/* package left to the runtime (the Tracer in
    // every stage then).
    const sdkExternalFile = await variant('sdk-external', { external: ['@aws-sdk/*'] }, true);
    // The design before this one: the SDK clients' schemas kept whole. Measured where its init path differs.
    const schemasWholeFile = await variant('schemas-whole', { plugins: [] });
    const schemasWhole = schemasWholeFile.initBytes === code ? null : ([] as number[]);
    const stubbedRuns: number[] = [];
    const externalsOnly: number[] = [];
    const sdkExternal: number[] = [];
    const sdkBundled: number[] = [];
    const plain: number[] = [];
    const withMaps: number[] = [];
    const whole: number[] = [];
    const firstUse: number[] = [];
    const firstUseRuntime: number[] = [];
    const firstUseInit: number[] = [];
    const firstUseRuntimeInit: number[] = [];
    // Alternate the modes so that machine noise hits them alike.
    for (let i = 0; i < options.runs; i++) {
      const [ms, total] = await coldInit(outfile, false, PROJECT_ROOT, traced);
      plain.push(ms);
      whole.push(total);
      withMaps.push((await coldInit(outfile, true, PROJECT_ROOT, traced))[0]);
      if (dynamodb && runtimeSdk && runtimeSdkChunk) {
        const [bundledInit, , bundledFirst] = await coldInit(
          outfile,
          false,
          PROJECT_ROOT,
          traced,
          path.join(PROJECT_ROOT, dynamodb[0]),
        );
        const [runtimeInit, , runtimeFirst] = await coldInit(
          runtimeSdk.file,
          false,
          PROJECT_ROOT,
          traced,
          path.join(PROJECT_ROOT, runtimeSdkChunk),
        );
        firstUse.push(bundledFirst);
        firstUseInit.push(bundledInit);
        firstUseRuntime.push(runtimeFirst);
        firstUseRuntimeInit.push(runtimeInit);
      }
      stubbedRuns.push((await coldInit(stubbed.file, false))[0]);
      // Resolved from the bundle's folder, as the bundle resolves them.
      if (externals.length > 0) externalsOnly.push((await coldInit(externals, false, outdir))[0]);
      if (sdkFile) sdkBundled.push((await coldInit(sdkFile.file, false, PROJECT_ROOT, traced))[0]);
      // The previous design: every stage loaded the Tracer.
      sdkExternal.push((await coldInit(sdkExternalFile.file, false))[0]);
      schemasWhole?.push((await coldInit(schemasWholeFile.file, false, PROJECT_ROOT, traced))[0]);
    }
    const kb = code / 1024;
    const initMedian = median(plain);
    const bundle: BundleResult = {
      stage,
      bytes: code,
      kb: round(kb, 1),
      gzip_kb: kbOf(gzip),
      init_files: init.map((f) => path.relative(path.relative(PROJECT_ROOT, outdir), f)),
      map_kb: kbOf(await maps(init)),
      size_target_kb: SIZE_TARGET_KB[stage],
      size_met: kb <= SIZE_TARGET_KB[stage],
      asset_kb: kbOf(assetBytes),
      asset_files: assetFiles.length,
      asset_map_kb: kbOf(await maps(assetFiles)),
      init_ms_median: round(initMedian, 1),
      init_ms_iqr: [round(percentile(plain, 25), 1), round(percentile(plain, 75), 1)],
      init_ms_runs: plain.map((v) => round(v, 1)),
      init_ms_with_source_maps_median: round(median(withMaps), 1),
      process_ms_median: round(median(whole), 1),
      init_target_ms: INIT_TARGET_MS[stage],
      init_met: INIT_TARGET_MS[stage] === null ? null : initMedian <= INIT_TARGET_MS[stage],
      top_inputs: topInputs(metafile, init),
      externals,
      lazy_externals: lazyExternals,
      externals_import_ms_median: externalsOnly.length > 0 ? round(median(externalsOnly), 1) : null,
      dynamodb_first_use: dynamodb
        ? {
            kb: kbOf(bytesOf(metafile, dynamodb[1])),
            files: dynamodb[1].map((f) => path.relative(path.relative(PROJECT_ROOT, outdir), f)),
            ms_median: round(median(firstUse), 1),
            ms_runs: firstUse.map((v) => round(v, 1)),
            runtime_sdk_ms_median: round(median(firstUseRuntime), 1),
            runtime_sdk_ms_runs: firstUseRuntime.map((v) => round(v, 1)),
            init_ms_median: round(median(firstUseInit), 1),
            runtime_sdk_init_ms_median: round(median(firstUseRuntimeInit), 1),
            runtime_sdk_init_kb: kbOf(runtimeSdk!.initBytes),
          }
        : null,
      without_tracer: { kb: kbOf(stubbed.initBytes), init_ms_median: round(median(stubbedRuns), 1) },
      sdk_external: { kb: kbOf(sdkExternalFile.initBytes), init_ms_median: round(median(sdkExternal), 1) },
      sdk_bundled: sdkFile ? { kb: kbOf(sdkFile.initBytes), init_ms_median: round(median(sdkBundled), 1) } : null,
      schemas_whole: schemasWhole
        ? { kb: kbOf(schemasWholeFile.initBytes), init_ms_median: round(median(schemasWhole), 1) }
        : null,
    };
    bundles.push(bundle);
    const first = bundle.dynamodb_first_use;
    log(
      `  bundle ${stage}: init path ${bundle.kb} KB in ${bundle.init_files.length} files (gzip ${bundle.gzip_kb} KB), asset ${bundle.asset_kb} KB in ${bundle.asset_files} files; ` +
        `init ${bundle.init_ms_median} ms (middle half ${bundle.init_ms_iqr.join('–')} ms; with source maps ${bundle.init_ms_with_source_maps_median} ms, ` +
        `SDK imports alone ${bundle.externals_import_ms_median ?? '-'} ms); ` +
        `first DynamoDB import ${first ? `${first.ms_median} ms (chunk ${first.kb} KB), runtime-style package ${first.runtime_sdk_ms_median} ms (init beside them ${first.init_ms_median} ms, before ${first.runtime_sdk_init_ms_median} ms with ${first.runtime_sdk_init_kb} KB)` : '-'}; ` +
        `without the Tracer ${bundle.without_tracer.kb} KB, ${bundle.without_tracer.init_ms_median} ms; ` +
        `all SDK external (before) ${bundle.sdk_external.kb} KB, ${bundle.sdk_external.init_ms_median} ms; ` +
        `SDK bundled ${bundle.sdk_bundled ? `${bundle.sdk_bundled.kb} KB, ${bundle.sdk_bundled.init_ms_median} ms` : '-'}; ` +
        `schemas whole (before) ${bundle.schemas_whole ? `${bundle.schemas_whole.kb} KB, ${bundle.schemas_whole.init_ms_median} ms` : '-'}; ` +
        `top: ${bundle.top_inputs
          .slice(0, 3)
          .map((t) => `${t.input} ${t.kb} KB`)
          .join(', ')}`,
    );
  }
  return { options: bundling, bundles };
}
