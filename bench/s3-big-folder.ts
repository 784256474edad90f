/**
 * The embedded S3 with many keys in one folder (`node --import tsx bench/s3-big-folder.ts [keys]`, 100,000 by
 * default): what one page of a listing costs there, over HTTP, and the longest the listing held the event loop (the
 * S3 runs in the gateway's process, so that is how long every other request waited). The objects are written as the
 * store lays them out (object-store.ts: the bytes, and their metadata naming the bytes' inode) straight to a temporary
 * directory, which takes seconds where 100,000 PUTs would take minutes; then each listing is timed on its own: the
 * first page (the first listing of the folder since the start), the same page again, page 50 (ListObjectsV2 from its
 * StartAfter), ListObjects v1 at the same place with a delimiter, a delimiter listing rolling all 100,000 keys into one
 * CommonPrefix, and every page in turn by continuation token. CPU is the process's (the event loop's and the file
 * thread's). Then the folder's census (folder-index.ts: the file thread reads every name of it) is timed alone, and
 * the folder is written into and listed by turns for 10 s (a PUT over HTTP, then page 1), as exports written into a
 * folder someone lists: the CPU a turn, and how many censuses were taken. docs/performance.md quotes its figures.
 */
import '../local/node-warnings.ts';
import { closeSync, mkdirSync, openSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance as perf } from 'node:perf_hooks';
import { startEmbeddedS3 } from '../local/store/embedded-s3.ts';
import { censusOfFolder } from '../local/store/file-writer.ts';
import { argsOrExit, parseCounts } from './support/args.ts';

const BUCKET = 'big-folder-bench';
const ARGS = process.argv.slice(2);
/** `[keys] census`: the folder's census alone (censusOnly). */
const CENSUS = ARGS.at(-1) === 'census';
const { keys } = argsOrExit(
  () => parseCounts(CENSUS ? ARGS.slice(0, -1) : ARGS, [{ name: 'keys', fallback: 100_000 }]),
  'usage: node --import tsx bench/s3-big-folder.ts [keys=100000] [census]   (docs/performance.md §2)',
);
const nameOf = (n: number) => `obj-${String(n).padStart(7, '0')}.json`;

const dir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-bench-big-folder-'));
/**
 * `… [keys] census`: the folder's census alone, of `keys` empty files (a million takes a minute to write, where the
 * store's layout would take many): what one costs the file thread, and the event loop (a message each way).
 */
async function censusOnly(): Promise<void> {
  const folder = path.join(dir, 'census');
  mkdirSync(folder);
  const t0 = performance.now();
  for (let n = 0; n < keys; n++) closeSync(openSync(path.join(folder, nameOf(n)), 'w'));
  console.log(`${keys} empty files in one folder written in ${Math.round(performance.now() - t0)} ms`);
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const cpu = process.cpuUsage();
    const loop = perf.eventLoopUtilization();
    const sum = await censusOfFolder(folder);
    const { user, system } = process.cpuUsage(cpu);
    console.log(
      `census of ${sum.count} entries: ${(performance.now() - t).toFixed(1)} ms, CPU ${((user + system) / 1000).toFixed(1)} ms (event loop ${perf.eventLoopUtilization(loop).active.toFixed(1)} ms)`,
    );
  }
}
if (CENSUS) {
  try {
    await censusOnly();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  process.exit(0);
}
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

    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      const cpu = process.cpuUsage();
      const loop = perf.eventLoopUtilization();
      await censusOfFolder(folder);
      const { user, system } = process.cpuUsage(cpu);
      console.log(
        `the folder's census alone: ${(performance.now() - t).toFixed(1)} ms, CPU ${((user + system) / 1000).toFixed(1)} ms (event loop ${perf.eventLoopUtilization(loop).active.toFixed(1)} ms)`,
      );
    }

    // Written and listed by turns: a census is a read of every name of the folder by the file thread (timed above),
    // so the CPU of the turns tells how many were taken.
    const writtenFor = Number(process.env.BENCH_WRITTEN_MS ?? 10_000);
    const delay2 = monitorEventLoopDelay({ resolution: 1 });
    delay2.enable();
    const t2 = performance.now();
    const cpu2 = process.cpuUsage();
    const loop2 = perf.eventLoopUtilization();
    let turns = 0;
    while (performance.now() - t2 < writtenFor) {
      const put = await fetch(`${s3.endpoint}/${BUCKET}/big/new-${String(turns).padStart(6, '0')}.json`, {
        method: 'PUT',
        body: body,
      });
      if (!put.ok) throw new Error(`PUT ${put.status}`);
      await put.arrayBuffer();
      await list('list-type=2&prefix=big/&max-keys=100');
      turns++;
    }
    delay2.disable();
    const ms2 = performance.now() - t2;
    const used = process.cpuUsage(cpu2);
    const { active: active2 } = perf.eventLoopUtilization(loop2);
    console.log(
      `written and listed by turns for ${Math.round(ms2)} ms: ${turns} turns (a PUT, then page 1 of 100), CPU ${((used.user + used.system) / 1000 / turns).toFixed(2)} ms a turn (event loop ${(active2 / turns).toFixed(2)} ms), CPU ${((used.user + used.system) / 1000).toFixed(0)} ms in all, longest stall ${(delay2.max / 1e6).toFixed(1)} ms`,
    );
  } finally {
    await s3.close();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
