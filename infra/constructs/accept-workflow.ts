import path from 'node:path';
import { Aws } from 'aws-cdk-lib';
import type { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { ConversationFunctions } from './conversation-functions.ts';
import { expressStateMachine } from './express-state-machine.ts';
import { PROJECT_ROOT } from './stage-function.ts';

/** The accept workflow's ASL, shared with the local engine. */
export const ACCEPT_DEFINITION_FILE = path.join(PROJECT_ROOT, 'statemachine', 'accept.asl.json');

export interface AcceptWorkflowProps {
  readonly functions: ConversationFunctions;
  /** The conversation workflow its StartConversation state starts (asynchronously: Request Response). */
  readonly conversationStateMachine: StateMachine;
  readonly logRetention: RetentionDays;
  /** The observability profile: the execution log keeps each state's input and output (`full`) or not (`lean`). */
  readonly includeExecutionData: boolean;
}

/**
 * The Express "accept" state machine (statemachine/accept.asl.json): POST /webhook with `Prefer: respond-async`
 * runs it synchronously through the same integration and request mapping as a synchronous POST. It validates the
 * request (Validate, told `accept`), starts the conversation workflow's run named after the conversation
 * (`states:startExecution`, not waiting: the run's history is one execution of the conversation workflow) and
 * answers at once (→ 202). Its role may invoke Validate and Export and start that one state machine, nothing else.
 */
export class AcceptWorkflow extends Construct {
  readonly stateMachine: StateMachine;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: AcceptWorkflowProps) {
    super(scope, id);
    const fns = props.functions;
    const { stateMachine, logGroup } = expressStateMachine(this, {
      name: 'accept',
      definitionFile: ACCEPT_DEFINITION_FILE,
      substitutions: {
        ValidateFunctionArn: fns.validate.functionArn,
        ExportFunctionArn: fns.export.functionArn,
        ConversationStateMachineArn: props.conversationStateMachine.stateMachineArn,
        Partition: Aws.PARTITION,
      },
      invokes: [fns.validate, fns.export],
      logRetention: props.logRetention,
      includeExecutionData: props.includeExecutionData,
    });
    props.conversationStateMachine.grantStartExecution(stateMachine);
    this.stateMachine = stateMachine;
    this.logGroup = logGroup;
  }
}
