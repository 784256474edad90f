/**
 * The names the stack gives its resources itself (not the ones CloudFormation generates), checked against the
 * limits AWS documents for them: length, allowed characters, and for the Step Functions log groups the
 * `/aws/vendedlogs/states/` prefix. That prefix matters on a real account: CloudWatch Logs keeps one resource policy
 * for all log deliveries, capped at 5,120 characters, and a log group under `/aws/vendedlogs/` is covered by one
 * wildcard entry instead of adding its own ARN (Step Functions developer guide, "Logging using CloudWatch Logs").
 */
export interface NameFinding {
  logicalId: string;
  resourceType: string;
  property: string;
  name: string;
  message: string;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface NameRule {
  resourceType: string;
  property: string;
  min: number;
  max: number;
  /** Allowed characters (the whole name must match). */
  pattern: RegExp;
  /** Where the limit is documented, for the message. */
  source: string;
}

/** Any printable text (no control characters). */
const NO_CONTROL_CHARACTERS = /^\P{Cc}+$/u;

/** One rule per named property the stack may set (AWS API and CloudFormation references). */
const NAME_RULES: readonly NameRule[] = [
  {
    resourceType: 'AWS::Logs::LogGroup',
    property: 'LogGroupName',
    min: 1,
    max: 512,
    pattern: /^[.\-_/#A-Za-z0-9]+$/,
    source: 'CloudWatch Logs CreateLogGroup',
  },
  {
    resourceType: 'AWS::CloudWatch::Alarm',
    property: 'AlarmName',
    min: 1,
    max: 255,
    pattern: /^[\x20-\x7E]+$/,
    source: 'CloudWatch PutMetricAlarm',
  },
  {
    resourceType: 'AWS::CloudWatch::Dashboard',
    property: 'DashboardName',
    min: 1,
    max: 255,
    pattern: /^[A-Za-z0-9_-]+$/,
    source: 'CloudWatch PutDashboard',
  },
  {
    resourceType: 'AWS::Logs::QueryDefinition',
    property: 'Name',
    min: 1,
    max: 255,
    pattern: NO_CONTROL_CHARACTERS,
    source: 'CloudWatch Logs PutQueryDefinition',
  },
  {
    resourceType: 'AWS::Logs::MetricFilter',
    property: 'FilterName',
    min: 1,
    max: 512,
    pattern: /^[^:*]+$/,
    source: 'CloudWatch Logs PutMetricFilter',
  },
  {
    resourceType: 'AWS::Logs::SubscriptionFilter',
    property: 'FilterName',
    min: 1,
    max: 512,
    pattern: /^[^:*]+$/,
    source: 'CloudWatch Logs PutSubscriptionFilter',
  },
  {
    resourceType: 'AWS::ApiGateway::RestApi',
    property: 'Name',
    min: 1,
    max: 1024,
    pattern: NO_CONTROL_CHARACTERS,
    source: 'API Gateway CreateRestApi',
  },
  {
    resourceType: 'AWS::ApiGateway::ApiKey',
    property: 'Name',
    min: 1,
    max: 1024,
    pattern: NO_CONTROL_CHARACTERS,
    source: 'API Gateway CreateApiKey',
  },
  {
    resourceType: 'AWS::ApiGateway::UsagePlan',
    property: 'UsagePlanName',
    min: 1,
    max: 1024,
    pattern: NO_CONTROL_CHARACTERS,
    source: 'API Gateway CreateUsagePlan',
  },
  {
    resourceType: 'AWS::ApiGateway::Stage',
    property: 'StageName',
    min: 1,
    max: 128,
    pattern: /^[A-Za-z0-9_]+$/,
    source: 'API Gateway CreateStage',
  },
  {
    resourceType: 'AWS::StepFunctions::StateMachine',
    property: 'StateMachineName',
    min: 1,
    max: 80,
    pattern: /^[A-Za-z0-9_-]+$/,
    source: 'Step Functions CreateStateMachine',
  },
  {
    resourceType: 'AWS::Lambda::Function',
    property: 'FunctionName',
    min: 1,
    max: 64,
    pattern: /^[A-Za-z0-9_-]+$/,
    source: 'Lambda CreateFunction',
  },
  {
    resourceType: 'AWS::SQS::Queue',
    property: 'QueueName',
    min: 1,
    max: 80,
    pattern: /^[A-Za-z0-9_-]+(\.fifo)?$/,
    source: 'SQS CreateQueue',
  },
  {
    resourceType: 'AWS::SNS::Topic',
    property: 'DisplayName',
    min: 1,
    max: 100,
    pattern: NO_CONTROL_CHARACTERS,
    source: 'SNS CreateTopic',
  },
  {
    resourceType: 'AWS::SNS::Topic',
    property: 'TopicName',
    min: 1,
    max: 256,
    pattern: /^[A-Za-z0-9_-]+(\.fifo)?$/,
    source: 'SNS CreateTopic',
  },
  {
    resourceType: 'AWS::IAM::Role',
    property: 'RoleName',
    min: 1,
    max: 64,
    pattern: /^[\w+=,.@-]+$/,
    source: 'IAM CreateRole',
  },
  {
    resourceType: 'AWS::DynamoDB::Table',
    property: 'TableName',
    min: 3,
    max: 255,
    pattern: /^[A-Za-z0-9_.-]+$/,
    source: 'DynamoDB CreateTable',
  },
  {
    resourceType: 'AWS::SecretsManager::Secret',
    property: 'Name',
    min: 1,
    max: 512,
    pattern: /^[A-Za-z0-9/_+=.@-]+$/,
    source: 'Secrets Manager CreateSecret',
  },
  {
    resourceType: 'AWS::Athena::WorkGroup',
    property: 'Name',
    min: 1,
    max: 128,
    pattern: /^[A-Za-z0-9._-]+$/,
    source: 'Athena CreateWorkGroup',
  },
  {
    resourceType: 'AWS::Events::Rule',
    property: 'Name',
    min: 1,
    max: 64,
    pattern: /^[.\-_A-Za-z0-9]+$/,
    source: 'EventBridge PutRule',
  },
];

/** CloudFormation stack names: 1–128 characters, a letter first, then letters, digits and hyphens. */
export const STACK_NAME = /^[A-Za-z][A-Za-z0-9-]{0,127}$/;

/** Where Step Functions log groups belong (see the module comment). */
export const VENDED_LOGS_PREFIX = '/aws/vendedlogs/states/';

/**
 * A name as it will be at deploy time when the template spells it out: a literal, or an Fn::Join of literals, the
 * stack name and the region. Anything CloudFormation computes (a generated name, an attribute) gives null: not ours to check.
 */
function literalName(value: Json | undefined, stackName: string): string | null {
  if (typeof value === 'string') return value;
  if (!value || typeof value !== 'object' || Array.isArray(value)) return null;
  if ((value as { Ref?: Json }).Ref === 'AWS::StackName') return stackName;
  // The longest region code (14 characters), as the name will be in the longest one.
  if ((value as { Ref?: Json }).Ref === 'AWS::Region') return 'ap-southeast-5';
  const join = (value as { 'Fn::Join'?: Json })['Fn::Join'];
  if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) {
    const parts = join[1].map((part) => literalName(part, stackName));
    return parts.every((part) => part !== null) ? parts.join(join[0]) : null;
  }
  return null;
}

/** Logical ids of the log groups the template's state machines log to. */
function stateMachineLogGroups(resources: Record<string, Json>): Set<string> {
  const ids = new Set<string>();
  for (const raw of Object.values(resources)) {
    const resource = raw as { Type?: string; Properties?: { LoggingConfiguration?: { Destinations?: Json[] } } };
    if (resource.Type !== 'AWS::StepFunctions::StateMachine') continue;
    for (const destination of resource.Properties?.LoggingConfiguration?.Destinations ?? []) {
      const arn = (destination as { CloudWatchLogsLogGroup?: { LogGroupArn?: Json } }).CloudWatchLogsLogGroup
        ?.LogGroupArn;
      const getAtt = (arn as { 'Fn::GetAtt'?: string[] } | undefined)?.['Fn::GetAtt'];
      if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') ids.add(getAtt[0]);
    }
  }
  return ids;
}

export function checkNames(template: { Resources?: Record<string, Json> }, stackName: string): NameFinding[] {
  const findings: NameFinding[] = [];
  const resources = template.Resources ?? {};
  if (!STACK_NAME.test(stackName)) {
    findings.push({
      logicalId: '(stack)',
      resourceType: 'AWS::CloudFormation::Stack',
      property: 'StackName',
      name: stackName,
      message: 'a stack name is 1-128 letters, digits and hyphens, starting with a letter (CloudFormation CreateStack)',
    });
  }
  const loggedBy = stateMachineLogGroups(resources);
  for (const [logicalId, raw] of Object.entries(resources)) {
    const resource = raw as { Type?: string; Properties?: Record<string, Json> };
    const resourceType = resource.Type ?? '';
    for (const rule of NAME_RULES) {
      if (rule.resourceType !== resourceType) continue;
      const name = literalName(resource.Properties?.[rule.property], stackName);
      if (name === null) continue;
      const report = (message: string) =>
        findings.push({ logicalId, resourceType, property: rule.property, name, message });
      if (name.length < rule.min || name.length > rule.max) {
        report(`${rule.property} must be ${rule.min}-${rule.max} characters (${rule.source}), got ${name.length}`);
      }
      if (!rule.pattern.test(name))
        report(`${rule.property} has characters ${rule.source} does not allow (${rule.pattern})`);
    }
    if (resourceType === 'AWS::Logs::LogGroup' && loggedBy.has(logicalId)) {
      const name = literalName(resource.Properties?.LogGroupName, stackName);
      if (name === null || !name.startsWith(VENDED_LOGS_PREFIX)) {
        findings.push({
          logicalId,
          resourceType,
          property: 'LogGroupName',
          name: name ?? '(generated)',
          message: `a Step Functions log group must be named under ${VENDED_LOGS_PREFIX} (CloudWatch Logs resource policy limit)`,
        });
      }
    }
  }
  return findings;
}
