/**
 * `node --import tsx bench/support/s3-server.ts <directory> <bucket>`: the gateway's own embedded S3
 * (local/store/embedded-s3.ts, s3rver) started in a process of its own. Prints its endpoint, runs until SIGINT/SIGTERM.
 * The bench points AWS_ENDPOINT_URL_S3 at it to measure what moving S3 off the gateway's thread would give.
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
