/**
 * 3. Lambda bundles: each stage bundled by esbuild with the options infra/constructs/stage-function.ts gives
 * NodejsFunction (read from that file), its size, the imports that dominate it (esbuild metafile), and its cold
 * module-init time: a fresh `node` process importing the bundle, median of several, with and without
 * `--enable-source-maps` (what that flag would cost; the functions run with it only when stage-function.ts sets it).
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { type BuildOptions, build, type Metafile, type Plugin } from 'esbuild';
import { PROJECT_ROOT, RESULTS_DIR } from './support/processes.ts';
import { median, percentile, round } from './support/stats.ts';

export const STAGES = ['validate', 'classify', 'deliver', 'export'] as const;
export type Stage = (typeof STAGES)[number];

/** Size targets (docs/performance.md): the SDK-heavy stages get more room. */
export const SIZE_TARGET_KB: Record<Stage, number> = {
  validate: 250,
  classify: 250,
  deliver: 250,
  export: 600,
};
export const INIT_TARGET_MS = 80;

export interface BundlingOptions {
  source: string;
  /** Options that could not be read from the file and fell back to the values known when this bench was written. */
  defaulted: string[];
  esbuild: BuildOptions;
  /** NODE_OPTIONS of the functions has --enable-source-maps: Node parses each bundle's map at init. */
  source_maps_at_init: boolean;
  /** Stages run with POWERTOOLS_TRACE_ENABLED=false (UNTRACED_STAGES): their init is measured so. */
  untraced_stages: string[];
  /** Left out of the untraced stages' bundles besides `esbuild.external` (TRACER_MODULE). */
  untraced_external: string[];
}

