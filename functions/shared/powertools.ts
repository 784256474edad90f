/**
 * Created once per process and imported by every stage. Service name, namespace and log level come from the
 * standard Powertools variables (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE, LOG_LEVEL).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Tracer } from '@aws-lambda-powertools/tracer';
import type { Context } from 'aws-lambda';
import { METRICS_NAMESPACE, SERVICE_NAME, STACK_DIMENSION, STACK_NAME_VARIABLE } from '../domain/observability.ts';

export { METRICS_NAMESPACE, SERVICE_NAME };

export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME });
const stackName = process.env[STACK_NAME_VARIABLE];
export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE,
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME,
  ...(stackName ? { defaultDimensions: { [STACK_DIMENSION]: stackName } } : {}),
});

/** What the stages use of the Tracer. */
export type StageTracer = Pick<Tracer, 'captureAWSv3Client' | 'isTracingEnabled' | 'getSegment' | 'setSegment'>;

/**
 * Tracing off (POWERTOOLS_TRACE_ENABLED=false, as locally and in the untraced stages): the X-Ray SDK is not even
 * loaded — it installs an async hook that slows every promise (measured in bench/). Elsewhere on Lambda this is the
 * Powertools Tracer. An untraced stage is built without it (infra/constructs/stage-function.ts): if tracing is
 * turned on there by hand, the stage says so once and runs untraced rather than failing at init.
 */
const NO_TRACING: StageTracer = {
  captureAWSv3Client: <T>(client: T) => client,
  isTracingEnabled: () => false,
  getSegment: () => undefined,
  setSegment: () => undefined,
};
async function stageTracer(): Promise<StageTracer> {
  if (process.env.POWERTOOLS_TRACE_ENABLED === 'false') return NO_TRACING;
  let module: typeof import('@aws-lambda-powertools/tracer');
  try {
    module = await import('@aws-lambda-powertools/tracer');
  } catch (error) {
    logger.warn('POWERTOOLS_TRACE_ENABLED asks for tracing, but this stage is built without the Tracer: not traced', {
      reason: (error as Error).message,
    });
    return NO_TRACING;
  }
  return new module.Tracer({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME });
}
export const tracer: StageTracer = await stageTracer();
export { MetricUnit };

/**
 * Wrap a stage function as a Lambda handler: a tracing subsegment named after the stage, the Lambda context on
 * log lines when there is one, and the stage's metrics flushed (EMF) when it ends, whether it succeeded or threw.
 * Nothing here is conversation state: concurrent invocations in one process (the local engine) stay apart.
 */
export function stageHandler<I, O>(stage: string, fn: (input: I, context?: Context) => Promise<O>) {
  return async (event: I, context?: Context): Promise<O> => {
    if (context?.awsRequestId) logger.addContext(context);
    const parent = tracer.isTracingEnabled() ? tracer.getSegment() : undefined;
    const segment = parent?.addNewSubsegment(`## ${stage}`);
    if (segment) tracer.setSegment(segment);
    try {
      const result = await fn(event, context);
      return result;
    } catch (error) {
      segment?.addError(error as Error);
      throw error;
    } finally {
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
      if (segment && parent) {
        segment.close();
        tracer.setSegment(parent);
      }
    }
  };
}
