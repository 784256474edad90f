/**
 * The start banner's `Try:` request: a curl the gateway, as configured, answers with 200. A source with an inbound
 * secret must sign, so the plain curl names a source without one; when every request must be signed, the curl signs
 * with `webhook-gateway sign`; with API keys (API_KEYS) it names a source that has one and sends it.
 */
import type { SecretsBySource } from '../../functions/domain/signatures.ts';
import { canonicalSource } from '../../functions/domain/source-identity.ts';

export interface TryPolicy {
  inboundSecrets: SecretsBySource;
  requireSigned: boolean;
  /** The sources with an API key (API_KEYS); none: no key needed. */
  apiKeySources: string[];
}

const UNSIGNED_SOURCES = ['testing_system', 'local_try', 'local_try_unsigned'];

const bodyFor = (source: string) =>
  JSON.stringify({
    query: 'What are the top 5 deals closing this quarter?',
    source_system: source,
    source_process: 'phase3_validation',
  });

export function tryRequest(url: string, policy: TryPolicy): string[] {
  const keyed = policy.apiKeySources.length > 0;
  const candidates = keyed ? policy.apiKeySources : UNSIGNED_SOURCES;
  const hasSecret = (s: string) => Object.hasOwn(policy.inboundSecrets, canonicalSource(s));
  const unsigned = policy.requireSigned ? undefined : candidates.find((s) => !hasSecret(s));
  const signed = keyed ? candidates.find(hasSecret) : Object.keys(policy.inboundSecrets)[0];
  const source = unsigned ?? signed;
  if (!source)
    return [
      `Try:  nothing: REQUIRE_SIGNED_WEBHOOKS is true and no source${keyed ? ' with an API key' : ''} has a secret in INBOUND_WEBHOOK_SECRETS`,
    ];
  const setup = [
    ...(unsigned
      ? []
      : [`SECRET=whsec_…   # ${source}'s secret in INBOUND_WEBHOOK_SECRETS (its requests must be signed)`]),
    ...(keyed ? [`API_KEY=…   # ${source}'s key in API_KEYS`] : []),
  ];
  const curl = `curl -s -X POST ${url}/webhook -H 'Content-Type: application/json'${keyed ? ' -H "x-api-key: $API_KEY"' : ''}`;
  const request = unsigned
    ? [`${curl} \\`, `  -d '${bodyFor(source)}'`]
    : [`body='${bodyFor(source)}'`, `${curl} $(npx webhook-gateway sign --secret "$SECRET" --data "$body") -d "$body"`];
  return [...setup, ...request].map((line, i) => (i === 0 ? `Try:  ${line}` : `      ${line}`));
}
