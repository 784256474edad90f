import { Annotations, CfnParameter, CfnRule, Fn } from 'aws-cdk-lib';
import { Construct } from 'constructs';

export interface DeliveryUrlGuardProps {
  /** Context keys of the webhook types that have no delivery URL. */
  readonly missing: string[];
  /** The operator said so explicitly (context allowMissingDeliveryUrls). */
  readonly allowed: boolean;
}

/**
 * A deploy with a webhook type left without a delivery URL would dead-letter every delivery of that type and fire
 * the dead-letter alarm from the first request. Unless the operator allows it (context allowMissingDeliveryUrls,
 * for a stack that only exports), the template then carries a CloudFormation rule that fails: CloudFormation checks
 * rules before it creates or changes anything, so `cdk deploy` stops with this message and nothing is made.
 * `cdk synth` still works (offline, to look at the template); it warns.
 */
export class DeliveryUrlGuard extends Construct {
  static readonly PARAMETER = 'MissingDeliveryUrlsAllowed';

  constructor(scope: Construct, id: string, props: DeliveryUrlGuardProps) {
    super(scope, id);
    if (props.missing.length === 0 || props.allowed) {
      if (props.missing.length > 0) {
        Annotations.of(this).addWarningV2(
          'webhook-gateway:missing-delivery-urls',
          `No delivery URL for context ${props.missing.join(', ')} (allowed by allowMissingDeliveryUrls): those deliveries go to the failed-delivery queue.`,
        );
      }
      return;
    }
    const message =
      `No delivery URL is set for context ${props.missing.join(', ')}: set them (-c key=https://…, or ssm:/parameter), ` +
      'or deploy with -c allowMissingDeliveryUrls=true if those types are not to be delivered (docs/deploy.md). Nothing was created.';
    const allowed = new CfnParameter(scope, DeliveryUrlGuard.PARAMETER, {
      type: 'String',
      allowedValues: ['yes', 'no'],
      default: 'no',
      description: `Deploy without delivery URLs for ${props.missing.join(', ')} ("yes"), or refuse ("no")`,
    });
    new CfnRule(scope, 'DeliveryUrlsConfigured', {
      assertions: [{ assert: Fn.conditionEquals(allowed.valueAsString, 'yes'), assertDescription: message }],
    });
    Annotations.of(this).addWarningV2(
      'webhook-gateway:missing-delivery-urls',
      `cdk deploy will be refused: ${message}`,
    );
  }
}
