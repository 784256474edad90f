import { S3Client } from '@aws-sdk/client-s3';
import { tracer } from '../powertools.ts';
import { s3ClientSettings } from './s3-settings.ts';

/** The function's S3 client (Export's PUTs): its settings in ./s3-settings.ts. */
export const s3 = tracer.captureAWSv3Client(new S3Client(s3ClientSettings()));
