/**
 * The arguments of the bench's entry points (docs/performance.md, docs/development.md), checked before anything runs:
 * a misspelt flag or `--help` must not start a run of minutes, and a bad value is one line, not a stack trace.
 */
export class UsageError extends Error {}

const SECTIONS = ['cost', 'bundles', 'gateway'];

export const BENCH_USAGE = `usage: npm run bench [-- [--quick] [cost] [bundles] [gateway]]
  no section   every figure of docs/performance.md (about 4 minutes on 2 cores)
  --quick      2 s per load level: a smoke run
  cost         the cost model only (bench/results/cost.json)
  bundles      the Lambda bundles and their cold init only
  gateway      the gateway's throughput and latency only (about 3 minutes)`;

export type BenchArgs = { help: true } | { help: false; quick: boolean; sections: string[] };

/** `npm run bench -- [--quick] [section…]`. */
export function parseBenchArgs(args: string[]): BenchArgs {
  if (args.includes('--help') || args.includes('-h')) return { help: true };
  let quick = false;
  const sections: string[] = [];
  for (const arg of args) {
    if (arg === '--quick') quick = true;
    else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
    else if (SECTIONS.includes(arg)) sections.push(arg);
    else throw new UsageError(`unknown bench section ${arg}: choose from ${SECTIONS.join(', ')} (or none for all)`);
  }
  return { help: false, quick, sections };
}

/**
 * A script's optional counts, in order (`node --import tsx bench/s3-uploads.ts [uploads] [page]`): each a positive
 * whole number, its fallback when not given; or `help`.
 */
export function parseCounts<const N extends string>(
  args: string[],
  counts: readonly { name: N; fallback: number }[],
): Record<N, number> | 'help' {
  if (args.includes('--help') || args.includes('-h')) return 'help';
  if (args.length > counts.length) {
    const most = counts.length === 1 ? 'one argument' : `${counts.length} arguments`;
    throw new UsageError(`takes at most ${most}, ${counts.map((c) => c.name).join(' and ')}; got ${args.join(' ')}`);
  }
  const parsed = {} as Record<N, number>;
  counts.forEach(({ name, fallback }, i) => {
    const arg = args[i];
    if (arg !== undefined && !/^[1-9]\d*$/.test(arg))
      throw new UsageError(`${name} must be a positive whole number; got "${arg}"`);
    parsed[name] = arg === undefined ? fallback : Number(arg);
  });
  return parsed;
}

/** A script's one optional count (`npx tsx bench/chaos-kill9.ts [kills=30]`): `parseCounts` of one. */
export function parseCount(args: string[], fallback: number, name: string): number | 'help' {
  const parsed = parseCounts(args, [{ name, fallback }]);
  return parsed === 'help' ? 'help' : parsed[name]!;
}

/** Run `parse`; on `--help` print the usage and exit 0, on a bad argument say so with the usage and exit 2. */
export function argsOrExit<T>(parse: () => T | 'help' | { help: true }, usage: string): Exclude<T, 'help'> {
  let parsed: T | 'help' | { help: true };
  try {
    parsed = parse();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${error.message}\n\n${usage}\n`);
    process.exit(2);
  }
  if (
    parsed === 'help' ||
    (typeof parsed === 'object' && parsed !== null && 'help' in parsed && parsed.help === true)
  ) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  return parsed as Exclude<T, 'help'>;
}
