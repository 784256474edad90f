/**
 * Signing secrets, from configuration:
 * - `INBOUND_WEBHOOK_SECRETS_ARN` / `DELIVERY_SIGNING_SECRETS_ARN`: a Secrets Manager secret holding the JSON
 *   (AWS; read once per 5 minutes per container, so a rotation takes effect without a deploy);
 * - `DELIVERY_SIGNING_SECRETS_FILE`: a file holding the delivery JSON (the local gateway's, re-read when it changes);
 * - otherwise `INBOUND_WEBHOOK_SECRETS` / `DELIVERY_SIGNING_SECRETS`: the JSON itself (local).
 * Both JSON: {"<source_system or webhook_type>": "whsec_…" | ["whsec_new…", "whsec_old…"]}.
 */
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DELIVERY_SECRETS_FILE_ERROR, NamedError } from '../domain/errors.ts';
import { secretsFingerprint } from '../domain/secrets-fingerprint.ts';
import {
  type InboundPolicy,
  parseInboundSecrets,
  parseSecretsBySource,
  type SecretsBySource,
} from '../domain/signatures.ts';
import { limitedClientSettings } from './clients/request-limits.ts';
import { readDataTextKept } from './kept-files.ts';
import { SECRETS_READ } from './local-files.ts';
import { tracer } from './powertools.ts';
import { settings } from './settings.ts';

const CACHE_MS = 300_000;
let client: SecretsManagerClient | null = null;
const cache = new Map<string, { at: number; value: string }>();

async function secretString(arn: string, signal?: AbortSignal): Promise<string> {
  const hit = cache.get(arn);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.value;
  // Loaded on first use only: configured from the environment, nothing in the cold start pays for it.
  const sdk = await import('./clients/secrets-manager-sdk.ts');
  client ??= tracer.captureAWSv3Client(new sdk.SecretsManagerClient(limitedClientSettings()));
  const out = await client.send(new sdk.GetSecretValueCommand({ SecretId: arn }), { abortSignal: signal });
  const value = out.SecretString ?? '';
  cache.set(arn, { at: Date.now(), value });
  return value;
}

const parsed = new Map<string, { json: string | undefined; secrets: SecretsBySource }>();

/**
 * A secrets file (locally, `endpoints set --secret` rewrites it): read again whenever it changed; while it has not, a
 * use costs one `stat` (kept-files.ts). A device, a FIFO or a folder in its place is refused by that stat, at no cost
 * to a delivery; what is read is checked again on the open handle, capped (local-files.ts).
 */
async function fileString(file: string): Promise<string> {
  return (await readDataTextKept(file, { ...SECRETS_READ, statRefuses: true })) ?? '';
}

async function configured(
  name: 'INBOUND_WEBHOOK_SECRETS' | 'DELIVERY_SIGNING_SECRETS',
  signal?: AbortSignal,
): Promise<SecretsBySource> {
  const arn = process.env[`${name}_ARN`];
  const file = !arn && name === 'DELIVERY_SIGNING_SECRETS' ? settings().deliverySigningSecretsFile : undefined;
  try {
    const json = arn ? await secretString(arn, signal) : file ? await fileString(file) : process.env[name];
    const hit = parsed.get(name);
    if (hit && hit.json === json) return hit.secrets; // parsed once per value, not once per request
    // An empty file is a damaged one: no secrets at all would send every delivery unsigned.
    if (file && !json?.trim()) throw new Error('empty');
    const secrets =
      name === 'INBOUND_WEBHOOK_SECRETS'
        ? parseInboundSecrets(json, name)
        : parseSecretsBySource(json, file ? 'it' : name);
    parsed.set(name, { json, secrets });
    return secrets;
  } catch (error) {
    if (!file) throw error;
    // Gone, unreadable, empty, cut short, not secrets, while the gateway runs: Deliver fails before it sends anything,
    // and the conversation, the console and the operator's line say this (docs/operations.md, "After a crash").
    throw new NamedError(
      DELIVERY_SECRETS_FILE_ERROR,
      `the delivery secrets file ${file} cannot be used (${(error as Error).message}): restore it (endpoints set <type> --secret writes one), then deliveries redrive --all; nothing is sent unsigned meanwhile`,
    );
  }
}

export async function inboundPolicy(signal?: AbortSignal): Promise<InboundPolicy> {
  return {
    secrets: await configured('INBOUND_WEBHOOK_SECRETS', signal),
    requireSignature: settings().requireSignedWebhooks,
  };
}

/**
 * The secrets that sign deliveries of one webhook type: none, one, or two while a rotation is under way (the new one
 * first; each delivery then carries both signatures, and a receiver holding either verifies it). `signal`: the
 * caller's deadline (Deliver's budgetSignal) ends a read of Secrets Manager with an AbortError. `expected`: the
 * fingerprint the receiver's item names (`endpoints set --secret --aws` writes it, Deliver reads the item every 5 s):
 * cached secrets of another fingerprint are read again at once, so a rotation signs within seconds, not when the
 * 5-minute cache ends (docs/security.md, "Rotating a delivery secret").
 */
export async function deliverySecrets(webhookType: string, signal?: AbortSignal, expected?: string): Promise<string[]> {
  const ofType = (all: SecretsBySource) => (Object.hasOwn(all, webhookType) ? all[webhookType]! : []);
  const secrets = ofType(await configured('DELIVERY_SIGNING_SECRETS', signal));
  const arn = process.env.DELIVERY_SIGNING_SECRETS_ARN;
  if (!expected || !arn || secretsFingerprint(secrets) === expected || !mayReadAgain(arn, expected)) return secrets;
  cache.delete(arn);
  return ofType(await configured('DELIVERY_SIGNING_SECRETS', signal));
}

/**
 * Reads of a secret again for a fingerprint its cached value does not match, by ARN: at once for a new fingerprint,
 * then 1, 2, 4 … s apart up to the cache's 5 minutes while it still differs (a secret changed by hand, not by
 * `endpoints set --secret`, never matches the fingerprint left on the item: it is then read as often as without one).
 */
const readsAgain = new Map<string, { expected: string; waitMs: number; nextAt: number }>();
function mayReadAgain(arn: string, expected: string): boolean {
  const now = Date.now();
  const last = readsAgain.get(arn);
  if (last?.expected === expected && now < last.nextAt) return false;
  const waitMs = last?.expected === expected ? Math.min(last.waitMs * 2, CACHE_MS) : 1_000;
  readsAgain.set(arn, { expected, waitMs, nextAt: now + waitMs });
  return true;
}
