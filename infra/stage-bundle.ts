/**
 * How each Lambda is built: esbuild bundles `functions/<dir>/handler.ts` into minified ESM, every SDK client the
 * function uses included and tree-shaken, in two parts (each file's source map beside it):
 * - `index.mjs` (the handler, `index.handler`), one file: what the cold start loads;
 * - `chunks/<module>.mjs`, one self-contained file per module the code imports with `await import()` on first use
 *   (the DynamoDB and Secrets Manager clients of the optional stores, the scheduler's S3 client for a given-up
 *   delivery's export: FIRST_USE_SDK_MODULES), built on its own with the same options: a cold start does not pay for it, and it is still the SDK version the tests ran with, not the
 *   runtime's. On its own, not as an esbuild split chunk: with code splitting, the SDK files both sides reach (their
 *   protocols share index files) went into a chunk on the init path with what only the first-use client uses
 *   (Export's init path +16.5 KB, docs/performance.md §3).
 * The stack's functions are built by this module (infra/constructs/stage-function.ts runs it as a script, its output
 * folder the function's asset), and `npm run bench` measures the same bundles (docs/performance.md §3). No CDK import
 * here: the bench and the build script load it alone.
 *
 * Run as a script: `node --import tsx infra/stage-bundle.ts <dir> <outdir>`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type BuildOptions, build, type Metafile, type Plugin } from 'esbuild';

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The workflow's Lambda stages, each `functions/<stage>/handler.ts` exporting `handler`. */
export const STAGES = ['validate', 'classify', 'deliver', 'export'] as const;
export type Stage = (typeof STAGES)[number];
/** Functions outside the workflow, built the same way (`functions/<name>/handler.ts`). */
export type HandlerDir = Stage | 'redelivery-scheduler' | 'conversation-status';
/** Every function the stack deploys: the stages, the status route's and the redelivery scheduler. */
export const FUNCTION_DIRS: readonly HandlerDir[] = [...STAGES, 'conversation-status', 'redelivery-scheduler'];

/** The bundle's file name (ESM): the function's handler is `index.handler`. */
export const BUNDLE_FILE = 'index.mjs';

/**
 * Stages whose I/O is not worth the Tracer's cold start: they run with POWERTOOLS_TRACE_ENABLED=false and are built
 * without the Tracer (the X-Ray SDK, ~120 KB and 20–30 ms of each cold init); Lambda's active tracing still records
 * their segment in the conversation's trace. Classify does no I/O; Export's four S3 PUTs are timed in its
 * WEBHOOK_CONVERSATION_EXPORTED log line (`s3_write_ms`) for every conversation, where X-Ray would show them for
 * the sampled 5 %; the status route makes one DynamoDB read per poll, and its cold start is what a polling client
 * waits on (docs/performance.md §3).
 */
export const UNTRACED_STAGES: readonly HandlerDir[] = ['classify', 'export', 'conversation-status'];
/** Left out of the untraced stages' bundles: functions/shared/powertools.ts imports it only when tracing is on. */
export const TRACER_MODULE = '@aws-lambda-powertools/tracer';
/**
 * The credential providers of the SDK's default chain after the environment's, and what only they use: left out of
 * every bundle (external), since Lambda gives a function its credentials in the environment and the chain imports
 * the others (on first use, `await import()`) only when those are missing. Everything else the SDK clients use is
 * bundled, whatever the runtime ships.
 */
export const CREDENTIAL_FALLBACK_MODULES = [
  '@aws-sdk/credential-provider-http',
  '@aws-sdk/credential-provider-ini',
  '@aws-sdk/credential-provider-login',
  '@aws-sdk/credential-provider-process',
  '@aws-sdk/credential-provider-sso',
  '@aws-sdk/credential-provider-web-identity',
  '@aws-sdk/nested-clients',
  '@aws-sdk/token-providers',
  '@smithy/credential-provider-imds',
];

/** Where the first-use modules go in a function's output folder, beside BUNDLE_FILE: `chunks/<module>.mjs`. */
export const CHUNKS_DIR = 'chunks';
/** The modules the stores import on first use, each a file of its own named after it (`chunks/dynamodb-sdk.mjs`). */
export const FIRST_USE_SDK_MODULES = {
  dynamodb: 'functions/shared/clients/dynamodb-sdk.ts',
  secretsManager: 'functions/shared/clients/secrets-manager-sdk.ts',
  /** The redelivery scheduler's, for the export of a delivery it gives up (functions/shared/given-up.ts). */
  s3: 'functions/shared/clients/s3-sdk.ts',
} as const;

/** An SDK client's generated schemas: `dist-es/schemas/` of an `@aws-sdk/client-…` package. */
const SDK_SCHEMAS_FILE = /[\\/]@aws-sdk[\\/]client-[^\\/]+[\\/]dist-es[\\/]schemas[\\/][^\\/]+\.js$/;

const STRING_LITERAL = /"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/g;

/**
 * `{ [_hH]: _CT }` → `{ "httpHeader": _CT }` in a generated schemas file, where `_hH` is that file's top-level
 * `const _hH = "httpHeader";` and is declared nowhere else in it. The same object, but esbuild can now tell that
 * a schema nobody uses has no side effects and leaves it out: a computed key might call `toString()`, so before this
 * it kept every schema of the client (S3: 485 of them, 65 KB of Export's bundle, where PutObject needs a few).
 */
