import { printable } from '../../functions/domain/unicode.ts';

/** Text as a terminal shows it literally (every control character written out): functions/domain/unicode.ts. */
export { printable };

/**
 * A long text (an error, a receiver's answer, a question) on one line: white space runs as one space (none at either
 * end), and cut at `max` characters with `…`, so a text cut short does not read as the whole text
 * (`HTTP 404: {"code":"NOT_`). The tables and `conversations show` cut long text this way.
 */
export function cell(text: string | null | undefined, max: number): string {
  const flat = (text ?? '').replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** A plain text table: columns padded to their widest cell, each cell printable. */
export function formatTable(headers: string[], rows: (string | number | null)[][]): string {
  const cells = rows.map((row) => row.map((c) => (c === null || c === undefined ? '-' : printable(String(c)))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}
