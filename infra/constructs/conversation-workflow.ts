import path from 'node:path';
import { Validations } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { ConversationFunctions } from './conversation-functions.ts';
import { PROJECT_ROOT } from './stage-function.ts';

/** The one ASL definition, shared with the local engine. */
export const DEFINITION_FILE = path.join(PROJECT_ROOT, 'statemachine', 'conversation.asl.json');

export interface ConversationWorkflowProps {
  readonly functions: ConversationFunctions;
  readonly failedDeliveryQueue: IQueue;
  readonly logRetention: RetentionDays;
}

/**
 * The Express "conversation" state machine, loaded from statemachine/conversation.asl.json with the real ARNs
 * substituted for its ${…} placeholders. Express history exists only in CloudWatch Logs, so every event is
 * logged with its data (level ALL, includeExecutionData) to a log group with a retention; X-Ray traces each run.
 * Its role may invoke the five stage functions and send to the failed-delivery queue, nothing else.
 */
export class ConversationWorkflow extends Construct {
  readonly stateMachine: StateMachine;
  readonly logGroup: LogGroup;
  /** Placeholder → value, as given to definitionSubstitutions. */
  readonly substitutions: Record<string, string>;

  constructor(scope: Construct, id: string, props: ConversationWorkflowProps) {
    super(scope, id);
    const fns = props.functions;
    this.substitutions = {
      ValidateFunctionArn: fns.validate.functionArn,
      InvokeAgentFunctionArn: fns.invokeAgent.functionArn,
      ClassifyFunctionArn: fns.classify.functionArn,
      DeliverFunctionArn: fns.deliver.functionArn,
      ExportFunctionArn: fns.export.functionArn,
      FailedDeliveryQueueUrl: props.failedDeliveryQueue.queueUrl,
    };
    this.logGroup = new LogGroup(this, 'ExecutionLogs', { retention: props.logRetention });
    this.stateMachine = new StateMachine(this, 'StateMachine', {
      stateMachineType: StateMachineType.EXPRESS,
      definitionBody: DefinitionBody.fromFile(DEFINITION_FILE),
      definitionSubstitutions: this.substitutions,
      logs: { destination: this.logGroup, level: LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
    });
    // The ASL uses plain function ARNs as Resource: exactly these five, unqualified.
    this.stateMachine.addToRolePolicy(
      new PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: fns.all.map((fn) => fn.functionArn) }),
    );
    this.stateMachine.addToRolePolicy(
      new PolicyStatement({ actions: ['sqs:SendMessage'], resources: [props.failedDeliveryQueue.queueArn] }),
    );
    Validations.of(this.stateMachine.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Only the statements Step Functions requires for logging to CloudWatch Logs (logs:*LogDelivery, PutResourcePolicy, Describe*) and for X-Ray tracing use "*": those APIs have no resource-level permissions.',
    });
  }
}