export function literalSchemaKeys(source: string): string {
  // Only where no name can be shadowed: a file of declarations, without a function that takes parameters (the
  // schemas' thunks are `() => X$`) or a template literal. Otherwise the file is left as it is (bigger, not wrong).
  const code = source.replace(STRING_LITERAL, '""');
  if (/\b(?:function|class)\b|`/.test(code) || [...code.matchAll(/(\S*)\s*=>/g)].some((m) => !m[1]!.endsWith('()')))
    return source;
  const declared = new Map<string, number>();
  for (const m of code.matchAll(/\b(?:const|let|var)\s+(_[A-Za-z0-9_]*)\b/g))
    declared.set(m[1]!, (declared.get(m[1]!) ?? 0) + 1);
  const values = new Map<string, string>();
  for (const m of source.matchAll(/^const (_[A-Za-z0-9_]*) = ("[^"\\\n]*");$/gm))
    if (declared.get(m[1]!) === 1) values.set(m[1]!, m[2]!);
  // Strings are matched first and kept as they are: a `[_h]:` inside one is text, not a key.
  return source.replace(new RegExp(`(${STRING_LITERAL.source})|\\[(_[A-Za-z0-9_]*)\\]:`, 'g'), (match, str, name) =>
    str === undefined && values.has(name) ? `${values.get(name)}:` : match,
  );
}

const schemaKeysPlugin: Plugin = {
  name: 'literal-schema-keys',
  setup(b) {
    b.onLoad({ filter: SDK_SCHEMAS_FILE }, async (args) => ({
      contents: literalSchemaKeys(await readFile(args.path, 'utf8')),
      loader: 'js',
    }));
  },
};

/** The output file of a first-use module, relative to BUNDLE_FILE: `./chunks/<module>.mjs`. */
const firstUseFile = (module: string) => `./${CHUNKS_DIR}/${path.parse(module).name}${path.extname(BUNDLE_FILE)}`;
const FIRST_USE_FILES = new Map(
  Object.values(FIRST_USE_SDK_MODULES).map((m) => [path.join(PROJECT_ROOT, m), firstUseFile(m)] as const),
);

/** The code's imports of a first-use module become imports of its own file, built beside the bundle (buildFunction). */
const firstUsePlugin: Plugin = {
  name: 'first-use-modules',
  setup(b) {
    b.onResolve({ filter: /-sdk\.ts$/ }, (args) => {
      const file = FIRST_USE_FILES.get(path.resolve(args.resolveDir, args.path));
      return file ? { path: file, external: true } : undefined;
    });
  },
};

/**
 * The esbuild options one function's bundle is built with, without its output folder (`outdir`): the entry is named
 * `index`, so the folder gets BUNDLE_FILE. buildFunction adds the first-use modules.
 */
export function stageBuildOptions(dir: HandlerDir): BuildOptions {
  const untraced = UNTRACED_STAGES.includes(dir);
  return {
    entryPoints: { [path.parse(BUNDLE_FILE).name]: path.join(PROJECT_ROOT, 'functions', dir, 'handler.ts') },
    absWorkingDir: PROJECT_ROOT,
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    outExtension: { '.js': path.extname(BUNDLE_FILE) },
    mainFields: ['module', 'main'],
    minify: true,
    // Shipped beside each file to decode a stack trace, not loaded at runtime: NODE_OPTIONS=--enable-source-maps
    // would parse the maps at every cold start (×1.3–1.7 the module init, docs/performance.md).
    sourcemap: true,
    sourcesContent: false,
    charset: 'utf8',
    logLevel: 'error',
    // CommonJS dependencies (the X-Ray SDK under Powertools Tracer, parts of the SDK) call require() on Node
    // built-ins. Every output file starts with it, the first-use modules' included.
    banner: { js: "import { createRequire } from 'node:module';const require = createRequire(import.meta.url);" },
    external: untraced ? [...CREDENTIAL_FALLBACK_MODULES, TRACER_MODULE] : [...CREDENTIAL_FALLBACK_MODULES],
    plugins: [schemaKeysPlugin],
  };
}

/**
 * Build one function into `outdir`: BUNDLE_FILE with `options` (stageBuildOptions, or a variant of it the bench
 * measures), then each first-use module it imports, on its own with the same options, into CHUNKS_DIR. Returns the
 * builds' metafiles as one (each first-use module's output has that module as its `entryPoint`).
 */
export async function buildFunction(options: BuildOptions, outdir: string): Promise<Metafile> {
  const plugins = [...(options.plugins ?? []), firstUsePlugin];
  const main = await build({ ...options, plugins, outdir, metafile: true });
  const metafile: Metafile = { inputs: { ...main.metafile.inputs }, outputs: { ...main.metafile.outputs } };
  const imported = new Set(
    Object.values(main.metafile.inputs).flatMap((i) => i.imports.filter((x) => x.external).map((x) => x.path)),
  );
  for (const module of Object.values(FIRST_USE_SDK_MODULES)) {
    if (!imported.has(firstUseFile(module))) continue;
    const entry = path.join(CHUNKS_DIR, path.parse(module).name);
    const own = await build({ ...options, entryPoints: { [entry]: module }, outdir, metafile: true });
    Object.assign(metafile.inputs, own.metafile.inputs);
    Object.assign(metafile.outputs, own.metafile.outputs);
  }
  return metafile;
}

// As a script: build one function into <outdir> (BUNDLE_FILE, CHUNKS_DIR and their maps).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [dir, outdir] = process.argv.slice(2);
  if (!dir || !outdir) {
    process.stderr.write('usage: node --import tsx infra/stage-bundle.ts <functions dir> <outdir>\n');
    process.exit(2);
  }
  // esbuild has printed what failed (logLevel 'error'): the exit code says the rest.
  await buildFunction(stageBuildOptions(dir as HandlerDir), outdir).catch(() => process.exit(1));
}
