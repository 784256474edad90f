import { createServer } from 'node:net';
import { Worker } from 'node:worker_threads';

/**
 * s3rver: the real S3 wire protocol, objects stored as files under `directory`, run in a worker thread
 * (local/store/embedded-s3-worker.mjs) so it does not take CPU from the gateway's event loop (bench/: about 20 % of it).
 */
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

export async function startEmbeddedS3(options: {
  directory: string;
  port: number;
  bucket: string;
}): Promise<EmbeddedS3> {
  if (options.bucket.length < 3)
    throw new Error(`bucket name "${options.bucket}" is too short: S3 bucket names need 3 to 63 characters`);
  await assertPortFree('127.0.0.1', options.port);
  const worker = new Worker(new URL('./embedded-s3-worker.mjs', import.meta.url), { workerData: options });
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', (message: { type: string; port?: number; message?: string; code?: string }) => {
      worker.off('error', reject);
      if (message.type === 'ready') resolve(message.port!);
      else
        reject(
          Object.assign(new Error(message.message ?? 'the embedded S3 did not start'), {
            code: message.code,
            port: options.port,
          }),
        );
    });
  }).catch(async (error: unknown) => {
    await worker.terminate();
    throw error;
  });
  worker.unref();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    async close() {
      const closed = new Promise<void>((resolve) => {
        worker.once('exit', () => resolve());
        worker.on('message', (message: { type: string }) => {
          if (message.type === 'closed') void worker.terminate();
        });
      });
      worker.postMessage('close');
      await closed;
    },
  };
}
