/**
 * The start banner's `Try:` request: a curl the gateway, as configured, answers with 200. A source with an inbound
 * secret must sign, so the plain curl names a source without one; when every request must be signed, the curl signs
 * with `webhook-gateway sign`.
 */
import type { SecretsBySource } from '../../functions/domain/signatures.ts';
import { canonicalSource } from '../../functions/domain/source-identity.ts';

const UNSIGNED_SOURCES = ['testing_system', 'local_try', 'local_try_unsigned'];

const bodyFor = (source: string) =>
  JSON.stringify({
    query: 'What are the top 5 deals closing this quarter?',
    source_system: source,
    source_process: 'phase3_validation',
  });

export function tryRequest(url: string, inboundSecrets: SecretsBySource, requireSigned: boolean): string[] {
  const curl = `curl -s -X POST ${url}/webhook -H 'Content-Type: application/json'`;
  const unsigned = UNSIGNED_SOURCES.find((s) => !Object.hasOwn(inboundSecrets, canonicalSource(s)));
  if (!requireSigned && unsigned) return [`Try:  ${curl} \\`, `        -d '${bodyFor(unsigned)}'`];
  const signed = Object.keys(inboundSecrets)[0];
  if (!signed)
    return ['Try:  nothing: REQUIRE_SIGNED_WEBHOOKS is true and INBOUND_WEBHOOK_SECRETS names no source to sign for'];
  return [
    `Try:  SECRET=whsec_…   # ${signed}'s secret in INBOUND_WEBHOOK_SECRETS (its requests must be signed)`,
    `      body='${bodyFor(signed)}'`,
    `      ${curl} $(npx webhook-gateway sign --secret "$SECRET" --data "$body") -d "$body"`,
  ];
}
