/**
 * The receivers' run-time state (functions/domain/endpoints.ts: configuration and health): one port, two adapters
 * chosen by configuration, like the attempt log beside it.
 * - DELIVERIES_TABLE_NAME: DynamoDB (AWS). One item per webhook type (`endpoint#<type>`) holding both, changed with
 *   UpdateItem expressions so that concurrent Delivers never lose a count; the outbound rate is a conditional counter
 *   per time window (`rate#<type>`), shared by every Lambda. Reads are kept for ENDPOINT_CACHE_TTL_MS per process
 *   (a Lambda delivering a burst does one GetItem per type every few seconds, not one per delivery); writes are never
 *   cached: each goes to the table as one atomic expression, and what it returns refreshes the cached read.
 * - DELIVERIES_DIR: one JSON file per type under `endpoints/`, changed under a file lock (the running gateway and the
 *   command line both write it); the rate is counted in memory (locally only the gateway delivers).
 * - neither: every receiver is healthy, unpaused, unlimited, at its configured URL.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type {
  AttributeValue,
  BatchGetItemCommandOutput,
  DynamoDBClient,
  KeysAndAttributes,
} from '@aws-sdk/client-dynamodb';
import { WEBHOOK_TYPES, type WebhookType } from '../domain/conversation.ts';
import {
  afterFailure,
  afterSuccess,
  type BreakerPolicy,
  changesUrl,
  type Endpoint,
  type EndpointConfig,
  type EndpointHealth,
  NEW_HEALTH,
  rateWindow,
  resumedHealth,
  shouldDisable,
  windowStart,
} from '../domain/endpoints.ts';
import { conditionFailed, dynamoDb } from './clients/dynamodb.ts';
import { readDataTextKept } from './kept-files.ts';
import { type LockWait, readJsonFile, UnreadableFileError, withFileLock, writeJsonFileAtomic } from './local-files.ts';
import { settings } from './settings.ts';

/** A change of configuration: a value sets it, null clears it (back to the deployed default), absent leaves it. */
export type EndpointChange = {
  url?: string | null;
  rate_per_second?: number | null;
  paused?: boolean;
};

/**
 * A receiver after a change of configuration; `new_url`: the change gave it another URL, so the old URL's health was
 * forgotten (docs/operations.md#receivers).
 */
export type Reconfigured = Endpoint & { new_url?: true };

export type TokenResult = { ok: true } | { ok: false; retryInMs: number };

/**
 * `signal` (Deliver's; functions/shared/clients/request-limits.ts, budgetSignal): the caller's deadline ends the
 * DynamoDB calls with an AbortError. The files are local and ignore it.
 */
export interface EndpointStore {
  get(type: WebhookType, options?: { consistent?: boolean; signal?: AbortSignal | undefined }): Promise<Endpoint>;
  list(): Promise<Endpoint[]>;
  /**
   * A URL other than the one configured (or clearing it) is a new receiver: its health starts new (NEW_HEALTH: no
   * streak, breaker, probe lease or Retry-After hold of the old URL), its pause is kept. The same URL changes no health;
   * `deployedUrl` (the one delivered to while none is configured) makes setting it, or clearing a URL equal to it, the
   * same URL too (changesUrl).
   */
  configure(
    type: WebhookType,
    change: EndpointChange,
    now: Date,
    deployedUrl?: string,
    wait?: LockWait,
  ): Promise<Reconfigured>;
  /**
   * Unpause, and forget a disable and the failure streak (the history of successes and failures is kept). `wait`: how
   * long the local store waits for the receiver's lock at most (the console's bound), as configure's.
   */
  resume(type: WebhookType, now: Date, wait?: LockWait): Promise<Endpoint>;
  recordSuccess(type: WebhookType, now: Date, signal?: AbortSignal): Promise<EndpointHealth>;
  /**
   * `disabledNow`: this failure disabled the receiver (exactly one caller is told). `retryAfterMs`: the answer's
   * Retry-After, which holds every delivery of the type until then (retry_after_until).
   */
  recordFailure(
    type: WebhookType,
    error: string,
    now: Date,
    policy: BreakerPolicy,
    signal?: AbortSignal,
    retryAfterMs?: number,
  ): Promise<{ health: EndpointHealth; disabledNow: boolean }>;
  /** Take the probe lease of a failing receiver until `until`; false when another probe holds it. */
  acquireProbe(type: WebhookType, now: Date, until: Date, signal?: AbortSignal): Promise<boolean>;
  /** One attempt's worth of the outbound rate, or how long until the next window. */
  takeToken(type: WebhookType, ratePerSecond: number, now: Date, signal?: AbortSignal): Promise<TokenResult>;
}

