import { readFileSync } from 'node:fs';
import { loadAwsServiceSpecSync } from '@aws-cdk/aws-service-spec';
import {
  type IPolicyValidationContext,
  type IPolicyValidationPlugin,
  type PolicyValidationPluginReport,
  type PolicyViolation,
  Stack,
} from 'aws-cdk-lib';
import { checkLambdaEnvironments } from './lambda-environment.ts';
import { checkNames } from './name-limits.ts';
import { ResourceSpecification } from './resource-specification.ts';
import { checkStateMachineDefinitions } from './state-machine-definitions.ts';

/** Everything wrong with one synthesized template, as one list of rule, resource and message. */
export interface TemplateFinding {
  rule: 'resource-specification' | 'name-limits' | 'state-machine-definition' | 'lambda-environment';
  logicalId: string;
  message: string;
}

let specification: ResourceSpecification | undefined;

/** The CloudFormation resource model (loaded once per process: about a second). */
export function resourceSpecification(): ResourceSpecification {
  specification ??= new ResourceSpecification(loadAwsServiceSpecSync());
  return specification;
}

export function checkTemplate(template: Record<string, unknown>, stackName: string): TemplateFinding[] {
  return [
    ...resourceSpecification()
      .check(template)
      .map((f) => ({
        rule: 'resource-specification' as const,
        logicalId: f.logicalId,
        message: `${f.resourceType} ${f.path}: ${f.message}`,
      })),
    ...checkNames(template, stackName).map((f) => ({
      rule: 'name-limits' as const,
      logicalId: f.logicalId,
      message: `${f.resourceType} ${f.property} "${f.name}": ${f.message}`,
    })),
    ...checkStateMachineDefinitions(template).map((f) => ({
      rule: 'state-machine-definition' as const,
      logicalId: f.logicalId,
      message: f.message,
    })),
    ...checkLambdaEnvironments(template as never, stackName).map((f) => ({
      rule: 'lambda-environment' as const,
      logicalId: f.logicalId,
      message: `AWS::Lambda::Function Environment: ${f.message}`,
    })),
  ];
}

/**
 * The checks above as a CDK validation plugin: `npx cdk synth` (infra/app.ts) fails, with every finding listed,
 * when a template of the app breaks the resource model, a naming limit or a state machine definition.
 */
export class TemplateChecks implements IPolicyValidationPlugin {
  readonly name = 'webhook-gateway template checks';
  readonly ruleIds = ['resource-specification', 'name-limits', 'state-machine-definition', 'lambda-environment'];

  validate(context: IPolicyValidationContext): PolicyValidationPluginReport {
    const stacks = context.appConstruct.node.findAll().filter((c): c is Stack => Stack.isStack(c));
    const violations: PolicyViolation[] = [];
    for (const templatePath of context.templatePaths) {
      const stack = stacks.find((s) => templatePath.endsWith(s.templateFile));
      const template = JSON.parse(readFileSync(templatePath, 'utf8')) as Record<string, unknown>;
      for (const finding of checkTemplate(template, stack?.stackName ?? '')) {
        violations.push({
          ruleName: finding.rule,
          description: finding.message,
          violatingResources: [{ resourceLogicalId: finding.logicalId, templatePath, locations: [] }],
          severity: 'error',
        });
      }
    }
    return { success: violations.length === 0, violations };
  }
}
