import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { BUNDLE_FILE, CHUNKS_DIR } from '../../../infra/stage-bundle.ts';

/**
 * A function's output folder as infra/stage-bundle.ts writes it (the stack's asset): BUNDLE_FILE, the chunks under
 * CHUNKS_DIR, a source map beside each. Read from the files themselves, not from esbuild's metafile, so that the
 * synthesized assets are checked the same way.
 */

/** The createRequire banner every output file starts with (stageBuildOptions). */
export const BANNER = "import { createRequire } from 'node:module';const require = createRequire(import.meta.url);";

/** The code files of the folder (`index.mjs`, `chunks/….mjs`), relative to it. */
export function codeFiles(dir: string): string[] {
  const chunksDir = path.join(dir, CHUNKS_DIR);
  const chunks = existsSync(chunksDir) ? readdirSync(chunksDir).filter((f) => f.endsWith('.mjs')) : [];
  return [BUNDLE_FILE, ...chunks.map((f) => path.join(CHUNKS_DIR, f))];
}

/**
 * The specifiers of a minified ESM file's import statements: esbuild writes them first, after the banner
 * (`import{a as b}from"./chunks/chunk-X.mjs";import"./chunks/chunk-Y.mjs";…`).
 */
export function staticImports(code: string): string[] {
  let rest = code.startsWith(BANNER) ? code.slice(BANNER.length) : code;
  const found: string[] = [];
  const statement = /^\s*import\s*(?:[^;"'()]*?from\s*)?(["'])([^"']+)\1\s*;?/;
  for (let m = statement.exec(rest); m; m = statement.exec(rest)) {
    found.push(m[2]!);
    rest = rest.slice(m[0].length);
  }
  return found;
}

/** The specifiers of a file's `import("…")` calls with a string. */
export function dynamicImports(code: string): string[] {
  return [...code.matchAll(/\bimport\(\s*(["'])([^"']+)\1\s*\)/g)].map((m) => m[2]!);
}

/**
 * What a cold start loads: BUNDLE_FILE and the chunks it imports statically, and, in a traced stage, the chunk with
 * the Tracer (the X-Ray SDK) that functions/shared/powertools.ts imports at init, with its own static imports.
 * Relative to `dir`.
 */
export function initPath(dir: string, traced: boolean): string[] {
  const seen = new Set<string>();
  const read = (file: string) => readFileSync(path.join(dir, file), 'utf8');
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of staticImports(read(file))) if (spec.startsWith('.')) visit(path.join(path.dirname(file), spec));
  };
  visit(BUNDLE_FILE);
  if (traced)
    for (const file of [...seen])
      for (const spec of dynamicImports(read(file))) {
        const target = path.join(path.dirname(file), spec);
        if (spec.startsWith('.') && read(target).includes('AWS_XRAY_DAEMON_ADDRESS')) visit(target);
      }
  return [...seen];
}

/** The file infra/stage-bundle.ts built of a module imported on first use (`chunks/dynamodb-sdk.mjs`), if any. */
export function firstUseChunk(dir: string, module: string): string | undefined {
  const name = path.parse(module).name;
  return codeFiles(dir).find((f) => f === path.join(CHUNKS_DIR, `${name}.mjs`));
}
