import { SQSClient } from '@aws-sdk/client-sqs';
import { tracer } from '../powertools.ts';
import { limitedClientSettings } from './request-limits.ts';

/**
 * Endpoint from AWS_ENDPOINT_URL_SQS when set (SDK convention). Time-limited (request-limits.ts); a ReceiveMessage
 * that long-polls is given its wait on top of the request limit (functions/shared/failed-delivery-queue.ts), not of
 * the silence limit: the queue is silent while it waits, so the wait stays under 2 s.
 */
export const sqs = tracer.captureAWSv3Client(new SQSClient(limitedClientSettings()));
