import { SQSClient } from '@aws-sdk/client-sqs';
import { tracer } from '../powertools.ts';
import { limitedClientSettings } from './request-limits.ts';

/**
 * Endpoint from AWS_ENDPOINT_URL_SQS when set (SDK convention). Time-limited (request-limits.ts); a ReceiveMessage
 * that long-polls is given its wait on top (functions/shared/failed-delivery-queue.ts).
 */
export const sqs = tracer.captureAWSv3Client(new SQSClient(limitedClientSettings()));
