import { CustomDataIdentifier, DataProtectionPolicy } from 'aws-cdk-lib/aws-logs';
import { SECRET_PATTERNS } from '../../functions/domain/secret-masking.ts';

/**
 * The CloudWatch Logs data protection policy every log group of the gateway carries: Standard Webhooks signatures
 * and `whsec_` secrets (functions/domain/secret-masking.ts) are masked when an event is ingested. It is what keeps
 * the inbound `webhook-signature` out of the Express execution history on AWS, where the execution input — logged
 * with level ALL and execution data — must carry it to Validate. Reading a masked value needs `logs:Unmask`,
 * which no role of this stack has.
 */
export function secretMaskingPolicy(): DataProtectionPolicy {
  return new DataProtectionPolicy({
    name: 'webhook-gateway-secret-masking',
    description: 'Masks Standard Webhooks signatures and secrets in webhook gateway logs',
    identifiers: SECRET_PATTERNS.map((p) => new CustomDataIdentifier(p.name, p.regex)),
  });
}
