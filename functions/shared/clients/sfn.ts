import { SFNClient } from '@aws-sdk/client-sfn';
import { tracer } from '../powertools.ts';

/** Endpoint from AWS_ENDPOINT_URL_SFN when set (SDK convention). Starts redelivery executions (StartSyncExecution). */
export const sfn = tracer.captureAWSv3Client(new SFNClient({}));