// ---------------------------------------------------------------------------------------------------- DynamoDB

/**
 * How long a Lambda reuses a receiver it read (docs/operations.md#receivers): an operator's change (URL, rate, pause,
 * resume) reaches every Deliver within this time, without a restart or a deploy.
 */
export const ENDPOINT_CACHE_TTL_MS = 5_000;

/**
 * How often `list` asks again for the receivers a BatchGetItem left unprocessed (the table's throughput, or a
 * partition's), waiting LIST_BACKOFF_MS, then twice that, and so on between asks. Never a partial list: a receiver
 * left unread would read as never configured (healthy, unpaused, at the deployed URL), so `list` throws instead: the
 * schedule then publishes no endpoint metrics that run (functions/shared/events.ts), `endpoints list --aws` fails.
 */
const LIST_ATTEMPTS = 4;
const LIST_BACKOFF_MS = 50;

class EndpointsUnreadable extends Error {
  override name = 'EndpointsUnreadable';
}

type Item = Record<string, AttributeValue>;
const endpointKey = (type: WebhookType): Item => ({ pk: { S: `endpoint#${type}` }, sk: { S: 'endpoint' } });
const HEALTH_TEXT = [
  'failing_since',
  'last_success_at',
  'last_failure_at',
  'last_error',
  'probe_until',
  'disabled_at',
  'retry_after_until',
];

function endpointFromItem(type: WebhookType, item: Item | undefined): Endpoint {
  const text = (name: string) => item?.[name]?.S ?? null;
  const config: EndpointConfig = {};
  if (item?.url?.S) config.url = item.url.S;
  if (item?.rate_per_second?.N) config.rate_per_second = Number(item.rate_per_second.N);
  if (item?.paused?.BOOL) config.paused = true;
  if (item?.paused_at?.S) config.paused_at = item.paused_at.S;
  if (item?.updated_at?.S) config.updated_at = item.updated_at.S;
  if (item?.secrets_fingerprint?.S) config.secrets_fingerprint = item.secrets_fingerprint.S;
  if (item?.secrets_changed_at?.S) config.secrets_changed_at = item.secrets_changed_at.S;
  const health = { ...NEW_HEALTH, consecutive_failures: Number(item?.consecutive_failures?.N ?? 0) };
  for (const name of HEALTH_TEXT) (health as Record<string, unknown>)[name] = text(name);
  return { webhook_type: type, config, health };
}

/** The placeholders an UpdateItem gave the attributes it sets or removes (`#s0`, `:s0`, `#r0`, …). */
interface Placeholders {
  name(attribute: string): string | undefined;
  value(attribute: string): string | undefined;
}

/** A ConditionExpression on an UpdateItem, written with that UpdateItem's own placeholders, and any more it needs. */
interface Condition {
  expression: string;
  values?: Record<string, AttributeValue>;
}

/**
 * The condition under which setting `url` (null: clearing it) gives the item another receiver (changesUrl, as one
 * expression on the item as it is when written): its URL, else the deployed one, is another than the one after. It
 * names `url` and the new URL with the placeholders the update SETs (or REMOVEs) it with: DynamoDB takes one
 * ExpressionAttributeNames and one ExpressionAttributeValues per request, for the update and the condition alike.
 */
function newUrlCondition(url: string | null, deployedUrl: string | undefined) {
  return (p: Placeholders): Condition => {
    const name = p.name('url')!;
    if (url === null)
      return deployedUrl === undefined
        ? { expression: `attribute_exists(${name})` }
        : {
            expression: `attribute_exists(${name}) AND ${name} <> :deployed`,
            values: { ':deployed': { S: deployedUrl } },
          };
    const value = p.value('url')!;
    // Setting the deployed URL where none is configured delivers where it did.
    if (url === deployedUrl) return { expression: `attribute_exists(${name}) AND ${name} <> ${value}` };
    return { expression: `attribute_not_exists(${name}) OR ${name} <> ${value}` };
  };
}

