/**
 * Conversation ids: `webhook_<YYYYMMDD>_<HHMMSS>_<source>_<process>_<suffix>` in UTC.
 * Every part is lowercase `[a-z0-9]`, so an id is always a safe S3 path segment.
 * Example: 2025-08-13T10:30:45Z, `testing_system`, `phase3_validation`, suffix `abc123`
 * → `webhook_20250813_103045_testing_phase3valid_abc123`.
 */
import { randomBytes } from 'node:crypto';

export const SOURCE_PART_LENGTH = 7;
export const PROCESS_PART_LENGTH = 11;
export const SUFFIX_LENGTH = 10;
export const CONVERSATION_ID_PATTERN = /^webhook_\d{8}_\d{6}_[a-z0-9]{1,7}_[a-z0-9]{1,11}_[a-z0-9]{1,32}$/;

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** Lowercase, drop everything outside [a-z0-9], cut to `max`; never empty. */
export function idPart(value: string, max: number): string {
  const cleaned = value
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(0, max);
  return cleaned === '' ? 'x' : cleaned;
}

/**
 * A random suffix of [a-z0-9]. Ten characters (~51 bits) keep ids of one source, process and second
 * apart: a million ids in the same second collide with probability ~2e-4 (birthday bound).
 */
export function randomSuffix(length = SUFFIX_LENGTH): string {
  let out = '';
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < 252 && out.length < length) out += ALPHABET[b % 36]; // 252 = 7 * 36: no modulo bias
    }
  }
  return out;
}

export interface ConversationIdParts {
  at: Date;
  sourceSystem: string;
  sourceProcess: string;
  suffix?: string;
}

export function buildConversationId({ at, sourceSystem, sourceProcess, suffix }: ConversationIdParts): string {
  const tail = suffix === undefined ? randomSuffix() : idPart(suffix, 32);
  return `${conversationIdPrefix({ at, sourceSystem, sourceProcess })}${tail}`;
}

/**
 * Every id built from these parts starts with this (all but the suffix): what local recovery looks for when it knows
 * a request but not the id Validate gave it (local/engine/recovery.ts).
 */
export function conversationIdPrefix({ at, sourceSystem, sourceProcess }: Omit<ConversationIdParts, 'suffix'>): string {
  const iso = at.toISOString(); // always UTC
  const date = iso.slice(0, 10).replaceAll('-', '');
  const time = iso.slice(11, 19).replaceAll(':', '');
  return `webhook_${date}_${time}_${idPart(sourceSystem, SOURCE_PART_LENGTH)}_${idPart(sourceProcess, PROCESS_PART_LENGTH)}_`;
}

export function isConversationId(value: string): boolean {
  return CONVERSATION_ID_PATTERN.test(value);
}

/** `YYYY/MM/DD` of the id's own date: where its exports live. */
export function conversationDatePath(conversationId: string): string {
  const m = /^webhook_(\d{4})(\d{2})(\d{2})_/.exec(conversationId);
  if (!m) throw new Error(`not a conversation id: ${conversationId}`);
  return `${m[1]}/${m[2]}/${m[3]}`;
}
