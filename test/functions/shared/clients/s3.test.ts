import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { injectClientSettings } from '../../../../functions/shared/clients/injected-settings.ts';

/**
 * A request handler the host injects (locally, the in-process transport to the embedded S3) replaces the time-limited
 * one the S3 client is otherwise built with (functions/shared/clients/request-limits.ts): every request goes to it.
 */
describe('the stages’ S3 client', () => {
  it('uses the injected request handler, not the time-limited one', async () => {
    const requests: string[] = [];
    const requestHandler = {
      handle: async (request: { method: string; path: string }) => {
        requests.push(`${request.method} ${request.path}`);
        return { response: { statusCode: 200, headers: {}, body: new Uint8Array() } };
      },
    };
    injectClientSettings('s3', { requestHandler });
    const { s3 } = await import('../../../../functions/shared/clients/s3.ts');

    await s3.send(new PutObjectCommand({ Bucket: 'exports', Key: 'conv.json', Body: '{}' }));

    expect(s3.config.requestHandler).toBe(requestHandler);
    expect(requests).toEqual([expect.stringMatching(/^PUT .*conv\.json$/)]);
  });
});