export class DynamoEndpointStore implements EndpointStore {
  /** The last read or written item of each type, and until when (by `clock`) a `get` may return it. */
  private readonly cache = new Map<WebhookType, { endpoint: Endpoint; until: number }>();
  private readonly clock: () => number;
  private readonly cacheTtlMs: number;
  private readonly wait: (ms: number) => Promise<unknown>;

  /**
   * `client`: the command line's (its region); the handlers use the process's. `cacheTtlMs` (0: read every time),
   * `clock` (epoch ms) and `wait` (the pause before `list` asks again for unprocessed keys) are injected by tests.
   */
  constructor(
    private readonly table: string,
    private readonly client?: DynamoDBClient,
    options: { cacheTtlMs?: number; clock?: () => number; wait?: (ms: number) => Promise<unknown> } = {},
  ) {
    this.cacheTtlMs = options.cacheTtlMs ?? ENDPOINT_CACHE_TTL_MS;
    this.clock = options.clock ?? Date.now;
    this.wait = options.wait ?? sleep;
  }

  /** A `consistent` read always asks the table; otherwise a read of the last ENDPOINT_CACHE_TTL_MS is reused. */
  async get(
    type: WebhookType,
    options: { consistent?: boolean; signal?: AbortSignal | undefined } = {},
  ): Promise<Endpoint> {
    const cached = this.cache.get(type);
    if (!options.consistent && cached && cached.until > this.clock()) return cached.endpoint;
    const { sdk, db } = await dynamoDb(this.client);
    const out = await db.send(
      new sdk.GetItemCommand({ TableName: this.table, Key: endpointKey(type), ConsistentRead: options.consistent }),
      { abortSignal: options.signal },
    );
    return this.remember(type, out.Item);
  }

  /** The item as the table returned it (a read, or a write's ALL_NEW), kept for the next reads. */
  private remember(type: WebhookType, item: Item | undefined): Endpoint {
    const endpoint = endpointFromItem(type, item);
    if (this.cacheTtlMs > 0) this.cache.set(type, { endpoint, until: this.clock() + this.cacheTtlMs });
    return endpoint;
  }

  /**
   * Every type's item, read consistently with one BatchGetItem, asked again for the keys it leaves unprocessed
   * (LIST_ATTEMPTS); throws EndpointsUnreadable if some are still unread.
   */
  async list(): Promise<Endpoint[]> {
    const { sdk, db } = await dynamoDb(this.client);
    const items: Item[] = [];
    let keys: KeysAndAttributes['Keys'] = WEBHOOK_TYPES.map(endpointKey);
    for (let attempt = 1; ; attempt++) {
      const out: BatchGetItemCommandOutput = await db.send(
        new sdk.BatchGetItemCommand({ RequestItems: { [this.table]: { Keys: keys, ConsistentRead: true } } }),
      );
      items.push(...(out.Responses?.[this.table] ?? []));
      keys = out.UnprocessedKeys?.[this.table]?.Keys;
      if (!keys?.length) break;
      if (attempt >= LIST_ATTEMPTS)
        throw new EndpointsUnreadable(
          `${keys.length} of ${WEBHOOK_TYPES.length} receivers still unprocessed by DynamoDB after ${attempt} reads of ${this.table}`,
        );
      await this.wait(LIST_BACKOFF_MS * 2 ** (attempt - 1));
    }
    return WEBHOOK_TYPES.map((type) =>
      endpointFromItem(
        type,
        items.find((i) => i.pk?.S === `endpoint#${type}`),
      ),
    );
  }

