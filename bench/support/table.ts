/** Plain-text tables for the console summary. */
export function formatTable(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function verdict(met: boolean | null): string {
  return met === null ? 'n/a' : met ? 'MET' : 'NOT MET';
}

/**
 * A section's header line: its title, then how far into the run it starts (`… 19 s into the run`), which says where
 * the time went. A section that starts with the run (the first: under a second in) gets no figure: it printed
 * `… 0 s`, which read as a duration the bench had not measured.
 */
export function sectionHeader(title: string, runStartedMs: number, nowMs: number): string {
  const seconds = Math.round((nowMs - runStartedMs) / 1000);
  return seconds < 1 ? `\n${title}` : `\n${title} … ${seconds} s into the run`;
}
