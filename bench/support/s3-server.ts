/**
 * `node --import tsx bench/support/s3-server.ts <directory> <bucket>`: the gateway's own embedded S3
 * (local/store/embedded-s3.ts) started in a process of its own. Prints its endpoint; its HTTP server keeps the process
 * alive until SIGINT/SIGTERM. The bench points AWS_ENDPOINT_URL_S3 at it: the handlers' S3 client then talks HTTP to
 * another process (the design before the in-process transport), which the bench compares with `npm start`.
 */
import '../../local/node-warnings.ts';
import { startEmbeddedS3 } from '../../local/store/embedded-s3.ts';

const [directory, bucket] = process.argv.slice(2);
if (!directory || !bucket) throw new Error('usage: s3-server.ts <directory> <bucket>');
const s3 = await startEmbeddedS3({ directory, port: 0, bucket });
process.stdout.write(`endpoint ${s3.endpoint}\n`);
await new Promise<void>((resolve) => {
  process.once('SIGINT', resolve);
  process.once('SIGTERM', resolve);
});
await s3.close();
