/**
 * HTML with escaping by default: every value interpolated into an `html` template is escaped unless it is itself
 * the result of `html` (or `raw`). Conversation content is untrusted (queries, answers, receiver errors, ids from
 * URLs): it only ever reaches a page through here, its control characters written out as `conversations show` writes
 * them (`\u0000`, `\u001b`, a bidirectional override `\u202e`: printable in functions/domain/unicode.ts; the data stays
 * as stored), its tabs and line breaks kept: a browser drops a NUL, and an override turns the text around it.
 */
import { printable } from '../../functions/domain/unicode.ts';

export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(value: unknown): string {
  return printable(String(value), true).replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

function render(value: unknown): string {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(value);
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0]!;
  values.forEach((value, i) => {
    out += render(value) + strings[i + 1]!;
  });
  return new SafeHtml(out);
}

/**
 * A table's caption, what it lists, for a screen reader (which names a table by it, and reads it on entering): out of
 * sight, the section's heading above says it to the eye.
 */
export const caption = (text: SafeHtml | string): SafeHtml => html`<caption class="sr">${text}</caption>`;
