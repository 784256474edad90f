/**
 * How each Lambda is built: esbuild bundles `functions/<dir>/handler.ts` into minified ESM, every SDK client the
 * function uses included and tree-shaken, split in two parts (each file's source map beside it):
 * - `index.mjs` (the handler, `index.handler`) and the chunks it imports statically: what the cold start loads;
 * - `chunks/`, one chunk per module the code imports with `await import()` (the DynamoDB and Secrets Manager clients
 *   of the optional stores, functions/shared/clients/dynamodb-sdk.ts and secrets-manager-sdk.ts): loaded on first
 *   use, so a cold start does not pay for them, and still the SDK version the tests ran with, not the runtime's.
 * The stack's functions are built by this module (infra/constructs/stage-function.ts runs it as a script, its output
 * folder the function's asset), and `npm run bench` measures the same bundles (docs/performance.md §3). No CDK import
 * here: the bench and the build script load it alone.
 *
 * Run as a script: `node --import tsx infra/stage-bundle.ts <dir> <outdir>`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type BuildOptions, build, type Plugin } from 'esbuild';

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
 * the sampled 5 % (docs/performance.md §3).
 */
export const UNTRACED_STAGES: readonly HandlerDir[] = ['classify', 'export'];
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

/** Where the chunks go in a function's output folder, beside BUNDLE_FILE: `chunks/<module>-<hash>.mjs`. */
export const CHUNKS_DIR = 'chunks';
/** The modules the stores import on first use, each a chunk of its own named after it (`chunks/dynamodb-sdk-….mjs`). */
export const FIRST_USE_SDK_MODULES = {
  dynamodb: 'functions/shared/clients/dynamodb-sdk.ts',
  secretsManager: 'functions/shared/clients/secrets-manager-sdk.ts',
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

/**
 * The esbuild options one function is built with, without its output folder (`outdir`): the entry is named `index`,
 * so the folder gets BUNDLE_FILE and CHUNKS_DIR.
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
    // Each `await import()` of the code a chunk, loaded when it runs; what both sides use goes in a shared chunk
    // that index.mjs imports statically (on the init path, as it was in the one file).
    splitting: true,
    outExtension: { '.js': path.extname(BUNDLE_FILE) },
    chunkNames: `${CHUNKS_DIR}/[name]-[hash]`,
    mainFields: ['module', 'main'],
    minify: true,
    // Shipped beside each file to decode a stack trace, not loaded at runtime: NODE_OPTIONS=--enable-source-maps
    // would parse the maps at every cold start (×1.3–1.7 the module init, docs/performance.md).
    sourcemap: true,
    sourcesContent: false,
    charset: 'utf8',
    logLevel: 'error',
    // CommonJS dependencies (the X-Ray SDK under Powertools Tracer, parts of the SDK) call require() on Node
    // built-ins. esbuild writes the banner at the top of every output file, each chunk included.
    banner: { js: "import { createRequire } from 'node:module';const require = createRequire(import.meta.url);" },
    external: untraced ? [...CREDENTIAL_FALLBACK_MODULES, TRACER_MODULE] : [...CREDENTIAL_FALLBACK_MODULES],
    plugins: [schemaKeysPlugin],
  };
}

// As a script: build one function into <outdir> (BUNDLE_FILE, CHUNKS_DIR and their maps).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [dir, outdir] = process.argv.slice(2);
  if (!dir || !outdir) {
    process.stderr.write('usage: node --import tsx infra/stage-bundle.ts <functions dir> <outdir>\n');
    process.exit(2);
  }
  // esbuild has printed what failed (logLevel 'error'): the exit code says the rest.
  await build({ ...stageBuildOptions(dir as HandlerDir), outdir }).catch(() => process.exit(1));
}
