import { S3Client, PutObjectCommand } from '@aws-sdk/client-s3';
export const s3 = new S3Client({});
export const C = PutObjectCommand;