  /** SET and REMOVE attributes of one type's item (created if missing), optionally only if `condition` holds. */
  private async update(
    type: WebhookType,
    set: Record<string, AttributeValue>,
    remove: string[],
    condition?: Condition | ((placeholders: Placeholders) => Condition),
    signal?: AbortSignal,
    /** Attributes SET only where the item has none yet (`if_not_exists`). */
    kept: Record<string, AttributeValue> = {},
  ) {
    const { sdk, db } = await dynamoDb(this.client);
    const names: Record<string, string> = {};
    const values: Record<string, AttributeValue> = {};
    const sets = Object.entries(set).map(([name, value], i) => {
      names[`#s${i}`] = name;
      values[`:s${i}`] = value;
      return `#s${i} = :s${i}`;
    });
    for (const [i, [name, value]] of Object.entries(kept).entries()) {
      names[`#k${i}`] = name;
      values[`:k${i}`] = value;
      sets.push(`#k${i} = if_not_exists(#k${i}, :k${i})`);
    }
    const removes = remove.map((name, i) => {
      names[`#r${i}`] = name;
      return `#r${i}`;
    });
    const expression = [
      sets.length ? `SET ${sets.join(', ')}` : '',
      removes.length ? `REMOVE ${removes.join(', ')}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    // The condition names what this update SETs (`#sN = :sN`) or REMOVEs (`#rN`) with the same placeholders.
    const setAt = (attribute: string) => Object.keys(set).indexOf(attribute);
    const placeholders: Placeholders = {
      name: (attribute) =>
        setAt(attribute) >= 0
          ? `#s${setAt(attribute)}`
          : remove.includes(attribute)
            ? `#r${remove.indexOf(attribute)}`
            : undefined,
      value: (attribute) => (setAt(attribute) >= 0 ? `:s${setAt(attribute)}` : undefined),
    };
    const written = typeof condition === 'function' ? condition(placeholders) : condition;
    const out = await db.send(
      new sdk.UpdateItemCommand({
        TableName: this.table,
        Key: endpointKey(type),
        UpdateExpression: expression,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: { ...values, ...written?.values },
        ...(written ? { ConditionExpression: written.expression } : {}),
        ReturnValues: 'ALL_NEW',
      }),
      { abortSignal: signal },
    );
    return this.remember(type, out.Attributes);
  }

  async configure(type: WebhookType, change: EndpointChange, now: Date, deployedUrl?: string): Promise<Reconfigured> {
    const set: Record<string, AttributeValue> = { updated_at: { S: now.toISOString() } };
    const remove: string[] = [];
    if (change.url !== undefined) {
      if (change.url === null) remove.push('url');
      else set.url = { S: change.url };
    }
    if (change.rate_per_second !== undefined) {
      if (change.rate_per_second === null) remove.push('rate_per_second');
      else set.rate_per_second = { N: String(change.rate_per_second) };
    }
    if (change.paused === true) set.paused = { BOOL: true };
    if (change.paused === false) remove.push('paused', 'paused_at');
    // A pause of a paused receiver keeps since when it is paused (paused_at is there only while it is).
    const kept = change.paused === true ? { paused_at: { S: now.toISOString() } } : undefined;
    if (change.url === undefined) return this.update(type, set, remove, undefined, undefined, kept);
    // Another URL is a new receiver: in the same UpdateItem, the old URL's health goes, on the condition that the
    // item's URL is another (read in the write: two operators setting it at once reset it once). The same URL again
    // fails the condition and is written without touching the health.
    const newUrl = newUrlCondition(change.url, deployedUrl);
    try {
      const reset = await this.update(
        type,
        { ...set, consecutive_failures: { N: '0' } },
        [...remove, ...HEALTH_TEXT],
        newUrl,
        undefined,
        kept,
      );
      return { ...reset, new_url: true };
    } catch (e) {
      if (!conditionFailed(e)) throw e;
      return this.update(type, set, remove, undefined, undefined, kept);
    }
  }

  /**
   * The type's delivery secrets were changed (`endpoints set --secret --aws`): what they are now, by fingerprint. The
   * same secrets marked again keep the time they began to sign (as on files): the condition reads the item's
   * fingerprint in the write, and a repeat only touches `updated_at`.
   */
  async markSecrets(type: WebhookType, fingerprint: string, now: Date): Promise<Endpoint> {
    const at = { S: now.toISOString() };
    try {
      return await this.update(
        type,
        { updated_at: at, secrets_fingerprint: { S: fingerprint }, secrets_changed_at: at },
        [],
        (p) => {
          const fp = p.name('secrets_fingerprint')!;
          const since = p.name('secrets_changed_at')!;
          return {
            expression: `attribute_not_exists(${since}) OR attribute_not_exists(${fp}) OR ${fp} <> ${p.value('secrets_fingerprint')!}`,
          };
        },
      );
    } catch (e) {
      if (!conditionFailed(e)) throw e;
      return this.update(type, { updated_at: at }, []);
    }
  }

  resume(type: WebhookType, now: Date): Promise<Endpoint> {
    return this.update(type, { updated_at: { S: now.toISOString() }, consecutive_failures: { N: '0' } }, [
      'paused',
      'paused_at',
      'failing_since',
      'probe_until',
      'disabled_at',
      'retry_after_until',
    ]);
  }

  async recordSuccess(type: WebhookType, now: Date, signal?: AbortSignal): Promise<EndpointHealth> {
    const updated = await this.update(
      type,
      { consecutive_failures: { N: '0' }, last_success_at: { S: now.toISOString() } },
      ['failing_since', 'probe_until'],
      undefined,
      signal,
    );
    return updated.health;
  }

  async recordFailure(
    type: WebhookType,
    error: string,
    now: Date,
    policy: BreakerPolicy,
    signal?: AbortSignal,
    retryAfterMs?: number,
  ): Promise<{ health: EndpointHealth; disabledNow: boolean }> {
    // The same transition as afterFailure, as one atomic expression: concurrent failures all count.
    const expected = afterFailure(NEW_HEALTH, error, now, policy, retryAfterMs).health;
    const waitUntil = expected.retry_after_until;
    const { sdk, db } = await dynamoDb(this.client);
    const out = await db.send(
      new sdk.UpdateItemCommand({
        TableName: this.table,
        Key: endpointKey(type),
        UpdateExpression:
          'SET consecutive_failures = if_not_exists(consecutive_failures, :zero) + :one, failing_since = if_not_exists(failing_since, :now), last_failure_at = :now, last_error = :error, probe_until = :probe' +
          (waitUntil ? ', retry_after_until = :wait' : ''),
        ExpressionAttributeValues: {
          ':zero': { N: '0' },
          ':one': { N: '1' },
          ':now': { S: now.toISOString() },
          ':error': { S: expected.last_error ?? '' },
          ':probe': { S: expected.probe_until! },
          ...(waitUntil ? { ':wait': { S: waitUntil } } : {}),
        },
        ReturnValues: 'ALL_NEW',
      }),
      { abortSignal: signal },
    );
    const { health } = this.remember(type, out.Attributes);
    if (!shouldDisable(health, now, policy)) return { health, disabledNow: false };
    try {
      const disabled = await this.update(
        type,
        { disabled_at: { S: now.toISOString() } },
        [],
        { expression: 'attribute_not_exists(disabled_at)' },
        signal,
      );
      return { health: disabled.health, disabledNow: true };
    } catch (e) {
      if (!conditionFailed(e)) throw e;
      return { health: { ...health, disabled_at: health.disabled_at ?? now.toISOString() }, disabledNow: false };
    }
  }

  async acquireProbe(type: WebhookType, now: Date, until: Date, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.update(
        type,
        { probe_until: { S: until.toISOString() } },
        [],
        {
          expression: 'attribute_not_exists(probe_until) OR probe_until <= :now',
          values: { ':now': { S: now.toISOString() } },
        },
        signal,
      );
      return true;
    } catch (e) {
      if (conditionFailed(e)) return false;
      throw e;
    }
  }

