/**
 * How each Lambda is built: esbuild bundles `functions/<dir>/handler.ts` into one minified ESM file (`index.mjs`,
 * its source map beside it) with the SDK clients it needs at init, tree-shaken. The stack's functions are built by
 * this module (infra/constructs/stage-function.ts runs it as a script), and `npm run bench` measures the same
 * bundles (docs/performance.md §3). No CDK import here: the bench and the build script load it alone.
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
 * Left to the SDK the Node.js 22 runtime provides, loaded on first use only (dynamic import): the clients of the
 * optional stores (DynamoDB for idempotency and status, Secrets Manager for signing secrets) and the credential
 * providers other than the environment's (Lambda gives credentials in the environment).
 */
export const LAZY_MODULES = [
  '@aws-sdk/client-dynamodb',
  '@aws-sdk/client-secrets-manager',
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

/** The esbuild options one function is built with (without its output file). */
export function stageBuildOptions(dir: HandlerDir): BuildOptions {
  const untraced = UNTRACED_STAGES.includes(dir);
  return {
    entryPoints: [path.join(PROJECT_ROOT, 'functions', dir, 'handler.ts')],
    absWorkingDir: PROJECT_ROOT,
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    mainFields: ['module', 'main'],
    minify: true,
    // Shipped beside the bundle to decode a stack trace, not loaded at runtime: NODE_OPTIONS=--enable-source-maps
    // would parse the map at every cold start (×1.3–1.7 the module init, docs/performance.md).
    sourcemap: true,
    sourcesContent: false,
    charset: 'utf8',
    logLevel: 'error',
    // CommonJS dependencies (the X-Ray SDK under Powertools Tracer) call require() on Node built-ins.
    banner: { js: "import { createRequire } from 'node:module';const require = createRequire(import.meta.url);" },
    external: untraced ? [...LAZY_MODULES, TRACER_MODULE] : LAZY_MODULES,
    plugins: [schemaKeysPlugin],
  };
}

// As a script: build one function into <outdir> (`index.mjs` and its map).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [dir, outdir] = process.argv.slice(2);
  if (!dir || !outdir) {
    process.stderr.write('usage: node --import tsx infra/stage-bundle.ts <functions dir> <outdir>\n');
    process.exit(2);
  }
  // esbuild has printed what failed (logLevel 'error'): the exit code says the rest.
  await build({ ...stageBuildOptions(dir as HandlerDir), outfile: path.join(outdir, BUNDLE_FILE) }).catch(() =>
    process.exit(1),
  );
}
