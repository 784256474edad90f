/**
 * The part of the S3 SDK that the redelivery scheduler uses, imported on first use only (functions/shared/given-up.ts:
 * the export of a delivery given up after its runs kept failing): a file of the scheduler's asset loaded with that rare
 * write instead of at every cold start (infra/stage-bundle.ts; docs/performance.md §3). Export sends its PUTs through
 * the client of ./s3.ts, on its init path.
 */
// Sent through the `sdk` that given-up.ts's exportClient() returns, which static analysis does not follow: hence the
// @public tag.
export {
  /** @public */
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
