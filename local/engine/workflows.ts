import path from 'node:path';
import { STATEMACHINE_DIR } from '../paths.ts';
import { LocalWorkflow, type TaskHandler } from './engine.ts';

/**
 * The two workflows on the local engine, wired as CDK wires them on AWS: the same ASL files, local ARNs in place
 * of the real ones, each Lambda ARN routed to the same handler module, and the SQS integration to the local
 * failed-delivery store.
 */
export const LOCAL_ACCOUNT = '000000000000';
export const localFunctionArn = (stage: string) =>
  `arn:aws:lambda:us-east-1:${LOCAL_ACCOUNT}:function:webhook-gateway-${stage}`;
export const LOCAL_FAILED_DELIVERY_QUEUE_URL = 'local://failed-deliveries';

export type Stage = 'validate' | 'invoke-agent' | 'classify' | 'deliver' | 'export';
export type StageHandlers = Record<Stage, TaskHandler>;

/** Import the five handlers. Call it only after the environment is set: their SDK clients read their endpoints then. */
export async function loadStageHandlers(): Promise<StageHandlers> {
  const [validate, invokeAgent, classify, deliver, exportStage] = await Promise.all([
    import('../../functions/validate/handler.ts'),
    import('../../functions/invoke-agent/handler.ts'),
    import('../../functions/classify/handler.ts'),
    import('../../functions/deliver/handler.ts'),
    import('../../functions/export/handler.ts'),
  ]);
  const wrap =
    (fn: (event: never) => Promise<unknown>): TaskHandler =>
    (input) =>
      fn(input as never);
  return {
    validate: wrap(validate.handler),
    'invoke-agent': wrap(invokeAgent.handler),
    classify: wrap(classify.handler),
    deliver: wrap(deliver.handler),
    export: wrap(exportStage.handler),
  };
}

export const LOCAL_SUBSTITUTIONS = {
  ValidateFunctionArn: localFunctionArn('validate'),
  InvokeAgentFunctionArn: localFunctionArn('invoke-agent'),
  ClassifyFunctionArn: localFunctionArn('classify'),
  DeliverFunctionArn: localFunctionArn('deliver'),
  ExportFunctionArn: localFunctionArn('export'),
  FailedDeliveryQueueUrl: LOCAL_FAILED_DELIVERY_QUEUE_URL,
};

export function localWorkflow(
  name: 'conversation' | 'redelivery',
  handlers: StageHandlers,
  sendFailedDelivery: TaskHandler,
  retryIntervalOverrides?: Record<string, number | number[]>,
): LocalWorkflow {
  const resources: Record<string, TaskHandler> = { 'arn:aws:states:::sqs:sendMessage': sendFailedDelivery };
  for (const [stage, handler] of Object.entries(handlers)) resources[localFunctionArn(stage)] = handler;
  return new LocalWorkflow({
    name,
    file: path.join(STATEMACHINE_DIR, `${name}.asl.json`),
    substitutions: LOCAL_SUBSTITUTIONS,
    resources,
    retryIntervalOverrides,
  });
}
