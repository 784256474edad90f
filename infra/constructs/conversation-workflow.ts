import path from 'node:path';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { ConversationFunctions } from './conversation-functions.ts';
import { expressStateMachine } from './express-state-machine.ts';
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
 * substituted for its ${…} placeholders, logged (level ALL, with data) and traced like every workflow of the stack
 * (express-state-machine.ts). Its role may invoke the five stage functions and send to the failed-delivery
 * queue, nothing else. POST /webhook starts it.
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
    const { stateMachine, logGroup } = expressStateMachine(this, {
      name: 'conversation',
      definitionFile: DEFINITION_FILE,
      substitutions: this.substitutions,
      invokes: fns.all,
      logRetention: props.logRetention,
    });
    stateMachine.addToRolePolicy(
      new PolicyStatement({ actions: ['sqs:SendMessage'], resources: [props.failedDeliveryQueue.queueArn] }),
    );
    this.stateMachine = stateMachine;
    this.logGroup = logGroup;
  }
}
