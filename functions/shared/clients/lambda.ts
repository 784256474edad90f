import { LambdaClient } from '@aws-sdk/client-lambda';
import { tracer } from '../powertools.ts';

/**
 * Endpoint from AWS_ENDPOINT_URL_LAMBDA when set (SDK convention). Step Functions retries Lambda.* errors itself.
 * The middleware stack is resolved once per command type (cacheMiddleware) instead of on every send.
 */
export const lambda = tracer.captureAWSv3Client(new LambdaClient({ maxAttempts: 2, cacheMiddleware: true }));
