import { PutObjectCommand } from '@aws-sdk/client-s3';
import { beforeEach, describe, expect, it } from 'vitest';
import { injectClientSettings } from '../../../../functions/shared/clients/injected-settings.ts';
import { createAwsClients } from '../../../../local/cli/aws/stack.ts';

interface SentRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}

/** What S3 answers: 200, or the redirect it sends to a request signed for another region than the bucket's. */
const PERMANENT_REDIRECT = (bucketRegion: string) => ({
  statusCode: 301,
  headers: { 'x-amz-bucket-region': bucketRegion, 'content-type': 'application/xml' },
  body: new TextEncoder().encode(
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message></Error>',
  ),
});

/** A fake S3 with one bucket in `bucketRegion`: each request is recorded with the region its signature names. */
function s3WithBucketIn(bucketRegion: string) {
  const requests: string[] = [];
  const handler = {
    handle: async (request: SentRequest) => {
      const region = /Credential=[^/]+\/\d{8}\/([^/]+)\/s3\//.exec(request.headers.authorization ?? '')?.[1];
      requests.push(`${request.method} ${request.path} signed for ${region}`);
      return {
        response:
          region === bucketRegion
            ? { statusCode: 200, headers: {}, body: new Uint8Array() }
            : PERMANENT_REDIRECT(bucketRegion),
      };
    },
  };
  return { handler, requests };
}

// One client per process: the handler it was built with answers as the current test's fake S3 does.
let current = s3WithBucketIn('us-east-1');
const requestHandler = { handle: (request: SentRequest) => current.handler.handle(request) };
const injected = { requestHandler };
beforeEach(() => {
  current = s3WithBucketIn('us-east-1');
});

/**
 * A request handler the host injects (locally, the in-process transport to the embedded S3) replaces the time-limited
 * one the S3 client is otherwise built with (functions/shared/clients/request-limits.ts): every request goes to it.
 */
describe('the stages’ S3 client', () => {
  it('uses the injected request handler, not the time-limited one', async () => {
    injectClientSettings('s3', injected);
    const { s3 } = await import('../../../../functions/shared/clients/s3.ts');

    await s3.send(new PutObjectCommand({ Bucket: 'exports', Key: 'conv.json', Body: '{}' }));

    expect(s3.config.requestHandler).toBe(requestHandler);
    expect(current.requests).toEqual([expect.stringMatching(/^PUT .*conv\.json signed for us-east-1$/)]);
  });

  it('exports into an existing bucket of another region: it follows S3’s redirect to the bucket’s region', async () => {
    injectClientSettings('s3', injected);
    const { s3 } = await import('../../../../functions/shared/clients/s3.ts');
    current = s3WithBucketIn('eu-central-1'); // the function runs in us-east-1 (test/setup.ts)

    const put = await s3.send(new PutObjectCommand({ Bucket: 'exports', Key: 'conv.json', Body: '{}' }));

    expect(put.$metadata.httpStatusCode).toBe(200);
    expect(current.requests).toEqual([
      expect.stringMatching(/^PUT .*conv\.json signed for us-east-1$/),
      expect.stringMatching(/^PUT .*conv\.json signed for eu-central-1$/),
    ]);
  });
});

describe('the command line’s S3 client (--aws)', () => {
  it('reads an export bucket of another region than the one it was given: it follows S3’s redirect', async () => {
    const { s3 } = createAwsClients('eu-west-1');
    (s3.config as { requestHandler: unknown }).requestHandler = requestHandler;
    current = s3WithBucketIn('ap-southeast-2');

    const put = await s3.send(new PutObjectCommand({ Bucket: 'exports', Key: 'conv.json', Body: '{}' }));

    expect(put.$metadata.httpStatusCode).toBe(200);
    expect(current.requests.map((r) => r.replace(/^PUT .* signed/, 'PUT signed'))).toEqual([
      'PUT signed for eu-west-1',
      'PUT signed for ap-southeast-2',
    ]);
  });
});