  async takeToken(type: WebhookType, ratePerSecond: number, now: Date, signal?: AbortSignal): Promise<TokenResult> {
    const { windowMs, limit } = rateWindow(ratePerSecond);
    const start = windowStart(now, windowMs);
    const { sdk, db } = await dynamoDb(this.client);
    try {
      await db.send(
        new sdk.UpdateItemCommand({
          TableName: this.table,
          Key: { pk: { S: `rate#${type}` }, sk: { S: String(start) } },
          UpdateExpression: 'ADD n :one SET expires_at = :expires',
          ConditionExpression: 'attribute_not_exists(n) OR n < :limit',
          ExpressionAttributeValues: {
            ':one': { N: '1' },
            ':limit': { N: String(limit) },
            // DynamoDB's TTL deletes within days; the item is a few bytes and never read again.
            ':expires': { N: String(Math.floor(start / 1000) + 3600) },
          },
        }),
        { abortSignal: signal },
      );
      return { ok: true };
    } catch (e) {
      if (!conditionFailed(e)) throw e;
      return { ok: false, retryInMs: start + windowMs - now.getTime() };
    }
  }
}

// ---------------------------------------------------------------------------------------------------------- files

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

interface EndpointFile {
  config: EndpointConfig;
  health: EndpointHealth;
}

