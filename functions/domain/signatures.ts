/**
 * Standard Webhooks both ways (https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp`,
 * `webhook-signature` = space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, `whsec_` secrets,
 * 5-minute tolerance. Verification runs over the raw body exactly as received.
 */
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { bySource } from './source-identity.ts';

export type SecretsBySource = Record<string, string[]>;

export interface InboundPolicy {
  /** Canonical source_system (source-identity.ts) → its active secrets (two during a rotation). */
  secrets: SecretsBySource;
  /** Whether a source without a configured secret must still sign (REQUIRE_SIGNED_WEBHOOKS). */
  requireSignature: boolean;
}

export const OPEN_POLICY: InboundPolicy = { secrets: {}, requireSignature: false };

export type VerifyOutcome = { ok: true; signed: boolean } | { ok: false; reason: string };

const SIGNATURE_HEADERS = ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const;
/** The headers that hold one value (`webhook-signature` may list several signatures, space-separated). */
const SIGNED_ONCE = ['webhook-id', 'webhook-timestamp'] as const;

/**
 * A secret as the gateway takes it (INBOUND_WEBHOOK_SECRETS, the delivery secrets): `where` names it in the error.
 * Its base64 must decode too: one that does not (`=` inside it, a wrong padding) would make every signature check of
 * its source (or every signed delivery of its type) fail as a server error rather than stop the start.
 */
export function checkSecret(secret: unknown, where: string): string {
  const rule = `${where}: secrets must be "whsec_" followed by base64 (at least 16 characters)`;
  if (typeof secret !== 'string' || !/^whsec_[A-Za-z0-9+/=]{16,}$/.test(secret)) throw new Error(rule);
  try {
    new Webhook(secret);
  } catch {
    throw new Error(`${rule}: this one's base64 does not decode (an "=" inside it, or a wrong padding)`);
  }
  return secret;
}

