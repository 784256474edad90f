import { Names } from 'aws-cdk-lib';
import { CfnSamplingRule } from 'aws-cdk-lib/aws-xray';
import { Construct } from 'constructs';

export interface TraceSamplingProps {
  /** The API stage's X-Ray service name, `<rest API name>/<stage>`: conversations start there. */
  readonly apiServiceName: string;
  /** Share of conversations traced (0–1). */
  readonly fixedRate: number;
}

/** X-Ray's limit for a sampling rule's ServiceName. */
const MAX_SERVICE_NAME = 64;

/**
 * The rule's ServiceName: the API stage's X-Ray name, or, when a long stack name makes it longer than X-Ray allows,
 * its first 63 characters and `*` (ServiceName takes wildcards), which still names that stage's segments.
 */
export function samplingServiceName(apiServiceName: string): string {
  return apiServiceName.length <= MAX_SERVICE_NAME
    ? apiServiceName
    : `${apiServiceName.slice(0, MAX_SERVICE_NAME - 1)}*`;
}

/**
 * An X-Ray sampling rule for the API stage, the entry point of every conversation: API Gateway decides there and the
 * decision travels with the request to the state machine and its functions, so one rule samples whole conversations.
 * No reservoir: without a rule X-Ray's default (1 request a second, then 5 %) records nearly every conversation of
 * a gateway with under a few million a month, at $5 per million traces. The rule's priority (100) comes before the
 * default rule only; the account's own rules with a lower number still win.
 */
export class TraceSampling extends Construct {
  readonly rule: CfnSamplingRule;

  constructor(scope: Construct, id: string, props: TraceSamplingProps) {
    super(scope, id);
    if (!(props.fixedRate >= 0 && props.fixedRate <= 1)) throw new Error('fixedRate must be between 0 and 1');
    this.rule = new CfnSamplingRule(this, 'Rule', {
      samplingRule: {
        // At most 32 characters, unique in the account and region.
        ruleName: Names.uniqueResourceName(this, { maxLength: 32 }),
        priority: 100,
        reservoirSize: 0,
        fixedRate: props.fixedRate,
        serviceName: samplingServiceName(props.apiServiceName),
        serviceType: 'AWS::ApiGateway::Stage',
        host: '*',
        httpMethod: '*',
        urlPath: '*',
        resourceArn: '*',
        version: 1,
      },
    });
  }
}
