/**
 * Unicode text the exports can hold (docs/contract.md#the-manager-agent): a UTF-16 surrogate without its pair (what a
 * `\ud800` escape in an agent's JSON makes) has no UTF-8 form, so JSON.stringify writes it as that escape, which jq
 * refuses and DuckDB and Athena read as U+FFFD. The gateway writes U+FFFD in its place, as a UTF-8 decoder does for a
 * byte it cannot read.
 */

/** With the u flag, \p{Cs} matches a surrogate only when it is not half of a pair. */
const UNPAIRED = /\p{Cs}/gu;

/** `text` with each unpaired surrogate replaced by U+FFFD. */
export function wellFormedText(text: string): string {
  return text.replace(UNPAIRED, '\uFFFD');
}

/**
 * `value` (JSON data nested at most a few dozen levels: an agent's answer, checked for depth first) with each unpaired
 * surrogate of its strings and keys replaced by U+FFFD, and how many were replaced; the value itself when none was.
 */
export function wellFormedValue(value: unknown): { value: unknown; replaced: number } {
  if (typeof value === 'string') {
    const replaced = value.match(UNPAIRED)?.length ?? 0;
    return { value: replaced === 0 ? value : wellFormedText(value), replaced };
  }
  if (value === null || typeof value !== 'object') return { value, replaced: 0 };
  let replaced = 0;
  const entries = Object.entries(value).map(([key, item]) => {
    const keyReplaced = key.match(UNPAIRED)?.length ?? 0;
    const inner = wellFormedValue(item);
    replaced += keyReplaced + inner.replaced;
    return [keyReplaced === 0 ? key : wellFormedText(key), inner.value] as const;
  });
  if (replaced === 0) return { value, replaced: 0 };
  return { value: Array.isArray(value) ? entries.map(([, item]) => item) : Object.fromEntries(entries), replaced };
}

/**
 * JSON text as JSON.stringify writes it, with each unpaired surrogate's escape (`\ud800`: JSON.stringify escapes a
 * surrogate only when it is unpaired, and writes a backslash of the data as `\\`) replaced by U+FFFD: what every
 * export is written through, so that no export holds text jq refuses, whatever put it in the record.
 */
export function wellFormedJson(json: string): string {
  if (!json.includes('\\ud')) return json;
  return json.replace(/(?<!\\)((?:\\\\)*)\\ud[89a-f][0-9a-f]{2}/g, '$1\uFFFD');
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is what it is for
const CONTROL = /\r(?!\n)|[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const LAYOUT = /[\t\n]|\r\n?/g;
const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\r\n': '\\r\\n' };
const escaped = (c: string) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * Text as a terminal or a page shows it literally: every control character (NUL, ESC of an ANSI or OSC sequence, CR,
 * BEL, C1), the Unicode line separators and the bidirectional overrides written as `\n`, `\r`, `\t` or `\uXXXX`. A
 * question, an answer or a receiver's body is the sender's text: printed raw, it could recolour, retitle or rewrite the
 * operator's screen, or (a NUL, which a browser drops) go unseen. `layout`: tabs and line breaks (`\n`, `\r\n`) are
 * kept as the page lays them out (a receiver's body, in lines); a lone CR is still written out.
 */
export function printable(text: string, layout = false): string {
  return layout ? text.replace(CONTROL, escaped) : text.replace(CONTROL, escaped).replace(LAYOUT, escaped);
}