export class FileEndpointStore implements EndpointStore {
  readonly dir: string;
  /** Locally the running gateway is the only one that delivers: its windows are counted here. */
  private readonly windows = new Map<WebhookType, { start: number; n: number }>();

  constructor(deliveriesDir: string) {
    this.dir = path.join(deliveriesDir, 'endpoints');
  }

  file(type: WebhookType): string {
    if (!WEBHOOK_TYPES.includes(type)) throw new Error(`not a webhook type: ${type}`);
    return path.join(this.dir, `${type}.json`);
  }

  /**
   * A file that is not a receiver's state (not JSON, or JSON of another shape) or cannot be read is an
   * UnreadableFileError naming it, never a fresh receiver: its pause, URL or rate would be forgotten unsaid (docs/operations.md, "After a crash").
   */
  private async read(type: WebhookType): Promise<Endpoint> {
    const file = this.file(type);
    // One the system will not read (a folder in its place, its permissions) is no fresh receiver either.
    // Kept between deliveries while the file is unchanged (one lstat a delivery, kept-files.ts).
    const stored = await readJsonFile<EndpointFile>(file, {}, readDataTextKept).catch(
      (error: NodeJS.ErrnoException) => {
        throw error instanceof UnreadableFileError || typeof error.code !== 'string'
          ? error
          : new UnreadableFileError(file, error.message, 'readable');
      },
    );
    // A link (to a file that is gone, to /dev/zero) is refused as one (readJsonFile): what it held is unknown, never a
    // fresh receiver.
    if (stored !== null && !(isObject(stored) && isObject(stored.config) && isObject(stored.health)))
      throw new UnreadableFileError(file, 'no config and health objects', "a receiver's state");
    return {
      webhook_type: type,
      config: stored?.config ?? {},
      health: { ...NEW_HEALTH, ...(stored?.health ?? {}) },
    };
  }

