import path from 'node:path';
import type { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { ConversationFunctions } from './conversation-functions.ts';
import { expressStateMachine } from './express-state-machine.ts';
import { PROJECT_ROOT } from './stage-function.ts';

/** The redelivery ASL (Deliver → Export), shared with the local engine. */
export const REDELIVERY_DEFINITION_FILE = path.join(PROJECT_ROOT, 'statemachine', 'redelivery.asl.json');

export interface RedeliveryWorkflowProps {
  readonly functions: ConversationFunctions;
  readonly logRetention: RetentionDays;
  /** Each state's input and output in the execution log (observabilityProfile). */
  readonly includeExecutionData: boolean;
}

/**
 * The Express "redelivery" state machine (statemachine/redelivery.asl.json): one more delivery attempt of a failed
 * delivery with the same Deliver and Export Lambdas as the conversation workflow, so that every attempt lands in
 * the same export and the same logs. Started by the redelivery scheduler (and by operators' redrives), never by the
 * API: no API role may start it. Its role may invoke Deliver and Export, nothing else.
 */
export class RedeliveryWorkflow extends Construct {
  readonly stateMachine: StateMachine;
  readonly logGroup: LogGroup;
  readonly substitutions: Record<string, string>;

  constructor(scope: Construct, id: string, props: RedeliveryWorkflowProps) {
    super(scope, id);
    const { deliver, export: exportFn } = props.functions;
    this.substitutions = { DeliverFunctionArn: deliver.functionArn, ExportFunctionArn: exportFn.functionArn };
    const { stateMachine, logGroup } = expressStateMachine(this, {
      name: 'redelivery',
      definitionFile: REDELIVERY_DEFINITION_FILE,
      substitutions: this.substitutions,
      invokes: [deliver, exportFn],
      logRetention: props.logRetention,
      includeExecutionData: props.includeExecutionData,
    });
    this.stateMachine = stateMachine;
    this.logGroup = logGroup;
  }
}
