/** The inbound webhook request (docs/contract.md#post-webhook). Unknown top-level fields are rejected, not silently dropped. */
import * as v from 'valibot';
import { WEBHOOK_TYPES } from './conversation.ts';
import { isCalendarDate, normalisedTimestamp } from './iso-date.ts';
import {
  canonicalSource,
  MAX_SOURCE_NAME_LENGTH,
  NAME_CHARACTERS,
  nameBreak,
  SOURCE_NAME_PATTERN,
} from './source-identity.ts';
import { MAX_THREAD_ID_LENGTH, THREAD_ID_PATTERN } from './thread.ts';

export const MAX_QUERY_LENGTH = 20_000;
export const MAX_METADATA_BYTES = 16_384;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** The rule of a name (source_system, source_process, thread_id) and where the given one breaks it. */
function nameRule(field: string): (issue: { input: unknown }) => string {
  const rule = `${field} may contain only ${NAME_CHARACTERS}`;
  return ({ input }) => {
    const where = typeof input === 'string' ? nameBreak(input) : null;
    return where === null ? rule : `${rule}: ${where}`;
  };
}

const systemName = (field: string) =>
  v.pipe(
    v.string(`${field} must be a string`),
    v.minLength(1, `${field} is required`),
    v.maxLength(MAX_SOURCE_NAME_LENGTH, `${field} must be at most ${MAX_SOURCE_NAME_LENGTH} characters`),
    v.regex(SOURCE_NAME_PATTERN, nameRule(field)),
  );

const MAX_METADATA_DEPTH = 20;

/** Whether a value nests deeper than MAX_METADATA_DEPTH levels (`{"a": 1}` is one, `{"a": [1]}` two). */
function nestsTooDeep(value: unknown, depth = 0): boolean {
  if (depth > MAX_METADATA_DEPTH) return true;
  if (value === null || typeof value !== 'object') return false;
  return Object.values(value).some((item) => nestsTooDeep(item, depth + 1));
}

/** Where a value (its depth checked first) holds a key of FORBIDDEN_KEYS, as `metadata.a[0].__proto__`; else null. */
function forbiddenKeyAt(value: unknown, at: string): string | null {
  if (value === null || typeof value !== 'object') return null;
  for (const [key, item] of Object.entries(value)) {
    const path = Array.isArray(value) ? `${at}[${key}]` : `${at}.${key}`;
    const found = FORBIDDEN_KEYS.has(key) ? path : forbiddenKeyAt(item, path);
    if (found) return found;
  }
  return null;
}

const UNPAIRED_SURROGATE =
  'must be Unicode text: it holds an unpaired surrogate (a \\uD800-\\uDFFF escape without its pair), which no UTF-8 export can hold';

/**
 * Whether a string (or any key or string of a value nested at most 20 levels: metadata, checked for depth first)
 * holds a UTF-16 surrogate without its pair, as a `\uD800` escape makes one. No UTF-8 text can hold it: the exports
 * would write it as an escape that strict JSON readers (jq) refuse, and DuckDB reads it as U+FFFD
 * (docs/contract.md#post-webhook).
 */
function hasUnpairedSurrogate(value: unknown): boolean {
  if (typeof value === 'string') return /\p{Cs}/u.test(value);
  if (Array.isArray(value)) return value.some(hasUnpairedSurrogate);
  if (value !== null && typeof value === 'object')
    return Object.entries(value).some(([key, item]) => /\p{Cs}/u.test(key) || hasUnpairedSurrogate(item));
  return false;
}

/**
 * Whether a value nested at most 20 levels (metadata, checked for depth first) holds a number JSON.parse read as
 * Infinity (`1e400`): JSON.stringify writes it as null, so the delivery and the exports would carry null in its place.
 */
function hasOverflowingNumber(value: unknown): boolean {
  if (typeof value === 'number') return !Number.isFinite(value);
  if (value !== null && typeof value === 'object') return Object.values(value).some(hasOverflowingNumber);
  return false;
}

/**
 * A character that shows: none of the whitespace JavaScript's trim keeps (U+0085 NEL, which Unicode counts as
 * whitespace), the control characters, and the characters that show nothing (zero-width spaces and joiners, U+FEFF,
 * U+2060, bidirectional marks: Unicode's Default_Ignorable_Code_Point). A query of only those asks nothing, yet ran a
 * whole conversation with the agent.
 */
const VISIBLE = /[^\p{White_Space}\p{Cc}\p{Default_Ignorable_Code_Point}]/u;

/** Found at the query's first visible character (its first, mostly), with no copy of the query made. */
function hasVisibleCharacter(query: string): boolean {
  return VISIBLE.test(query);
}

