import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { settings } from '../settings.ts';
import { injectedSettings } from './injected-settings.ts';
import { limitedClientSettings } from './request-limits.ts';

/**
 * The settings of every S3 client of a function (./s3.ts; the one given-up.ts makes on first use). Endpoint from
 * AWS_ENDPOINT_URL_S3 when set (SDK convention); path-style addressing when S3_FORCE_PATH_STYLE=true. An existing
 * export bucket (context exportBucketName) may be in another region than the stack: S3 answers such a request with a
 * redirect naming the bucket's region, which the client follows (docs/deploy.md, "Another region"). The middleware
 * stack is resolved once per command type (cacheMiddleware) instead of on every send. Time-limited (request-limits.ts)
 * unless the host injects its own transport (locally, the in-process one to the embedded S3).
 */
export const s3ClientSettings = (): S3ClientConfig => ({
  forcePathStyle: settings().s3ForcePathStyle,
  followRegionRedirects: true,
  cacheMiddleware: true,
  ...limitedClientSettings(),
  ...injectedSettings('s3'),
});
