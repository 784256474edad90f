import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import S3rver from 's3rver';

/**
 * s3rver only knows the access key `S3RVER`. A local emulator should accept whatever credentials the SDK found
 * (fake ones in tests, a developer's profile): unknown key ids map to s3rver's own account, and signatures are not
 * checked (allowMismatchedSignatures).
 */
function acceptAnyAccessKey(): void {
  const AWSAccount = createRequire(import.meta.url)('s3rver/lib/models/account.js') as {
    registry: Map<string, unknown> & { acceptsAny?: boolean };
    DUMMY_ACCOUNT: unknown;
  };
  const registry = AWSAccount.registry;
  if (registry.acceptsAny) return;
  const get = registry.get.bind(registry);
  registry.get = (key: string) => get(key) ?? AWSAccount.DUMMY_ACCOUNT;
  registry.acceptsAny = true;
}

/** s3rver: the real S3 wire protocol, objects stored as files under `directory`. */
export interface EmbeddedS3 {
  endpoint: string;
  port: number;
  close(): Promise<void>;
}

/** s3rver crashes the process on a busy port (an unhandled 'error' event): check first, and fail with EADDRINUSE. */
function assertPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => reject(Object.assign(error, { port })));
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

export async function startEmbeddedS3(options: { directory: string; port: number; bucket: string }): Promise<EmbeddedS3> {
  acceptAnyAccessKey();
  if (options.bucket.length < 3) throw new Error(`bucket name "${options.bucket}" is too short: S3 bucket names need 3 to 63 characters`);
  await assertPortFree('127.0.0.1', options.port);
  const server = new S3rver({
    address: '127.0.0.1',
    port: options.port,
    silent: true,
    directory: options.directory,
    allowMismatchedSignatures: true,
    configureBuckets: [{ name: options.bucket }],
  });
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    async close() {
      server.httpServer?.closeAllConnections();
      await server.close();
    },
  };
}
