import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { bySource } from '../../functions/domain/source-identity.ts';

/**
 * The local counterpart of the stack's per-source API keys: API_KEYS='{"<source_system>": "<key>"}'. With any key
 * configured, POST /webhook and GET /conversations/{id} need `x-api-key` (a missing or unknown one: 403
 * INVALID_API_KEY, as API Gateway answers), the request carries the key's id into the handlers (`api_key_id`, as
 * API Gateway's `$context.identity.apiKeyId`), and the handlers map ids to sources with SOURCE_API_KEY_IDS, which
 * the gateway sets from these keys — so a key used for another source is refused (403 SOURCE_MISMATCH) exactly as
 * on AWS. The ids, never the keys, reach the handlers.
 */
export interface LocalApiKeys {
  /** Whether any key is configured (then every request needs one). */
  readonly required: boolean;
  /** The key `value` matches: its id and its source (canonical); null when no configured key matches. */
  match(value: string | undefined): { id: string; source: string } | null;
  /** SOURCE_API_KEY_IDS for the handlers: `{"<id>": "<source_system>"}`. */
  readonly sourceApiKeyIds: string;
}

const MIN_KEY_LENGTH = 20;

export function parseApiKeys(raw: string | undefined): LocalApiKeys {
  const keys: { id: string; source: string; key: Buffer }[] = [];
  if (raw?.trim()) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = null;
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new Error('API_KEYS must be a JSON object {"<source_system>": "<key>"}');
    for (const [source, key] of Object.entries(bySource(parsed as Record<string, unknown>, 'API_KEYS'))) {
      if (typeof key !== 'string' || key.length < MIN_KEY_LENGTH)
        throw new Error(`API_KEYS.${source}: the key must be a string of at least ${MIN_KEY_LENGTH} characters`);
      if (keys.some((k) => k.key.equals(Buffer.from(key))))
        throw new Error(`API_KEYS.${source}: the key is another source's too; each source needs its own`);
      keys.push({ id: `local-key-${source}`, source, key: Buffer.from(key) });
    }
  }
  return {
    required: keys.length > 0,
    match(value) {
      if (!value) return null;
      const given = Buffer.from(value);
      const found = keys.find((k) => k.key.length === given.length && timingSafeEqual(k.key, given));
      return found ? { id: found.id, source: found.source } : null;
    },
    sourceApiKeyIds: JSON.stringify(Object.fromEntries(keys.map((k) => [k.id, k.source]))),
  };
}

/**
 * The API key a request came with, as API Gateway checks it before anything else: `{}` when no keys are in use,
 * `{id, source}` for a configured key, null when keys are in use and the request has none or an unknown one (403
 * INVALID_API_KEY).
 */
export function requestApiKey(
  keys: LocalApiKeys | undefined,
  req: IncomingMessage,
): { id?: string; source?: string } | null {
  if (!keys?.required) return {};
  const header = req.headers['x-api-key'];
  return keys.match(Array.isArray(header) ? header[0] : header);
}
