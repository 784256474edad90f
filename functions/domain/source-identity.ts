/**
 * One identity per source system (and per source process): the name as sent, lowercased, with every run of
 * `.`, `-` and `_` read as one `_`. `Testing.System`, `TESTING_SYSTEM` and `testing-system` are all the source
 * `testing_system`: the record, the conversation id, the idempotency key, the signing secret it must sign with, its
 * rate limit and the list filters all use this one form, so a change of case or separator cannot pass for another
 * source (docs/security.md, "One identity per source").
 */
export const SOURCE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
export const MAX_SOURCE_NAME_LENGTH = 64;

/**
 * The characters of a name a request gives (source_system, source_process, thread_id), as every message about one says
 * it: "letters" alone read as any letter, and `büro` or `café` were refused without saying which or why.
 */
export const NAME_CHARACTERS = "ASCII letters (A-Z, a-z), digits, '_', '-' and '.', starting with a letter or digit";

/**
 * Where a name breaks NAME_CHARACTERS: "it starts with '_'", "character 2 is 'ü' (U+00FC)" (a character that shows
 * nothing by its code alone); null when its characters are right (or it is empty).
 */
export function nameBreak(name: string): string | null {
  const chars = [...name];
  if (chars.length === 0) return null;
  const at = /^[A-Za-z0-9]$/.test(chars[0]!) ? chars.findIndex((c) => !/^[A-Za-z0-9_.-]$/.test(c)) : 0;
  if (at < 0) return null;
  const c = chars[at]!;
  const code = `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  const shown = /^[\x21-\x7e]$/.test(c) ? `'${c}'` : /^[\p{L}\p{N}\p{S}\p{P}]$/u.test(c) ? `'${c}' (${code})` : code;
  return `${at === 0 ? 'it starts with' : `character ${at + 1} is`} ${shown}`;
}

/** What keeps `name` from being a source name, in a message's words (nameBreak, or its length); null if it is one. */
export function sourceNameProblem(name: string): string | null {
  if (name === '') return 'it is empty';
  if (name.length > MAX_SOURCE_NAME_LENGTH) return `it has ${name.length} characters`;
  return nameBreak(name);
}

/** The rule of a source name, as the messages about one say it. */
export const SOURCE_NAME_RULE = `${NAME_CHARACTERS}, at most ${MAX_SOURCE_NAME_LENGTH} characters`;

export function canonicalSource(name: string): string {
  return name.toLowerCase().replace(/[._-]+/g, '_');
}

/**
 * A configuration object keyed by source system (signing secrets, rate limits) with its keys in canonical form.
 * A key that is not a source name, or two keys that name one source (`Crm.Sync` and `crm_sync`), are refused: the
 * operator meant one of them, and picking either silently would apply the other's secret or limit.
 */
export function bySource<T>(entries: Record<string, T>, setting: string): Record<string, T> {
  const out: Record<string, T> = {};
  const spelled: Record<string, string> = {};
  for (const [name, value] of Object.entries(entries)) {
    const problem = sourceNameProblem(name);
    if (problem !== null)
      throw new Error(`${setting}: "${name}" is not a source_system name (${SOURCE_NAME_RULE}): ${problem}`);
    const id = canonicalSource(name);
    if (Object.hasOwn(spelled, id))
      throw new Error(
        `${setting}: "${spelled[id]}" and "${name}" name the same source (${id}): source names ignore case and read . and - as _`,
      );
    spelled[id] = name;
    out[id] = value;
  }
  return out;
}

/**
 * SOURCE_API_KEY_IDS (AWS: the stack sets it from its per-source API keys): `{"<API key id>": "<source_system>"}`,
 * the source each API key belongs to, in canonical form. A request that sends a key may act only as its source.
 */
export function parseApiKeySources(json: string | undefined, name = 'SOURCE_API_KEY_IDS'): Record<string, string> {
  if (!json?.trim()) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new Error(`${name} must be a JSON object of API key id → source_system`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`${name} must be a JSON object`);
  const out: Record<string, string> = {};
  for (const [keyId, source] of Object.entries(parsed)) {
    if (typeof source !== 'string' || !SOURCE_NAME_PATTERN.test(source) || source.length > MAX_SOURCE_NAME_LENGTH)
      throw new Error(`${name}.${keyId}: "${String(source)}" is not a source_system name`);
    out[keyId] = canonicalSource(source);
  }
  return out;
}

/**
 * Whether a request that names `source` may use the API key it came with (`apiKeyId`: API Gateway's
 * `$context.identity.apiKeyId`, locally the id of the matched `x-api-key`), for POST /webhook and GET
 * /conversations/{id} alike. `apiKeySources` is SOURCE_API_KEY_IDS parsed (canonical sources). Null: allowed — no
 * key, no keys configured, or the key is the source's own. Otherwise the message of a 403 SOURCE_MISMATCH: the key
 * belongs to another source, or to none (a key no configured source owns acts as no source).
 */
export function apiKeyMismatch(
  apiKeyId: string | null | undefined,
  source: string,
  apiKeySources: Readonly<Record<string, string>>,
): string | null {
  if (!apiKeyId || Object.keys(apiKeySources).length === 0) return null;
  const owner = Object.hasOwn(apiKeySources, apiKeyId) ? apiKeySources[apiKeyId] : undefined;
  if (owner === canonicalSource(source)) return null;
  return owner === undefined
    ? 'This API key belongs to no configured source_system: it may not act as any source'
    : `This API key belongs to source system ${owner}: it may only act as that source`;
}
