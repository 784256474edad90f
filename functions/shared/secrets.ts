/**
 * Signing secrets, from configuration:
 * - `INBOUND_WEBHOOK_SECRETS_ARN` / `DELIVERY_SIGNING_SECRETS_ARN`: a Secrets Manager secret holding the JSON
 *   (AWS; read once per 5 minutes per container, so a rotation takes effect without a deploy);
 * - otherwise `INBOUND_WEBHOOK_SECRETS` / `DELIVERY_SIGNING_SECRETS`: the JSON itself (local).
 * Inbound JSON: {"source_system": "whsec_…" | ["whsec_new…", "whsec_old…"]}; delivery JSON: {"deal_analysis": "whsec_…", …}.
 */
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  type InboundPolicy,
  parseInboundSecrets,
  parseSecretsBySource,
  type SecretsBySource,
} from '../domain/signatures.ts';
import { tracer } from './powertools.ts';
import { settings } from './settings.ts';

const CACHE_MS = 300_000;
let client: SecretsManagerClient | null = null;
const cache = new Map<string, { at: number; value: string }>();

async function secretString(arn: string): Promise<string> {
  const hit = cache.get(arn);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.value;
  // Loaded on first use only: configured from the environment, nothing in the cold start pays for it.
  const sdk = await import('@aws-sdk/client-secrets-manager');
  client ??= tracer.captureAWSv3Client(new sdk.SecretsManagerClient({}));
  const out = await client.send(new sdk.GetSecretValueCommand({ SecretId: arn }));
  const value = out.SecretString ?? '';
  cache.set(arn, { at: Date.now(), value });
  return value;
}

const parsed = new Map<string, { json: string | undefined; secrets: SecretsBySource }>();

async function configured(name: 'INBOUND_WEBHOOK_SECRETS' | 'DELIVERY_SIGNING_SECRETS'): Promise<SecretsBySource> {
  const arn = process.env[`${name}_ARN`];
  const json = arn ? await secretString(arn) : process.env[name];
  const hit = parsed.get(name);
  if (hit && hit.json === json) return hit.secrets; // parsed once per value, not once per request
  const secrets =
    name === 'INBOUND_WEBHOOK_SECRETS' ? parseInboundSecrets(json, name) : parseSecretsBySource(json, name);
  parsed.set(name, { json, secrets });
  return secrets;
}

export async function inboundPolicy(): Promise<InboundPolicy> {
  return {
    secrets: await configured('INBOUND_WEBHOOK_SECRETS'),
    requireSignature: settings().requireSignedWebhooks,
  };
}

/** The secret that signs deliveries of one webhook type, or null when none is configured. */
export async function deliverySecret(webhookType: string): Promise<string | null> {
  const secrets = await configured('DELIVERY_SIGNING_SECRETS');
  return Object.hasOwn(secrets, webhookType) ? secrets[webhookType]![0]! : null;
}
