import { RemovalPolicy, SecretValue, Validations } from 'aws-cdk-lib';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

/**
 * What each secret holds before the operator fills it in: the empty map, i.e. "no secret configured" (requests
 * are accepted unsigned unless requireSignedWebhooks, deliveries go out unsigned). Not a secret itself. The
 * template never changes this value, so CloudFormation leaves the value the operator puts in place.
 */
export const EMPTY_SECRETS_JSON = '{}';

/**
 * The Standard Webhooks signing secrets, created by the stack and filled in by the operator after deploy
 * (docs/deploy.md): `inbound` holds `{"<source_system>": "whsec_…" | ["whsec_new…", "whsec_old…"]}` (Validate
 * verifies requests with them), `delivery` holds `{"<webhook_type>": "whsec_…"}` (Deliver signs with them). The
 * functions read them at run time (cached 5 minutes), so a change needs no deploy. Kept when the stack is deleted.
 */
export class SigningSecrets extends Construct {
  readonly inbound: Secret;
  readonly delivery: Secret;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.inbound = this.secret(
      'Inbound',
      'Inbound webhook signing secrets: {"<source_system>": "whsec_…" or ["whsec_new…", "whsec_old…"]}',
    );
    this.delivery = this.secret(
      'Delivery',
      'Outbound delivery signing secrets: {"<webhook_type>": "whsec_…"} (deal_analysis, data_analysis, lead_analysis, general)',
    );
  }

  private secret(id: string, description: string): Secret {
    const secret = new Secret(this, id, {
      description,
      secretStringValue: SecretValue.unsafePlainText(EMPTY_SECRETS_JSON),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'Webhook signing secrets are shared with external parties (source systems sign with them, receivers verify with them): a rotation is coordinated with each party by the operator, using the two-secrets-per-source overlap the format allows, not by a rotation Lambda.',
    });
    return secret;
  }
}
