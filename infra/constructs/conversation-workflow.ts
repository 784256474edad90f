import { Aws } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { CONVERSATION_DEFINITION_FILE } from '../config.ts';
import { agentFunctionArn, type ConversationFunctions } from './conversation-functions.ts';
import { expressStateMachine } from './express-state-machine.ts';

/** The one ASL definition, shared with the local engine. */
export const DEFINITION_FILE = CONVERSATION_DEFINITION_FILE;

export interface ConversationWorkflowProps {
  readonly functions: ConversationFunctions;
  readonly failedDeliveryQueue: IQueue;
  readonly logRetention: RetentionDays;
  /** Each state's input and output in the execution log (observabilityProfile). */
  readonly includeExecutionData: boolean;
  /** The manager agent: a name, `name:alias` or ARN (context agentFunctionName). */
  readonly agentFunctionName: string;
}

/**
 * The Express "conversation" state machine, loaded from statemachine/conversation.asl.json with the real ARNs
 * substituted for its ${…} placeholders, logged (level ALL, with data) and traced like every workflow of the stack
 * (express-state-machine.ts). Its role may invoke the four stage functions and the manager agent (which its
 * InvokeManagerAgent state calls itself, through the optimized Lambda integration) and send to the failed-delivery
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
    const agentArn = agentFunctionArn(this, props.agentFunctionName);
    this.substitutions = {
      ValidateFunctionArn: fns.validate.functionArn,
      AgentFunctionArn: agentArn,
      ClassifyFunctionArn: fns.classify.functionArn,
      DeliverFunctionArn: fns.deliver.functionArn,
      ExportFunctionArn: fns.export.functionArn,
      FailedDeliveryQueueUrl: props.failedDeliveryQueue.queueUrl,
      // The service integrations' ARNs (`arn:<partition>:states:::lambda:invoke`): `aws` is not every partition's.
      Partition: Aws.PARTITION,
    };
    const { stateMachine, logGroup } = expressStateMachine(this, {
      name: 'conversation',
      definitionFile: DEFINITION_FILE,
      substitutions: this.substitutions,
      invokes: fns.all,
      logRetention: props.logRetention,
      includeExecutionData: props.includeExecutionData,
    });
    stateMachine.addToRolePolicy(
      new PolicyStatement({ actions: ['sqs:SendMessage'], resources: [props.failedDeliveryQueue.queueArn] }),
    );
    stateMachine.addToRolePolicy(new PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [agentArn] }));
    this.stateMachine = stateMachine;
    this.logGroup = logGroup;
  }
}