export interface BundleResult {
  stage: Stage;
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
  /** The same with --enable-source-maps (counted in init_met only when the functions run with it). */
  init_ms_with_source_maps_median: number;
  /** Whole process (node start-up + import), for reference. */
  process_ms_median: number;
  init_target_ms: number;
  init_met: boolean;
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

/** Read NodejsFunction's bundling options from infra/constructs/stage-function.ts (the CDK app is not synthesized). */
export async function bundlingOptions(): Promise<BundlingOptions> {
  const source = path.join(PROJECT_ROOT, 'infra', 'constructs', 'stage-function.ts');
  const text = await readFile(source, 'utf8');
  const block = /bundling:\s*\{([\s\S]*?)\n\s{6}\},/.exec(text)?.[1] ?? text;
  const defaulted: string[] = [];
  /** In the `bundling` block, or (`inFile`) anywhere in the file: a module-level constant. */
  const pick = <T>(name: string, re: RegExp, parse: (m: RegExpExecArray) => T, fallback: T, inFile = false): T => {
    const m = re.exec(inFile ? text : block);
    if (!m) {
      defaulted.push(name);
      return fallback;
    }
    return parse(m);
  };
  const list = (s: string) => [...s.matchAll(/'([^']+)'/g)].map((m) => m[1]!);
  const runtimeMatch = /Runtime\.NODEJS_(\d+)_X/.exec(text);
  if (!runtimeMatch) defaulted.push('runtime');
  const runtimeTarget = runtimeMatch ? `node${runtimeMatch[1]}` : 'node22';
  const minify = pick('minify', /minify:\s*(true|false)/, (m) => m[1] === 'true', true);
  const sourcemap = pick('sourceMap', /sourceMap:\s*(true|false)/, (m) => m[1] === 'true', true);
  const sourcesContent = pick('sourcesContent', /sourcesContent:\s*(true|false)/, (m) => m[1] === 'true', false);
  const target = pick('target', /target:\s*'([^']+)'/, (m) => m[1]!, runtimeTarget);
  const format = pick(
    'format',
    /format:\s*OutputFormat\.(ESM|CJS)/,
    (m) => (m[1] === 'ESM' ? 'esm' : 'cjs') as 'esm' | 'cjs',
    'esm',
  );
  const mainFields = pick('mainFields', /mainFields:\s*\[([^\]]*)\]/, (m) => list(m[1]!), ['module', 'main']);
  const banner = pick(
    'banner',
    /banner:\s*"([^"]*)"/,
    (m) => m[1]!,
    "import { createRequire } from 'node:module';const require = createRequire(import.meta.url);",
  );
  const external = pick(
    'LAZY_MODULES',
    /const LAZY_MODULES\s*=\s*\[([^\]]*)\]/,
    (m) => list(m[1]!),
    ['@aws-sdk/*'],
    true,
  );
  const tracerModule = pick(
    'TRACER_MODULE',
    /const TRACER_MODULE\s*=\s*'([^']+)'/,
    (m) => m[1]!,
    '@aws-lambda-powertools/tracer',
    true,
  );
  return {
    source: path.relative(PROJECT_ROOT, source),
    defaulted,
    source_maps_at_init: /NODE_OPTIONS:\s*'[^']*--enable-source-maps/.test(text),
    untraced_stages: list(/UNTRACED_STAGES[^=]*=\s*\[([^\]]*)\]/.exec(text)?.[1] ?? ''),
    untraced_external: [tracerModule],
    // What NodejsFunction's Bundling passes to esbuild for these props (aws-cdk-lib/aws-lambda-nodejs/lib/bundling.js).
    esbuild: {
      bundle: true,
      platform: 'node',
      target,
      format,
      minify,
      sourcemap,
      sourcesContent,
      external,
      mainFields,
      banner: { js: banner },
      logLevel: 'error',
      metafile: true,
      absWorkingDir: PROJECT_ROOT,
    },
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
    // As the function's environment has it (UNTRACED_STAGES of stage-function.ts).
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
  const bundling = await bundlingOptions();
  const outRoot = path.join(RESULTS_DIR, 'bundles');
  await rm(outRoot, { recursive: true, force: true });
  const bundles: BundleResult[] = [];
  for (const stage of STAGES) {
    const outdir = path.join(outRoot, stage);
    await mkdir(outdir, { recursive: true });
    const outfile = path.join(outdir, bundling.esbuild.format === 'esm' ? 'index.mjs' : 'index.js');
    const traced = !bundling.untraced_stages.includes(stage);
    // As stage-function.ts builds it: an untraced stage without the Tracer.
    const withoutTracer = (external: string[]) => (traced ? external : [...external, ...bundling.untraced_external]);
    const result = await build({
      ...bundling.esbuild,
      external: withoutTracer(bundling.esbuild.external ?? []),
      entryPoints: [path.join(PROJECT_ROOT, 'functions', stage, 'handler.ts')],
      outfile,
    });
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
    const stubbedFile = path.join(outdir, 'without-tracer', path.basename(outfile));
    await mkdir(path.dirname(stubbedFile), { recursive: true });
    await build({
      ...bundling.esbuild,
      entryPoints: [path.join(PROJECT_ROOT, 'functions', stage, 'handler.ts')],
      outfile: stubbedFile,
      plugins: [noTracer],
    });
    const stubbedBytes = (await readFile(stubbedFile)).length;
    const stubbed: number[] = [];
    const externalsOnly: number[] = [];
    let sdkFile: string | null = null;
    if (externals.length + lazyExternals.length > 0) {
      sdkFile = path.join(outdir, 'sdk-bundled', path.basename(outfile));
      await mkdir(path.dirname(sdkFile), { recursive: true });
      await build({
        ...bundling.esbuild,
        external: withoutTracer([]),
        entryPoints: [path.join(PROJECT_ROOT, 'functions', stage, 'handler.ts')],
        outfile: sdkFile,
      });
    }
    // The previous design, for comparison in the same run: every @aws-sdk/* package left to the runtime.
    const sdkExternalFile = path.join(outdir, 'sdk-external', path.basename(outfile));
    await mkdir(path.dirname(sdkExternalFile), { recursive: true });
    await build({
      ...bundling.esbuild,
      external: ['@aws-sdk/*'],
      entryPoints: [path.join(PROJECT_ROOT, 'functions', stage, 'handler.ts')],
      outfile: sdkExternalFile,
    });
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
      init_target_ms: INIT_TARGET_MS,
      init_met: (bundling.source_maps_at_init ? Math.max(initMedian, median(withMaps)) : initMedian) <= INIT_TARGET_MS,
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
    };
    bundles.push(bundle);
    log(
      `  bundle ${stage}: ${bundle.kb} KB (gzip ${bundle.gzip_kb} KB), init ${bundle.init_ms_median} ms (middle half ${bundle.init_ms_iqr.join('–')} ms; with source maps ${bundle.init_ms_with_source_maps_median} ms, ` +
        `SDK imports alone ${bundle.externals_import_ms_median ?? '-'} ms; without the Tracer ${bundle.without_tracer.kb} KB, ${bundle.without_tracer.init_ms_median} ms; ` +
        `all SDK external (before) ${bundle.sdk_external.kb} KB, ${bundle.sdk_external.init_ms_median} ms; ` +
        `SDK bundled ${bundle.sdk_bundled ? `${bundle.sdk_bundled.kb} KB, ${bundle.sdk_bundled.init_ms_median} ms` : '-'}); ` +
        `top: ${bundle.top_inputs
          .slice(0, 3)
          .map((t) => `${t.input} ${t.kb} KB`)
          .join(', ')}`,
    );
  }
  return { options: bundling, bundles };
}
