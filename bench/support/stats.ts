/** Small statistics helpers for the benchmarks (all times in milliseconds). */

export interface Summary {
  n: number;
  median: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Nearest-rank percentile of an already sorted array (p in 0..100). */
export function percentileSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    median: percentileSorted(sorted, 50),
    p99: percentileSorted(sorted, 99),
    mean: sorted.length ? sum / sorted.length : Number.NaN,
    min: sorted[0] ?? Number.NaN,
    max: sorted.at(-1) ?? Number.NaN,
  };
}

/** Nearest-rank percentile of unsorted values (p in 0..100). */
export function percentile(values: readonly number[], p: number): number {
  return percentileSorted(
    [...values].sort((a, b) => a - b),
    p,
  );
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Round for reports: 3 significant decimals below 10, 2 below 100, 1 above. */
export function round(value: number, digits?: number): number {
  if (!Number.isFinite(value)) return value;
  const d = digits ?? (Math.abs(value) < 10 ? 3 : Math.abs(value) < 100 ? 2 : 1);
  const f = 10 ** d;
  return Math.round(value * f) / f;
}

export function roundAll(s: Summary, digits?: number): Summary {
  return {
    n: s.n,
    median: round(s.median, digits),
    p99: round(s.p99, digits),
    mean: round(s.mean, digits),
    min: round(s.min, digits),
    max: round(s.max, digits),
  };
}
