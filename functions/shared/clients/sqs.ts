import { SQSClient } from '@aws-sdk/client-sqs';
import { tracer } from '../powertools.ts';

/** Endpoint from AWS_ENDPOINT_URL_SQS when set (SDK convention). */
export const sqs = tracer.captureAWSv3Client(new SQSClient({}));
