/**
 * Each Lambda function's environment variables, measured as Lambda measures them when CloudFormation creates or
 * updates the function: the variables as one JSON object of names and values, at most 4 KB (docs/deploy.md, "Limits
 * CloudFormation and the services check at deploy time"). The synth cannot know the values CloudFormation fills in
 * (generated names, ARNs, API key ids), so each is counted at the longest it can be, and a template whose functions
 * could go over is refused before a deploy fails half-way on it (and rolls back).
 */
export interface EnvironmentFinding {
  logicalId: string;
  message: string;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Resources = Record<string, { Type?: string; Properties?: Record<string, Json> }>;
type Parameters = Record<string, { Type?: string }>;

/** Lambda's limit on a function's environment variables, in bytes of their JSON (docs/deploy.md). */
export const LAMBDA_ENVIRONMENT_LIMIT = 4096;

/** The longest value of each pseudo parameter (aws-us-gov; a 14-character region code; amazonaws.com.cn). */
const PSEUDO_LENGTH: Record<string, number> = {
  'AWS::Partition': 'aws-us-gov'.length,
  'AWS::Region': 'ap-southeast-5'.length,
  'AWS::AccountId': 12,
  'AWS::URLSuffix': 'amazonaws.com.cn'.length,
};

/** The random part CloudFormation appends to a name it generates (`<stack>-<logical id>-<13 characters>`). */
const GENERATED_SUFFIX = 13;

/**
 * How long the value of `Ref`/`Fn::GetAtt` on `target` can be once deployed, or null when this check does not know
 * the resource type (a finding: a value it cannot bound could be any length).
 */
function referenceLength(target: string, attribute: string | null, resources: Resources, stackName: string) {
  const type = resources[target]?.Type;
  const x = (n: number) => 'x'.repeat(n);
  const pseudo = (name: string) => x(PSEUDO_LENGTH[name] ?? 0);
  const arn = (service: string, resource: string) =>
    `arn:${pseudo('AWS::Partition')}:${service}:${pseudo('AWS::Region')}:${pseudo('AWS::AccountId')}:${resource}`
      .length;
  // CloudFormation's generated name: the stack name, the logical id and a random suffix, within the service's limit.
  const generated = (max: number) => Math.min(max, stackName.length + 1 + target.length + 1 + GENERATED_SUFFIX);
  if (attribute === null) {
    switch (type) {
      case 'AWS::ApiGateway::ApiKey':
        return 10; // an API key id
      case 'AWS::DynamoDB::Table':
        return generated(255);
      case 'AWS::S3::Bucket':
        return 63;
      // Secrets Manager names a generated secret `<logical id>-<12 characters>`; its ARN adds `-<6 characters>`.
      case 'AWS::SecretsManager::Secret':
        return arn('secretsmanager', `secret:${target}-${x(12)}-${x(6)}`);
      case 'AWS::SQS::Queue':
        return `https://sqs.${pseudo('AWS::Region')}.${pseudo('AWS::URLSuffix')}/${pseudo('AWS::AccountId')}/${x(generated(80))}`
          .length;
      case 'AWS::StepFunctions::StateMachine':
        return arn('states', `stateMachine:${x(80)}`);
    }
    return null;
  }
  if (attribute === 'Arn' && type === 'AWS::Lambda::Function') return arn('lambda', `function:${x(64)}`);
  return null;
}

/**
 * The longest text `value` can be once CloudFormation has resolved it: a string of that length (only its length and
 * its literal characters matter to the measure), or null with the reason it cannot be bounded.
 */
function longest(
  value: Json,
  resources: Resources,
  parameters: Parameters,
  stackName: string,
): { text: string } | { unbounded: string } {
  if (typeof value === 'string') return { text: value };
  if (typeof value === 'number' || typeof value === 'boolean') return { text: String(value) };
  if (!value || typeof value !== 'object' || Array.isArray(value)) return { unbounded: JSON.stringify(value) };
  const join = (value as { 'Fn::Join'?: Json })['Fn::Join'];
  if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) {
    const parts: string[] = [];
    for (const part of join[1]) {
      const resolved = longest(part, resources, parameters, stackName);
      if ('unbounded' in resolved) return resolved;
      parts.push(resolved.text);
    }
    return { text: parts.join(join[0]) };
  }
  const ref = (value as { Ref?: Json }).Ref;
  const getAtt = (value as { 'Fn::GetAtt'?: Json })['Fn::GetAtt'];
  if (ref === 'AWS::StackName') return { text: stackName };
  if (typeof ref === 'string' && ref in PSEUDO_LENGTH) return { text: 'x'.repeat(PSEUDO_LENGTH[ref] ?? 0) };
  // A delivery URL read from SSM at deploy time: its length is the parameter's value, which only the deploy knows.
  if (typeof ref === 'string' && parameters[ref]?.Type?.startsWith('AWS::SSM::Parameter::Value<')) return { text: '' };
  const target = typeof ref === 'string' ? ref : Array.isArray(getAtt) ? String(getAtt[0]) : null;
  const attribute = Array.isArray(getAtt) ? String(getAtt[1]) : null;
  if (target !== null) {
    const length = referenceLength(target, attribute, resources, stackName);
    if (length !== null) return { text: 'x'.repeat(length) };
  }
  return { unbounded: JSON.stringify(value) };
}

/** The most bytes a function's environment variables can take once deployed (names and values, as JSON). */
export function environmentBytes(
  variables: Record<string, Json>,
  template: { Resources?: Resources; Parameters?: Parameters },
  stackName: string,
): { bytes: number } | { unbounded: string } {
  const resolved: Record<string, string> = {};
  for (const [name, value] of Object.entries(variables)) {
    const text = longest(value, template.Resources ?? {}, template.Parameters ?? {}, stackName);
    if ('unbounded' in text) return { unbounded: `${name}: ${text.unbounded}` };
    resolved[name] = text.text;
  }
  return { bytes: Buffer.byteLength(JSON.stringify(resolved), 'utf8') };
}

export function checkLambdaEnvironments(
  template: { Resources?: Record<string, Json>; Parameters?: Record<string, Json> },
  stackName: string,
): EnvironmentFinding[] {
  const findings: EnvironmentFinding[] = [];
  const typed = template as { Resources?: Resources; Parameters?: Parameters };
  for (const [logicalId, resource] of Object.entries(typed.Resources ?? {})) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    const variables = (resource.Properties?.Environment as { Variables?: Record<string, Json> } | undefined)?.Variables;
    if (!variables) continue;
    const size = environmentBytes(variables, typed, stackName);
    if ('unbounded' in size) {
      findings.push({
        logicalId,
        message: `an environment variable of unknown length at deploy time (${size.unbounded})`,
      });
    } else if (size.bytes > LAMBDA_ENVIRONMENT_LIMIT) {
      const largest = Object.entries(variables)
        .map(([name, value]) => [name, JSON.stringify(value).length] as const)
        .sort((a, b) => b[1] - a[1])[0]?.[0];
      findings.push({
        logicalId,
        message:
          `its environment variables can take ${size.bytes} bytes once deployed, over Lambda's ${LAMBDA_ENVIRONMENT_LIMIT}` +
          ` (the largest: ${largest}${largest === 'SOURCE_API_KEY_IDS' ? ', one entry per source of sourceRateLimits' : ''})`,
      });
    }
  }
  return findings;
}
