/**
 * The three workflows on the local engine, wired as CDK wires them on AWS: the same ASL files, local ARNs in place
 * of the real ones, each Lambda ARN routed to the same handler module, the optimized Lambda integration to a real
 * Lambda Invoke of the manager agent (lambda-invoke.ts: the gateway's sample agent unless AWS_ENDPOINT_URL_LAMBDA
 * says otherwise), the SQS integration to the local failed-delivery store, and the accept workflow's StartExecution
 * to the gateway, which runs the conversation workflow without anyone waiting for it.
 */
import path from 'node:path';
import type { RateClock } from '../../functions/shared/receivers.ts';
import { STATEMACHINE_DIR } from '../paths.ts';
import { LocalWorkflow, type TaskHandler } from './engine.ts';
import { invokeLambdaTask } from './lambda-invoke.ts';

const LOCAL_ACCOUNT = '000000000000';
const localFunctionArn = (stage: string) =>
  `arn:aws:lambda:us-east-1:${LOCAL_ACCOUNT}:function:webhook-gateway-${stage}`;
const LOCAL_FAILED_DELIVERY_QUEUE_URL = 'local://failed-deliveries';
const localStateMachineArn = (name: WorkflowName) => `arn:aws:states:us-east-1:${LOCAL_ACCOUNT}:stateMachine:${name}`;

export type WorkflowName = 'conversation' | 'redelivery' | 'accept';

export type Stage = 'validate' | 'classify' | 'deliver' | 'export';
export type StageHandlers = Record<Stage, TaskHandler>;

/**
 * Import the five handlers. Call it only after the environment is set: their SDK clients read their endpoints then.
 * `budgetClock` (tests only, GatewayOptions.budgetClock): the clock Validate, Deliver and Export count a
 * conversation's budget on, instead of the real one.
 */
export async function loadStageHandlers(budgetClock?: RateClock): Promise<StageHandlers> {
  const [validate, classify, deliver, exportStage] = await Promise.all([
    import('../../functions/validate/handler.ts'),
    import('../../functions/classify/handler.ts'),
    import('../../functions/deliver/handler.ts'),
    import('../../functions/export/handler.ts'),
  ]);
  const wrap =
    (fn: (event: never) => Promise<unknown>): TaskHandler =>
    (input) =>
      fn(input as never);
  return {
    validate: wrap(budgetClock ? validate.validateOn(budgetClock.now) : validate.handler),
    classify: wrap(classify.handler),
    deliver: wrap(budgetClock ? deliver.deliverOn(budgetClock) : deliver.handler),
    export: wrap(budgetClock ? exportStage.exportOn(budgetClock.now) : exportStage.handler),
  };
}

/**
 * The definitions' placeholders, locally. The agent is the function MANAGER_AGENT_FUNCTION_NAME names (the gateway
 * sets its default before it builds the workflows).
 */
const localSubstitutions = (env: NodeJS.ProcessEnv = process.env) => ({
  ValidateFunctionArn: localFunctionArn('validate'),
  AgentFunctionArn: requiredAgentName(env),
  ClassifyFunctionArn: localFunctionArn('classify'),
  DeliverFunctionArn: localFunctionArn('deliver'),
  ExportFunctionArn: localFunctionArn('export'),
  FailedDeliveryQueueUrl: LOCAL_FAILED_DELIVERY_QUEUE_URL,
  ConversationStateMachineArn: localStateMachineArn('conversation'),
  Partition: 'aws',
});

function requiredAgentName(env: NodeJS.ProcessEnv): string {
  const name = env.MANAGER_AGENT_FUNCTION_NAME;
  if (!name) throw new Error('MANAGER_AGENT_FUNCTION_NAME is not set: the local workflow cannot name its agent');
  return name;
}

export function localWorkflow(
  name: WorkflowName,
  handlers: StageHandlers,
  sendFailedDelivery: TaskHandler,
  retryIntervalOverrides?: Record<string, number | number[]>,
  /** The optimized Lambda integration (the agent); bench only replaces it with an in-process stub. */
  invokeLambda: TaskHandler = (input, task) => invokeLambdaTask(input, task?.timeoutMs),
  /** The accept workflow's `states:startExecution` (the gateway starts the run); refused where nobody wired it. */
  startExecution: TaskHandler = async () => {
    throw new Error('StartExecution is not wired in this local workflow');
  },
): LocalWorkflow {
  const resources: Record<string, TaskHandler> = {
    'arn:aws:states:::sqs:sendMessage': sendFailedDelivery,
    'arn:aws:states:::lambda:invoke': invokeLambda,
    'arn:aws:states:::states:startExecution': startExecution,
  };
  for (const [stage, handler] of Object.entries(handlers)) resources[localFunctionArn(stage)] = handler;
  return new LocalWorkflow({
    name,
    file: path.join(STATEMACHINE_DIR, `${name}.asl.json`),
    substitutions: localSubstitutions(),
    resources,
    retryIntervalOverrides,
  });
}
