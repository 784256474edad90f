/**
 * The embedded S3 with many keys in one folder (`node --import tsx bench/s3-big-folder.ts [keys]`, 100,000 by
 * default): what one page of a listing costs there, over HTTP, and the longest the listing held the event loop (the
 * S3 runs in the gateway's process, so that is how long every other request waited). The objects are written as the
 * store lays them out (object-store.ts: the bytes, and their metadata naming the bytes' inode) straight to a temporary
 * directory, which takes seconds where 100,000 PUTs would take minutes; then each listing is timed on its own: the
 * first page (the first listing of the folder since the start), the same page again, page 50 (ListObjectsV2 from its
 * StartAfter), ListObjects v1 at the same place with a delimiter, a delimiter listing rolling all 100,000 keys into one
 * CommonPrefix, and every page in turn by continuation token. CPU is the process's (the event loop's and the file
 * thread's). docs/performance.md quotes its figures.
 */
import '../local/node-warnings.ts';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance as perf } from 'node:perf_hooks';
import { startEmbeddedS3 } from '../local/store/embedded-s3.ts';

const BUCKET = 'big-folder-bench';
const keys = Number(process.argv[2] ?? 100_000);
const nameOf = (n: number) => `obj-${String(n).padStart(7, '0')}.json`;

const dir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-bench-big-folder-'));
try {
  const folder = path.join(dir, BUCKET, 'big');
  mkdirSync(folder, { recursive: true });
  const body = JSON.stringify({ padding: 'x'.repeat(1800) });
  const t0 = performance.now();
  for (let n = 0; n < keys; n++) {
    const file = path.join(folder, nameOf(n));
    writeFileSync(file, body);
    const ino = String(statSync(file, { bigint: true }).ino);
    const info = { size: body.length, etag: 'c1a5298f939e87e8f962a5edfc206918', modified: new Date().toISOString() };
    writeFileSync(
      path.join(folder, `.${nameOf(n)}.meta.json`),
      JSON.stringify({ ...info, contentType: 'application/json', ino }),
    );
  }
  console.log(`${keys} objects in one folder written in ${Math.round(performance.now() - t0)} ms`);
  // The folder last changed over 2 s ago (folder-index.ts: a folder read within 2 s of a change is read again next time).
  await new Promise((resolve) => setTimeout(resolve, 2500));

  const s3 = await startEmbeddedS3({ directory: dir, port: 0, bucket: BUCKET });
  const list = async (query: string) => {
    const response = await fetch(`${s3.endpoint}/${BUCKET}?${query}`);
    const text = await response.text();
    if (!response.ok) throw new Error(`${response.status} ${text}`);
    return {
      keys: [...text.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]!),
      prefixes: [...text.matchAll(/<Prefix>([^<]*)<\/Prefix>/g)].length - 1,
      token: /<NextContinuationToken>([^<]*)</.exec(text)?.[1],
    };
  };
  const timed = async (label: string, query: string) => {
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const t = performance.now();
    const cpu = process.cpuUsage();
    const loop = perf.eventLoopUtilization();
    const page = await list(query);
    const ms = performance.now() - t;
    const { user, system } = process.cpuUsage(cpu);
    const { active } = perf.eventLoopUtilization(loop);
    delay.disable();
    console.log(
      `${label.padEnd(58)} ${ms.toFixed(1).padStart(8)} ms, CPU ${((user + system) / 1000).toFixed(1).padStart(7)} ms (event loop ${active.toFixed(1).padStart(6)} ms), longest stall ${(delay.max / 1e6).toFixed(1).padStart(6)} ms (${page.keys.length} keys, ${page.prefixes} prefixes)`,
    );
    return page;
  };
  try {
    await timed('ListObjectsV2 page 1 (the first listing since the start)', 'list-type=2&prefix=big/');
    await timed('ListObjectsV2 page 1 again', 'list-type=2&prefix=big/');
    const at = encodeURIComponent(`big/${nameOf(49_000 - 1)}`);
    await timed('ListObjectsV2 page 50 (StartAfter)', `list-type=2&prefix=big/&start-after=${at}`);
    await timed('ListObjects v1 page 50, delimiter /', `prefix=big/&delimiter=/&marker=${at}`);
    await timed('ListObjectsV2, delimiter "-" (all in one CommonPrefix)', 'list-type=2&prefix=big/&delimiter=-');
    await timed('ListObjectsV2 of the bucket, delimiter /', 'list-type=2&delimiter=/');
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const t = performance.now();
    const cpu = process.cpuUsage();
    const loop = perf.eventLoopUtilization();
    let token: string | undefined;
    let listed = 0;
    let pages = 0;
    do {
      const page = await list(`list-type=2${token ? `&continuation-token=${encodeURIComponent(token)}` : ''}`);
      listed += page.keys.length;
      pages++;
      token = page.token;
    } while (token);
    delay.disable();
    const ms = performance.now() - t;
    const { user, system } = process.cpuUsage(cpu);
    const { active } = perf.eventLoopUtilization(loop);
    console.log(
      `every page by continuation token: ${listed} keys in ${pages} pages, ${Math.round(ms)} ms (${(ms / pages).toFixed(1)} ms, CPU ${((user + system) / 1000 / pages).toFixed(1)} ms a page, of it the event loop ${(active / pages).toFixed(1)} ms), longest stall ${(delay.max / 1e6).toFixed(1)} ms`,
    );
    if (listed !== keys) throw new Error(`listed ${listed} keys of ${keys}`);
  } finally {
    await s3.close();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