export const WebhookRequestSchema = v.strictObject(
  {
    query: v.pipe(
      v.string('query must be a string'),
      v.trim(),
      v.minLength(1, 'query is required and must not be blank'),
      v.check(
        hasVisibleCharacter,
        'query is blank: it holds only whitespace, control or invisible characters (such as U+0085, U+200B, U+FEFF)',
      ),
      v.check((q) => !hasUnpairedSurrogate(q), `query ${UNPAIRED_SURROGATE}`),
      // Counted as JavaScript counts a string, in UTF-16 code units: a character outside the Basic Multilingual Plane (an
      // emoji) counts 2, so the question stays within 60 KB of UTF-8 (docs/contract.md#the-manager-agent).
      v.maxLength(
        MAX_QUERY_LENGTH,
        `query must be at most ${MAX_QUERY_LENGTH} characters (UTF-16 code units: an emoji counts as 2)`,
      ),
    ),
    source_system: systemName('source_system'),
    source_process: systemName('source_process'),
    timestamp: v.optional(
      v.pipe(
        v.string('timestamp must be a string'),
        // RFC 3339's lowercase `t`/`z` and leap second, in the form the record keeps.
        v.transform(normalisedTimestamp),
        v.isoTimestamp('timestamp must be an ISO 8601 date-time with a time zone, e.g. 2025-08-13T10:30:45Z'),
        v.check(isCalendarDate, 'timestamp must be a date that exists: its day is past the end of its month'),
        v.description(
          'RFC 3339 date-time with a time zone; a lowercase t/z is recorded uppercase, a leap second (23:59:60Z at the end of a month) as 23:59:59.999Z (docs/contract.md#post-webhook)',
        ),
      ),
    ),
    thread_id: v.optional(
      v.pipe(
        v.string('thread_id must be a string'),
        v.minLength(1, 'thread_id must not be empty'),
        v.maxLength(MAX_THREAD_ID_LENGTH, `thread_id must be at most ${MAX_THREAD_ID_LENGTH} characters`),
        v.regex(THREAD_ID_PATTERN, nameRule('thread_id')),
      ),
    ),
    webhook_type: v.optional(v.picklist(WEBHOOK_TYPES, `webhook_type must be one of ${WEBHOOK_TYPES.join(', ')}`)),
    metadata: v.optional(
      v.pipe(
        // Checked on the raw value: v.record silently drops __proto__/constructor/prototype keys and accepts arrays.
        v.unknown(),
        v.check((m) => m !== null && typeof m === 'object' && !Array.isArray(m), 'metadata must be an object'),
        v.check(
          (m) => !nestsTooDeep(m),
          `metadata must not nest deeper than ${MAX_METADATA_DEPTH} levels ({"a": 1} is one level, {"a": [1]} two)`,
        ),
        v.check(
          (m) => forbiddenKeyAt(m, 'metadata') === null,
          (issue) =>
            `metadata must not contain the keys __proto__, constructor or prototype: ${forbiddenKeyAt(issue.input, 'metadata')} is one`,
        ),
        v.check((m) => !hasUnpairedSurrogate(m), `metadata ${UNPAIRED_SURROGATE}`),
        v.check(
          (m) => !hasOverflowingNumber(m),
          'metadata must not hold a number beyond what JSON numbers carry here (about 1.8e308): it would be delivered and exported as null; send it as a string',
        ),
        v.record(v.string(), v.unknown(), 'metadata must be an object'),
        v.check(
          (m) => Buffer.byteLength(JSON.stringify(m)) <= MAX_METADATA_BYTES,
          `metadata must be at most ${MAX_METADATA_BYTES} bytes as JSON`,
        ),
      ),
    ),
  },
  // valibot uses this one message for unknown keys, missing keys and a non-object input: tell them apart.
  (issue) => {
    if (issue.expected === 'never')
      return 'unknown field: allowed fields are query, source_system, source_process, timestamp, thread_id, webhook_type, metadata';
    const key = issue.path?.[0]?.key;
    return issue.received === 'undefined' && typeof key === 'string'
      ? `${key} is required`
      : 'request body must be an object';
  },
);

export type WebhookRequest = v.InferOutput<typeof WebhookRequestSchema>;

export interface FieldError {
  field: string;
  message: string;
}

export type RequestParseResult =
  | { ok: true; request: WebhookRequest }
  | { ok: false; code: 'INVALID_JSON' | 'VALIDATION_ERROR'; message: string; details: FieldError[] };

/**
 * JSON.parse's reason, without the piece of the body V8 quotes in it (`Unexpected token 'a', "abc…" is not valid
 * JSON`): an answer or a log line never carries the sender's bytes back (a newline would forge a log line, a NUL or a
 * UTF-16 body would write binary). The offending character is named by its code point unless it is printable ASCII.
 */
