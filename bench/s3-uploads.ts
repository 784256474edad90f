/**
 * ListMultipartUploads with many uploads in progress (`node --import tsx bench/s3-uploads.ts [uploads] [page]`, 10,000
 * by default, pages of 1,000): what one page costs over HTTP, and every page in turn by its markers, with the process's CPU (the
 * event loop's and the file thread's) and the event loop's longest stall. The uploads are written as the store lays
 * them out (object-store.ts: `.multipart/<id>/upload.json`) straight to a temporary directory, then the folder is left
 * over 2 s old (folder-index.ts: a folder within 2 s of a change has its census taken at each use). The first listing
 * reads every upload's upload.json once; the figures are of the listings after it. docs/performance.md quotes them.
 */
import '../local/node-warnings.ts';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance as perf } from 'node:perf_hooks';
import { startEmbeddedS3 } from '../local/store/embedded-s3.ts';
import { argsOrExit, parseCounts } from './support/args.ts';

const BUCKET = 'uploads-bench';
const { uploads, page: pageSize } = argsOrExit(
  () =>
    parseCounts(process.argv.slice(2), [
      { name: 'uploads', fallback: 10_000 },
      { name: 'page', fallback: 1_000 },
    ]),
  'usage: node --import tsx bench/s3-uploads.ts [uploads=10000] [page=1000]   (docs/performance.md §2)',
);

const dir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-bench-uploads-'));
try {
  mkdirSync(path.join(dir, BUCKET));
  const t0 = performance.now();
  for (let n = 0; n < uploads; n++) {
    const upload = path.join(dir, '.multipart', randomBytes(16).toString('hex'));
    mkdirSync(upload, { recursive: true });
    const key = `exports/${String(n % 997).padStart(4, '0')}/part-${n}.bin`;
    const initiated = new Date(Date.UTC(2026, 11, 1) + n).toISOString();
    writeFileSync(
      path.join(upload, 'upload.json'),
      JSON.stringify({ bucket: BUCKET, key, attributes: { contentType: 'application/octet-stream' }, initiated }),
    );
  }
  console.log(`${uploads} uploads written in ${Math.round(performance.now() - t0)} ms`);
  await new Promise((resolve) => setTimeout(resolve, 2500)); // the folder last changed over 2 s ago

  const s3 = await startEmbeddedS3({ directory: dir, port: 0, bucket: BUCKET });
  const list = async (query: string) => {
    const response = await fetch(`${s3.endpoint}/${BUCKET}?uploads&max-uploads=${pageSize}${query}`);
    const text = await response.text();
    if (!response.ok) throw new Error(`${response.status} ${text}`);
    return {
      count: [...text.matchAll(/<Upload>/g)].length,
      key: /<NextKeyMarker>([^<]*)</.exec(text)?.[1],
      id: /<NextUploadIdMarker>([^<]*)</.exec(text)?.[1],
      truncated: /<IsTruncated>true</.test(text),
    };
  };
  const measured = async <T>(fn: () => Promise<T>) => {
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const t = performance.now();
    const cpu = process.cpuUsage();
    const loop = perf.eventLoopUtilization();
    const result = await fn();
    const ms = performance.now() - t;
    const { user, system } = process.cpuUsage(cpu);
    const { active } = perf.eventLoopUtilization(loop);
    delay.disable();
    return { result, ms, cpu: (user + system) / 1000, loop: active, stall: delay.max / 1e6 };
  };
  try {
    const first = await measured(() => list(''));
    console.log(`first page (reads every upload.json once): ${first.ms.toFixed(1)} ms, CPU ${first.cpu.toFixed(1)} ms`);
    for (let i = 0; i < 3; i++) {
      const again = await measured(() => list(''));
      console.log(
        `page 1 again: ${again.ms.toFixed(1)} ms, CPU ${again.cpu.toFixed(1)} ms (event loop ${again.loop.toFixed(1)} ms), longest stall ${again.stall.toFixed(1)} ms`,
      );
    }
    const all = await measured(async () => {
      let query = '';
      let listed = 0;
      let pages = 0;
      for (;;) {
        const page = await list(query);
        listed += page.count;
        pages++;
        if (!page.truncated) return { listed, pages };
        query = `&key-marker=${encodeURIComponent(page.key!)}&upload-id-marker=${page.id}`;
      }
    });
    const { listed, pages } = all.result;
    console.log(
      `every page by its markers: ${listed} uploads in ${pages} pages, ${(all.ms / pages).toFixed(1)} ms a page (CPU ${(all.cpu / pages).toFixed(1)} ms, event loop ${(all.loop / pages).toFixed(1)} ms), longest stall ${all.stall.toFixed(1)} ms`,
    );
    if (listed !== uploads) throw new Error(`listed ${listed} uploads of ${uploads}`);
  } finally {
    await s3.close();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
