import { readFileSync } from 'node:fs';
import { CfnDeletionPolicy, type CfnResource, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { VENDED_LOGS_PREFIX } from '../template-checks/name-limits.ts';
import { secretMaskingPolicy } from './secret-masking-policy.ts';

export interface ExpressStateMachineProps {
  /** Short name of the workflow (`conversation`, `redelivery`): its log group is `/aws/vendedlogs/states/<stack>-<name>`. */
  readonly name: string;
  /** An ASL file of statemachine/, shared with the local engine. */
  readonly definitionFile: string;
  /** Placeholder → value for its ${…} placeholders. */
  readonly substitutions: Record<string, string>;
  /** The Lambdas its Task states name by plain ARN: the role may invoke exactly these. */
  readonly invokes: IFunction[];
  readonly logRetention: RetentionDays;
  /** Each state's input and output in the log (what the console shows on AWS); false: the events only. */
  readonly includeExecutionData: boolean;
}

/**
 * An Express state machine loaded from an ASL file, as both workflows of the gateway are built: Express history
 * exists only in CloudWatch Logs, so every event is logged (level ALL), with its data unless the lean
 * observability profile says otherwise (includeExecutionData), to a
 * log group of its own with a retention, which masks webhook signatures and secrets (secretMaskingPolicy: the
 * conversation's input carries the inbound `webhook-signature`), and X-Ray traces each run. Creates `ExecutionLogs` and `StateMachine`
 * in `scope`; callers add what else the role may do.
 */
export function expressStateMachine(
  scope: Construct,
  props: ExpressStateMachineProps,
): { stateMachine: StateMachine; logGroup: LogGroup } {
  // Under /aws/vendedlogs/: CloudWatch Logs' one resource policy for log deliveries (5,120 characters) covers
  // the whole prefix with one entry, instead of one ARN per log group (infra/template-checks/name-limits.ts). The
  // name is fixed, so the group goes with the stack: a kept one would make a later deploy of the stack fail. A new
  // name (the only change that replaces it) leaves the old group and its history in place instead.
  const logGroup = new LogGroup(scope, 'ExecutionLogs', {
    logGroupName: `${VENDED_LOGS_PREFIX}${Stack.of(scope).stackName}-${props.name}`,
    retention: props.logRetention,
    removalPolicy: RemovalPolicy.DESTROY,
    dataProtectionPolicy: secretMaskingPolicy(),
  });
  (logGroup.node.defaultChild as CfnResource).cfnOptions.updateReplacePolicy = CfnDeletionPolicy.RETAIN;
  const stateMachine = new StateMachine(scope, 'StateMachine', {
    stateMachineType: StateMachineType.EXPRESS,
    // Inline (DefinitionString), not an S3 asset: the template shows, and the template checks validate, the
    // definition Step Functions receives.
    definitionBody: DefinitionBody.fromString(readFileSync(props.definitionFile, 'utf8')),
    definitionSubstitutions: props.substitutions,
    logs: { destination: logGroup, level: LogLevel.ALL, includeExecutionData: props.includeExecutionData },
    tracingEnabled: true,
  });
  // The ASL uses plain function ARNs as Resource: exactly these, unqualified.
  stateMachine.addToRolePolicy(
    new PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: props.invokes.map((fn) => fn.functionArn) }),
  );
  Validations.of(stateMachine.role).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'Only the statements Step Functions requires for logging to CloudWatch Logs (logs:*LogDelivery, PutResourcePolicy, Describe*) and for X-Ray tracing use "*": those APIs have no resource-level permissions.',
  });
  return { stateMachine, logGroup };
}
