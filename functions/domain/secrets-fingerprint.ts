import { createHash } from 'node:crypto';

/**
 * What names a type's delivery secrets without holding them (a truncated SHA-256 of the list, in order): kept with the
 * receiver by `endpoints set --secret --aws`, so that a Deliver whose cached secrets are not these reads them again
 * (functions/shared/secrets.ts deliverySecrets). The secrets are random (whsec_, at least 24 bytes): it reveals nothing.
 * A module of its own: endpoints.ts needs it, and signatures.ts would bring Standard Webhooks into every stage's bundle.
 */
export function secretsFingerprint(secrets: readonly string[]): string {
  return createHash('sha256')
    .update(`webhook-gateway delivery secrets\n${secrets.join('\n')}`)
    .digest('hex')
    .slice(0, 16);
}