function jsonSyntaxError(message: string): string {
  const token = /^Unexpected token '([\s\S]+?)', "/.exec(message)?.[1];
  if (token === undefined) return message; // V8's other reasons give a position, never the text
  const code = token.codePointAt(0)!;
  const shown = code >= 0x21 && code <= 0x7e ? `'${token}'` : `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  return `unexpected character ${shown}${code === 0xfeff ? ' (a byte order mark: send UTF-8 without one)' : ''}`;
}

/**
 * The compression a body that is not JSON starts with, as a UTF-8 decoding of it reads the magic bytes (no
 * Content-Encoding is decoded: docs/contract.md#post-webhook), or null: gzip 1F 8B; deflate, which HTTP's
 * `Content-Encoding: deflate` sends in zlib's wrapper, 78 then 01, 5E, 9C or DA (its level; DA may join the next byte
 * into one character, U+0680 to U+06BF); zstd 28 B5 2F FD. No JSON text starts with any of them.
 */
function compressionOf(rawBody: string): string | null {
  if (rawBody.startsWith('\u001f\ufffd')) return 'gzip';
  if (rawBody.startsWith('(\ufffd/\ufffd')) return 'zstd';
  const second = rawBody.charCodeAt(1);
  if (
    rawBody[0] === 'x' &&
    (second === 0x01 || second === 0x5e || second === 0xfffd || (second >= 0x680 && second <= 0x6bf))
  )
    return 'deflate';
  return null;
}

/**
 * Whether a body that is not JSON is UTF-16, as a UTF-8 decoding of it reads it: a NUL beside its first ASCII
 * character (`{` 00 in UTF-16LE, 00 `{` in UTF-16BE), after its byte order mark if it has one (FF FE or FE FF, two
 * U+FFFD). No JSON text holds a NUL outside a string. Without a `charset` saying so (foreignCharsetError), it would
 * otherwise be told only "Expected property name or '}' at position 1".
 */
function isUtf16(rawBody: string): boolean {
  const text = rawBody.startsWith('\ufffd\ufffd') ? rawBody.slice(2) : rawBody;
  const ascii = (c: number) => c === 0x09 || c === 0x0a || c === 0x0d || (c >= 0x20 && c <= 0x7e);
  const [first, second] = [text.charCodeAt(0), text.charCodeAt(1)];
  return (ascii(first) && second === 0) || (first === 0 && ascii(second));
}

/** The charsets a body may be declared in: JSON is UTF-8 (RFC 8259), and ASCII is UTF-8. */
const UTF8_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii', 'ascii']);

/**
 * Why a body declared in another charset than UTF-8 cannot be taken, or null. A body is read as UTF-8 whatever its
 * `charset` says, bytes that are not UTF-8 as U+FFFD (docs/contract.md#post-webhook): a Latin-1 or UTF-16 body sent
 * with `charset=iso-8859-1` or `charset=utf-16` would otherwise lose its accented letters without a word (and a UTF-16
 * one fail as JSON naming only U+FFFD). Refused only when bytes were lost: an ASCII body with any label is UTF-8.
 */
export function foreignCharsetError(contentType: string | undefined, rawBody: string): string | null {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType ?? '')?.[1]?.toLowerCase();
  if (charset === undefined || UTF8_CHARSETS.has(charset) || !rawBody.includes('\ufffd')) return null;
  return `Request body is not valid JSON: it is not UTF-8 (Content-Type says charset=${charset.replace(/[^\x21-\x7e]/g, '?').slice(0, 40)}); a body is read as UTF-8 (JSON is UTF-8, RFC 8259) and its other bytes would be lost: send it as UTF-8`;
}

/**
 * Whether a value nested at most 20 levels (metadata, checked for depth first) holds a number beyond
 * Number.MAX_SAFE_INTEGER: the cheap first look of inexactInteger, which reads the body only when one is there.
 */
function hasUnsafeNumber(value: unknown): boolean {
  if (typeof value === 'number') return Math.abs(value) > Number.MAX_SAFE_INTEGER;
  if (value !== null && typeof value === 'object') return Object.values(value).some(hasUnsafeNumber);
  return false;
}

/** A JSON string (skipped whole) or a number literal, as the body spells them. */
const STRING_OR_NUMBER = /"[^"\\]*(?:\\[\s\S][^"\\]*)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

/**
 * The first integer literal of the body, outside its strings, beyond ±(2^53 − 1), which JSON.parse reads as the
 * nearest double (9007199254740993 as 9007199254740992), or null. Looked for only when the parsed metadata holds a
 * number that large (a float such as 1.5e300 is one too, and is taken: it was written as a double): on every other
 * request this costs one walk over the parsed metadata, not a second reading of the body
 * (docs/contract.md#post-webhook).
 */
function inexactInteger(rawBody: string, metadata: unknown): string | null {
  if (!hasUnsafeNumber(metadata)) return null;
  for (const [literal] of rawBody.matchAll(STRING_OR_NUMBER)) {
    if (literal.startsWith('"') || literal.length < 16 || !/^-?\d+$/.test(literal)) continue;
    const digits = literal.replace('-', '');
    if (BigInt(digits) > BigInt(Number.MAX_SAFE_INTEGER)) return literal;
  }
  return null;
}

/** The smallest body the gateway takes, as an empty body's error shows it. */
const EXAMPLE_BODY = '{"query": "…", "source_system": "…", "source_process": "…"}';

/** Parse the raw body exactly as received. Pure: no I/O, no logging. */
export function parseWebhookRequest(rawBody: string): RequestParseResult {
  let json: unknown;
  try {
    json = JSON.parse(rawBody);
  } catch (error) {
    const compressed = compressionOf(rawBody);
    return {
      ok: false,
      code: 'INVALID_JSON',
      message: `Request body is not valid JSON: ${
        compressed
          ? `it is ${compressed}-compressed; send it uncompressed (no Content-Encoding is decoded)`
          : rawBody.trim() === ''
            ? // Before: V8's "Unexpected end of JSON input", which names no fix (`curl -X POST …/webhook` with no -d).
              `it is empty${rawBody === '' ? '' : ' (only whitespace)'}; send a JSON object: ${EXAMPLE_BODY}`
            : isUtf16(rawBody)
              ? 'it is UTF-16 (a NUL byte beside each ASCII character); send it as UTF-8 (JSON is UTF-8, RFC 8259)'
              : jsonSyntaxError((error as Error).message)
      }`,
      details: [],
    };
  }
  const result = validateWebhookJson(json);
  const inexact = result.ok ? inexactInteger(rawBody, result.request.metadata) : null;
  if (inexact === null) return result;
  const shown = inexact.length > 40 ? `${inexact.slice(0, 40)}…` : inexact;
  const message = `metadata must not hold an integer beyond ±9007199254740991 (2^53 − 1), as ${shown} is: past it a JSON number is read as the nearest double, so 9007199254740993 would be delivered and exported as 9007199254740992; send it as a string`;
  return {
    ok: false,
    code: 'VALIDATION_ERROR',
    message: `Request validation failed: metadata: ${message}`,
    details: [{ field: 'metadata', message }],
  };
}

/**
 * The source_system a body claims, before validation (to pick its signing secret and rate limit), in canonical
 * form; null if it has none.
 */
export function claimedSource(rawBody: string): string | null {
  try {
    const json = JSON.parse(rawBody) as { source_system?: unknown } | null;
    return json && typeof json === 'object' && typeof json.source_system === 'string'
      ? canonicalSource(json.source_system)
      : null;
  } catch {
    return null;
  }
}

/** How long a field's name may be, as an error names it (an unknown field's is the sender's). */
const MAX_SHOWN_FIELD = 100;

/**
 * An unknown field is named as the sender spelled it, up to MAX_SHOWN_FIELD characters: its name is named twice
 * (message and details), so a 200 KB key would make a 400 KB answer, beyond what an execution's cause carries on AWS
 * (this body is the Fail state's cause: the Step Functions API's cause is at most 32,768 characters) and a log line.
 */
function shownField(field: string): string {
  return field.length > MAX_SHOWN_FIELD ? `${field.slice(0, MAX_SHOWN_FIELD)}… (${field.length} characters)` : field;
}

/** Validate an already parsed body. */
function validateWebhookJson(json: unknown): RequestParseResult {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    return {
      ok: false,
      code: 'VALIDATION_ERROR',
      message: 'Request body must be a JSON object',
      details: [
        {
          field: '(body)',
          message: `expected an object, got ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}`,
        },
      ],
    };
  }
  const result = v.safeParse(WebhookRequestSchema, json, { abortPipeEarly: true });
  const forbidden = Object.keys(json).filter((key) => FORBIDDEN_KEYS.has(key));
  if (result.success && forbidden.length === 0) return { ok: true, request: result.output };
  const details = [
    ...forbidden.map((key) => ({ field: key, message: `field '${key}' is not allowed` })),
    ...(result.issues ?? []).map((issue) => ({
      field: shownField(v.getDotPath(issue) ?? '(body)'),
      message: issue.message,
    })),
  ];
  return {
    ok: false,
    code: 'VALIDATION_ERROR',
    message: `Request validation failed: ${details.map((d) => `${d.field}: ${d.message}`).join('; ')}`,
    details,
  };
}