/** Parse `{"testing_system": "whsec_…"}` or `{"testing_system": ["whsec_new…", "whsec_old…"]}`. */
export function parseSecretsBySource(json: string | undefined, name: string): SecretsBySource {
  if (json === undefined || json.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new Error(`${name} must be a JSON object of source_system → secret or [secrets]`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`${name} must be a JSON object`);
  const out: SecretsBySource = {};
  for (const [source, value] of Object.entries(parsed)) {
    const list = Array.isArray(value) ? value : [value];
    if (list.length === 0 || list.length > 2)
      throw new Error(`${name}.${source}: give one secret, or two during a rotation`);
    out[source] = list.map((s, i) => checkSecret(s, `${name}.${source}[${i}]`));
  }
  return out;
}

/**
 * INBOUND_WEBHOOK_SECRETS: the secrets by source system, keyed by the canonical source name; two spellings of one
 * source are refused.
 */
export function parseInboundSecrets(json: string | undefined, name = 'INBOUND_WEBHOOK_SECRETS'): SecretsBySource {
  return bySource(parseSecretsBySource(json, name), name);
}

/** `sourceSystem`: the canonical name the body claims (claimedSource). */
export function verifyInbound(
  rawBody: string,
  headers: Record<string, string>,
  sourceSystem: string,
  policy: InboundPolicy,
): VerifyOutcome {
  const secrets = Object.hasOwn(policy.secrets, sourceSystem) ? policy.secrets[sourceSystem]! : [];
  if (secrets.length === 0) {
    return policy.requireSignature
      ? {
          ok: false,
          reason: `source_system "${sourceSystem}" has no signing secret and unsigned requests are not allowed`,
        }
      : { ok: true, signed: false };
  }
  const missing = SIGNATURE_HEADERS.filter((h) => !headers[h]);
  if (missing.length > 0)
    return { ok: false, reason: `missing ${missing.join(', ')} header${missing.length > 1 ? 's' : ''}` };
  // A header sent twice reaches the gateway as one, its values joined with ", " (as an Idempotency-Key does,
  // idempotency.ts): the signature was made over one of them, so none can match; say which header it is.
  const repeated = SIGNED_ONCE.find((h) => headers[h]!.includes(', '));
  if (repeated !== undefined)
    return { ok: false, reason: `${repeated} is sent ${headers[repeated]!.split(', ').length} times: send it once` };
  if (!/^\d{1,12}$/.test(headers['webhook-timestamp']!.trim())) {
    return { ok: false, reason: 'webhook-timestamp must be the signing time in whole seconds since the Unix epoch' };
  }
  const signed = Object.fromEntries(SIGNATURE_HEADERS.map((h) => [h, headers[h]!]));
  let reason = 'no signature matches';
  for (const secret of secrets) {
    try {
      // Verify only: the library would JSON.parse the payload after a match (a signed body that is not JSON is the
      // contract's 400 INVALID_JSON, and a status GET signs its request target, not JSON).
      new Webhook(secret).verify(rawBody, signed, { jsonParse: false });
      return { ok: true, signed: true };
    } catch (error) {
      if (!(error instanceof WebhookVerificationError)) throw error;
      const message = (error as Error).message;
      if (/timestamp/i.test(message))
        return { ok: false, reason: 'webhook-timestamp is outside the 5-minute tolerance' };
      if (/header/i.test(message)) reason = message;
    }
  }
  // A body that was not UTF-8 reaches the gateway with U+FFFD in place of its bad bytes (docs/contract.md#post-webhook):
  // a sender who signed those bytes could never match, and would otherwise not learn why.
  if (reason === 'no signature matches' && rawBody.includes('\ufffd'))
    reason +=
      ' (the body holds U+FFFD: if it was sent with bytes that are not UTF-8, they were read as U+FFFD and no signature over them can match: send UTF-8)';
  // A signature without its version (a bare base64 or hex HMAC, `sha256=…`) is never compared: say what the form is.
  else if (
    reason === 'no signature matches' &&
    !headers['webhook-signature']!.split(' ').some((s) => s.startsWith('v1,'))
  )
    reason += ' (webhook-signature holds no "v1,<base64 HMAC-SHA256>" entry, the only form checked)';
  return { ok: false, reason };
}

export interface SignedHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/**
 * Sign a delivery: `webhook-id` is the delivery id, stable across every attempt. With two secrets (a rotation under
 * way) the signature header carries one signature per secret, space-separated as Standard Webhooks allows: a receiver
 * holding either secret verifies it.
 */
export function signOutbound(
  secrets: string | readonly string[],
  deliveryId: string,
  at: Date,
  body: string,
): SignedHeaders {
  const list = typeof secrets === 'string' ? [secrets] : secrets;
  return {
    'webhook-id': deliveryId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': list.map((secret) => new Webhook(secret).sign(deliveryId, at, body)).join(' '),
  };
}

/**
 * A type's delivery secrets after an operator's change: a new secret goes first and the one in use stays beside it
 * (both sign: the receivers switch at their pace); `dropPrevious` ends the rotation, keeping the first only. A new
 * secret during a rotation (two secrets sign) is refused unless it ends it too: it would drop the previous secret,
 * which the receiver may still verify with (docs/security.md, "Rotating a delivery secret").
 */
export function rotatedSecrets(current: readonly string[], next: string | undefined, dropPrevious: boolean): string[] {
  let secrets = [...current];
  if (next !== undefined) {
    checkSecret(next, 'the new secret');
    if (next !== current[0] && current.length > 1 && !dropPrevious)
      throw new Error(
        'a rotation is under way (two secrets sign): another --secret would drop the previous one, which the receiver may still verify with. End the rotation first with --drop-previous-secret once the receiver verifies the newer secret (or give --secret with --drop-previous-secret to sign with the new one alone at once)',
      );
    secrets = next === current[0] ? [...current] : [next, ...current.slice(0, 1)];
  }
  return dropPrevious ? secrets.slice(0, 1) : secrets;
}