  private async change(type: WebhookType, fn: (endpoint: Endpoint) => Endpoint, wait?: LockWait): Promise<Endpoint> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    return withFileLock(
      this.file(type),
      async () => {
        const next = fn(await this.read(type));
        await writeJsonFileAtomic(this.file(type), { config: next.config, health: next.health });
        return next;
      },
      wait,
    );
  }

  get(type: WebhookType): Promise<Endpoint> {
    return this.read(type);
  }

  list(): Promise<Endpoint[]> {
    return Promise.all(WEBHOOK_TYPES.map((type) => this.read(type)));
  }

  async configure(
    type: WebhookType,
    change: EndpointChange,
    now: Date,
    deployedUrl?: string,
    wait?: LockWait,
  ): Promise<Reconfigured> {
    let newUrl = false;
    const changed = await this.change(
      type,
      (e) => {
        newUrl = changesUrl(e.config, change.url, deployedUrl);
        const config: EndpointConfig = { ...e.config, updated_at: now.toISOString() };
        if (change.url === null) delete config.url;
        else if (change.url !== undefined) config.url = change.url;
        if (change.rate_per_second === null) delete config.rate_per_second;
        else if (change.rate_per_second !== undefined) config.rate_per_second = change.rate_per_second;
        // A pause of a paused receiver keeps since when it is paused.
        if (change.paused === true && !e.config.paused)
          Object.assign(config, { paused: true, paused_at: now.toISOString() });
        if (change.paused === false) {
          delete config.paused;
          delete config.paused_at;
        }
        // Another URL is a new receiver: the old URL's health is not its own; a pause is the operator's, kept.
        return { ...e, config, health: newUrl ? NEW_HEALTH : e.health };
      },
      wait,
    );
    return newUrl ? { ...changed, new_url: true } : changed;
  }

  /**
   * `endpoints set --secret | --drop-previous-secret` changed the type's secrets (to these) now. The same secrets
   * marked again (the same `--secret` given twice, which changes nothing) keep the time they began to sign: it was
   * moved to the repeat, and `endpoints list` then said a rotation under way for days began seconds ago.
   */
  markSecrets(type: WebhookType, fingerprint: string, now: Date): Promise<Endpoint> {
    return this.change(type, (e) =>
      e.config.secrets_fingerprint === fingerprint && e.config.secrets_changed_at
        ? e
        : { ...e, config: { ...e.config, secrets_fingerprint: fingerprint, secrets_changed_at: now.toISOString() } },
    );
  }

  resume(type: WebhookType, now: Date, wait?: LockWait): Promise<Endpoint> {
    return this.change(
      type,
      (e) => {
        const { paused: _p, paused_at: _a, ...config } = e.config;
        return { ...e, config: { ...config, updated_at: now.toISOString() }, health: resumedHealth(e.health) };
      },
      wait,
    );
  }

  async recordSuccess(type: WebhookType, now: Date, signal?: AbortSignal): Promise<EndpointHealth> {
    return (await this.change(type, (e) => ({ ...e, health: afterSuccess(e.health, now) }), { signal })).health;
  }

  async recordFailure(
    type: WebhookType,
    error: string,
    now: Date,
    policy: BreakerPolicy,
    signal?: AbortSignal,
    retryAfterMs?: number,
  ) {
    let disabledNow = false;
    const updated = await this.change(
      type,
      (e) => {
        const next = afterFailure(e.health, error, now, policy, retryAfterMs);
        disabledNow = next.disabledNow;
        return { ...e, health: next.health };
      },
      { signal },
    );
    return { health: updated.health, disabledNow };
  }

  async acquireProbe(type: WebhookType, now: Date, until: Date, signal?: AbortSignal): Promise<boolean> {
    let acquired = false;
    await this.change(
      type,
      (e) => {
        const held = e.health.probe_until !== null && Date.parse(e.health.probe_until) > now.getTime();
        if (held) return e;
        acquired = true;
        return { ...e, health: { ...e.health, probe_until: until.toISOString() } };
      },
      { signal },
    );
    return acquired;
  }

  async takeToken(type: WebhookType, ratePerSecond: number, now: Date): Promise<TokenResult> {
    const { windowMs, limit } = rateWindow(ratePerSecond);
    const start = windowStart(now, windowMs);
    const window = this.windows.get(type);
    const n = window?.start === start ? window.n : 0;
    if (n >= limit) return { ok: false, retryInMs: start + windowMs - now.getTime() };
    this.windows.set(type, { start, n: n + 1 });
    return { ok: true };
  }
}

/**
 * The local store's file of a receiver that is there but is damaged or cannot be read (an UnreadableFileError): what
 * it holds — a pause, a URL — is unknown, so Deliver and the schedule hold its deliveries until it is mended
 * (docs/operations.md, "After a crash"). Its message, naming the file; null for any other error (DynamoDB's: the
 * receiver is then delivered as deployed).
 */
export function receiverFileUnreadable(error: unknown): string | null {
  return error instanceof UnreadableFileError ? error.message : null;
}

let fileStores = new Map<string, FileEndpointStore>();
let tableStores = new Map<string, DynamoEndpointStore>();

/** The configured endpoint store, or null when there is none (every receiver then as deployed, healthy). */
export function endpointStore(): EndpointStore | null {
  const { deliveriesTableName, deliveriesDir } = settings();
  if (deliveriesTableName) {
    // One per table and process (a warm Lambda), so its cached reads serve every Deliver of the process.
    let store = tableStores.get(deliveriesTableName);
    if (!store) {
      store = new DynamoEndpointStore(deliveriesTableName);
      tableStores = new Map(tableStores).set(deliveriesTableName, store);
    }
    return store;
  }
  if (!deliveriesDir) return null;
  // One per folder and process, so its rate windows are shared by every Deliver of the process.
  let store = fileStores.get(deliveriesDir);
  if (!store) {
    store = new FileEndpointStore(deliveriesDir);
    fileStores = new Map(fileStores).set(deliveriesDir, store);
  }
  return store;
}
