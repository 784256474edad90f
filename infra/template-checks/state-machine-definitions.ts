import { createRequire } from 'node:module';

/**
 * Each state machine of a synthesized template, checked as Step Functions will receive it: its DefinitionString
 * with every `${…}` of DefinitionSubstitutions replaced by a value of the shape CloudFormation will put there (a
 * Lambda ARN for a function's Arn, a queue URL for a queue's Ref, …), validated by asl-validator with paths and
 * ARNs checked. A placeholder without a substitution, or a substitution no state uses, is a finding too.
 */
export interface DefinitionFinding {
  logicalId: string;
  message: string;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type AslValidator = (
  definition: unknown,
  options?: { checkPaths?: boolean; checkArn?: boolean },
) => { isValid: boolean; errorsText: (sep?: string) => string };

const REGION = 'us-east-1';
const ACCOUNT = '123456789012';
const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': REGION,
  'AWS::AccountId': ACCOUNT,
  'AWS::URLSuffix': 'amazonaws.com',
};

/** What CloudFormation will substitute for `value` (an intrinsic on a resource of the template), as an example. */
function deployedValue(value: Json, resources: Record<string, { Type?: string }>): string | null {
  if (typeof value === 'string') return value;
  if (!value || typeof value !== 'object' || Array.isArray(value)) return null;
  const join = (value as { 'Fn::Join'?: Json })['Fn::Join'];
  if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) {
    const parts = join[1].map((part) => deployedValue(part, resources));
    return parts.every((part) => part !== null) ? parts.join(join[0]) : null;
  }
  const pseudo = (value as { Ref?: Json }).Ref;
  if (typeof pseudo === 'string' && pseudo in PSEUDO) return PSEUDO[pseudo] as string;
  const getAtt = (value as { 'Fn::GetAtt'?: Json })['Fn::GetAtt'];
  const ref = (value as { Ref?: Json }).Ref;
  const target = Array.isArray(getAtt) ? String(getAtt[0]) : typeof ref === 'string' ? ref : null;
  if (target === null) return null;
  const type = resources[target]?.Type;
  const name = target.toLowerCase();
  if (type === 'AWS::Lambda::Function') return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${name}`;
  if (type === 'AWS::SQS::Queue') {
    return Array.isArray(getAtt) && getAtt[1] === 'Arn'
      ? `arn:aws:sqs:${REGION}:${ACCOUNT}:${name}`
      : `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/${name}`;
  }
  if (type === 'AWS::StepFunctions::StateMachine') return `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:${name}`;
  if (type === 'AWS::DynamoDB::Table')
    return Array.isArray(getAtt) ? `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${name}` : name;
  if (type === 'AWS::S3::Bucket') return Array.isArray(getAtt) ? `arn:aws:s3:::${name}` : name;
  return null;
}

/** The DefinitionString as text: a literal, or an Fn::Join whose parts are literals (or substituted like above). */
function definitionText(value: Json | undefined, resources: Record<string, { Type?: string }>): string | null {
  if (typeof value === 'string') return value;
  const join =
    value && typeof value === 'object' && !Array.isArray(value)
      ? (value as { 'Fn::Join'?: Json })['Fn::Join']
      : undefined;
  if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) {
    const parts = join[1].map((part) => deployedValue(part, resources));
    return parts.every((part) => part !== null) ? parts.join(join[0]) : null;
  }
  return null;
}

export function checkStateMachineDefinitions(template: { Resources?: Record<string, Json> }): DefinitionFinding[] {
  const aslValidator = createRequire(import.meta.url)('asl-validator') as AslValidator;
  const resources = (template.Resources ?? {}) as Record<string, { Type?: string; Properties?: Record<string, Json> }>;
  const findings: DefinitionFinding[] = [];
  for (const [logicalId, resource] of Object.entries(resources)) {
    if (resource.Type !== 'AWS::StepFunctions::StateMachine') continue;
    const report = (message: string) => findings.push({ logicalId, message });
    const text = definitionText(resource.Properties?.DefinitionString, resources);
    if (text === null) {
      report('DefinitionString is not a literal (or a join of known values): cannot check it');
      continue;
    }
    const substitutions = (resource.Properties?.DefinitionSubstitutions ?? {}) as Record<string, Json>;
    const used = new Set<string>();
    let unresolved = false;
    const substituted = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (whole, name: string) => {
      used.add(name);
      if (!(name in substitutions)) {
        report(`placeholder ${whole} has no DefinitionSubstitutions entry`);
        unresolved = true;
        return whole;
      }
      const value = deployedValue(substitutions[name] as Json, resources);
      if (value === null) {
        report(`substitution ${name} is not a value this check can model: ${JSON.stringify(substitutions[name])}`);
        unresolved = true;
        return whole;
      }
      return value;
    });
    for (const name of Object.keys(substitutions)) {
      if (!used.has(name)) report(`substitution ${name} is not used by the definition`);
    }
    if (unresolved) continue;
    let definition: unknown;
    try {
      definition = JSON.parse(substituted);
    } catch (error) {
      report(`the substituted definition is not JSON: ${(error as Error).message}`);
      continue;
    }
    const result = aslValidator(definition, { checkPaths: true, checkArn: true });
    if (!result.isValid) report(`asl-validator: ${result.errorsText('; ')}`);
  }
  return findings;
}
