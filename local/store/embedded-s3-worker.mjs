// The embedded S3 (s3rver) in its own thread, so its XML and file work does not share the gateway's event loop.
// Plain JavaScript: a worker thread does not inherit the tsx loader of the main thread.
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

const require = createRequire(import.meta.url);
const S3rver = require('s3rver');

// s3rver only knows the access key `S3RVER`. A local emulator accepts whatever credentials the SDK found (fake ones
// in tests, a developer's profile): unknown key ids map to s3rver's own account; signatures are not checked.
const AWSAccount = require('s3rver/lib/models/account.js');
const get = AWSAccount.registry.get.bind(AWSAccount.registry);
AWSAccount.registry.get = (key) => get(key) ?? AWSAccount.DUMMY_ACCOUNT;

const server = new S3rver({
  address: '127.0.0.1',
  port: workerData.port,
  silent: true,
  directory: workerData.directory,
  allowMismatchedSignatures: true,
  configureBuckets: [{ name: workerData.bucket }],
});

server.run().then(
  ({ port }) => parentPort.postMessage({ type: 'ready', port }),
  (error) => parentPort.postMessage({ type: 'failed', message: error.message, code: error.code }),
);

parentPort.on('message', async (message) => {
  if (message !== 'close') return;
  server.httpServer?.closeAllConnections();
  await server.close().catch(() => undefined);
  parentPort.postMessage({ type: 'closed' });
  parentPort.close();
});
