import type { ChildProcess } from 'node:child_process';
import { watch } from 'node:fs';
import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { crashTestEnv, killIfRunning, runMain, startCli, until } from '../support/cli.ts';
import { seedsFrom } from '../support/seeds.ts';
import { closeJsonServers, serveJson } from '../support/servers.ts';

/**
 * The randomized crash sweep (docs/operations.md, "After a crash"): for each seed, the real gateway (a child process,
 * its own data folder) gets a seeded mix of conversations at once — synchronous and `Prefer: respond-async`, with an
 * `Idempotency-Key`, an inbound `webhook-id` or neither; receivers that refuse for now, refuse for good or hold their
 * answer; an agent that fails or holds — and is killed with SIGKILL at a point its random generator picks: the k-th
 * answer to a client, the k-th delivery arriving or answered, or the k-th change the gateway makes under one folder of
 * its data (the embedded S3's objects, the histories, the journal, the attempt log, the keys, the statuses, the failed
 * deliveries, the summary index); a quarter of the runs send Ctrl-C (SIGINT) there and kill it while it stops, and a
 * third kill the restart too, while it recovers. The last line of each journal segment and log is then cut short (what
 * a power cut leaves). Restarted on the same data, it must: start; answer every keyed retry at once (never 409), with
 * the first conversation when that one had an answer; end every request that got a 2xx as an export whose four files
 * are there and are JSON; deliver each request under one webhook-id, at most twice (at least once: docs/contract.md,
 * "Deliveries"); leave no key in progress and no status `running`; list every answered conversation in `conversations
 * list`, and every delivery refused for good in `deliveries list --state dead` (redrivable). Two seeds by default
 * (about 10 s each); more: CRASH_SWEEP_SEEDS=1-40 (a range or a comma list). A seed names its requests and its kill
 * point; where the kill lands within that point is up to the machine, so a failure names its point, for a deterministic
 * test of it.
 */
const START_MS = 60_000;

/** mulberry32: a small seeded generator, so that a seed names one sweep. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BEHAVIOURS = ['', '', '[receiver:busy]', '[receiver:reject]', '[receiver:hold]', '[agent:fail]', '[agent:hold]'];
const KEYS = ['none', 'idempotency-key', 'webhook-id'] as const;
const FOLDERS = [
  's3',
  'executions',
  'journal',
  'deliveries',
  'idempotency',
  'status',
  'failed-deliveries',
  'summaries',
];

interface Request {
  query: string;
  async: boolean;
  key: (typeof KEYS)[number];
  keyValue: string;
  /** The first answer: its status, and the conversation id it named ('cut': the kill came first). */
  status?: number | 'cut';
  id?: string;
}

type Trigger =
  | { kind: 'answer' | 'delivery-in' | 'delivery-out'; k: number }
  | { kind: 'folder'; folder: string; k: number };

function plan(seed: number): {
  requests: Request[];
  trigger: Trigger;
  recoveryKill: { folder: string; k: number } | null;
  drain: boolean;
} {
  const next = random(seed);
  const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)]!;
  const requests = Array.from({ length: 12 }, (_, n) => ({
    query: `sweep ${seed}.${n} ${pick(BEHAVIOURS)}`.trim(),
    async: next() < 0.5,
    key: pick(KEYS),
    keyValue: `sweep-${seed}-${n}`,
  }));
  const kind = pick(['answer', 'delivery-in', 'delivery-out', 'folder', 'folder', 'folder'] as const);
  const k = 1 + Math.floor(next() * 6);
  const trigger: Trigger = kind === 'folder' ? { kind, folder: pick(FOLDERS), k: k * 2 } : { kind, k };
  // A third of the runs kill the restart too, at the k-th change it makes while it recovers (if it is not listening
  // by then), and start again: a crash during recovery is recovered at the next start.
  const recoveryKill = next() < 1 / 3 ? { folder: pick(FOLDERS), k: 1 + Math.floor(next() * 4) } : null;
  // A quarter of the runs stop it with Ctrl-C first (SIGINT), and kill it while it drains what is in flight.
  const drain = next() < 1 / 4;
  return { requests, trigger, recoveryKill, drain };
}

const servers: Server[] = [];
const dataDirs: string[] = [];
const gateways: Awaited<ReturnType<typeof startCli>>[] = [];
afterAll(async () => {
  for (const gateway of gateways) await killIfRunning(gateway);
  closeJsonServers(servers);
  for (const dir of dataDirs) await rm(dir, { recursive: true, force: true });
});
const serve = (handler: Parameters<typeof serveJson>[1]) => serveJson(servers, handler);
const never = new Promise<never>(() => {});

function post(url: string, r: Request) {
  return fetch(`${url}/webhook`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(r.async ? { prefer: 'respond-async' } : {}),
      ...(r.key === 'none' ? {} : { [r.key]: r.keyValue }),
    },
    body: JSON.stringify({ query: r.query, source_system: 'sweep_test', source_process: 'kill9' }),
  });
}

async function answerOf(res: Response): Promise<{ status: number; id?: string }> {
  const body = (await res.json().catch(() => ({}))) as {
    conversation_id?: string;
    error?: { conversation_id?: string };
  };
  return { status: res.status, id: body.conversation_id ?? body.error?.conversation_id };
}

interface Exported {
  id: string;
  query: string;
  status: string;
  deliveryStatus: string;
  answered: boolean;
  files: string[];
  unreadable: string[];
}

/** The exports in the embedded S3, by conversation folder: listed only, or (`read`) each file read too. */
async function readExports(endpoint: string, read: boolean): Promise<Exported[]> {
  const s3 = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1' });
  try {
    const byFolder = new Map<string, Exported>();
    for (let token: string | undefined, page = 0; page === 0 || token; page++) {
      const listed = await s3.send(
        new ListObjectsV2Command({ Bucket: 'revops-conversations', ContinuationToken: token }),
      );
      token = listed.NextContinuationToken;
      for (const object of listed.Contents ?? []) {
        const folder = path.posix.dirname(object.Key!);
        const exported = byFolder.get(folder) ?? {
          id: path.posix.basename(folder),
          query: '',
          status: '',
          deliveryStatus: '',
          answered: false,
          files: [],
          unreadable: [],
        };
        byFolder.set(folder, exported);
        const file = path.posix.basename(object.Key!);
        exported.files.push(file);
        if (!read) continue;
        const got = await s3.send(new GetObjectCommand({ Bucket: 'revops-conversations', Key: object.Key! }));
        let json: { conversation?: Record<string, any> };
        try {
          json = JSON.parse(await got.Body!.transformToString());
        } catch {
          exported.unreadable.push(file);
          continue;
        }
        if (file !== 'conversation.json') continue;
        const record = json.conversation!;
        exported.query = record.conversation.turns[0].content;
        exported.status = record.execution.status;
        exported.deliveryStatus = record.webhook_context.delivery_status;
        exported.answered = record.conversation.turns.length > 1;
      }
    }
    return [...byFolder.values()];
  } finally {
    s3.destroy();
  }
}

async function sweep(seed: number) {
  const { requests, trigger, recoveryKill, drain } = plan(seed);
  let phase: 'before' | 'after' = 'before';
  let kill = () => {};
  const deliveries: { query: string; webhookId: string; status: number }[] = [];
  let deliveriesIn = 0;
  let deliveriesOut = 0;
  const agentUrl = await serve(async (_req, text) => {
    const query = String((JSON.parse(text || '{}') as { query?: unknown }).query ?? '');
    if (query.includes('[agent:hold]') && phase === 'before') return never;
    if (query.includes('[agent:fail]'))
      return [
        200,
        { errorType: 'SweepAgentError', errorMessage: 'asked to fail' },
        { 'x-amz-function-error': 'Unhandled' },
      ];
    return [200, { response: `Answer to: ${query}` }];
  });
  const receiverUrl = await serve(async (req, text) => {
    const { query } = JSON.parse(text) as { query: string };
    const at = phase;
    if (at === 'before' && trigger.kind === 'delivery-in' && ++deliveriesIn === trigger.k) kill();
    let status = 200;
    if (query.includes('[receiver:reject]')) status = 400;
    else if (query.includes('[receiver:busy]') && at === 'before') status = 503;
    else if (query.includes('[receiver:hold]') && at === 'before') return never;
    deliveries.push({ query, webhookId: String(req.headers['webhook-id']), status });
    if (at === 'before' && trigger.kind === 'delivery-out' && ++deliveriesOut === trigger.k) setImmediate(() => kill());
    return [status, status === 200 ? { ok: true } : { error: 'refused' }];
  });

  const dataDir = await mkdtemp(path.join(tmpdir(), `webhook-gateway-sweep-${seed}-`));
  dataDirs.push(dataDir);
  const env = { ...crashTestEnv(dataDir, agentUrl, receiverUrl), REDELIVERY_SCHEDULE: '100ms,100ms,100ms,100ms,100ms' };
  const begun = Date.now();
  const first = await startCli(env, START_MS);
  gateways.push(first);
  const exited = new Promise((resolve) => first.child.once('exit', resolve));
  let killedAt = '';
  kill = () => {
    if (killedAt) return;
    killedAt = `${drain ? 'Ctrl-C, then kill while stopping, at ' : ''}${trigger.kind} ${'folder' in trigger ? trigger.folder : ''} #${trigger.k}`;
    if (!drain) first.child.kill('SIGKILL');
    else {
      first.child.kill('SIGINT');
      void until('the stopping line', () => /stopping: /.test(first.output()) || first.child.exitCode !== null).then(
        () => first.child.kill('SIGKILL'),
      );
    }
  };
  let changes = 0;
  const watcher =
    trigger.kind === 'folder'
      ? watch(dataDir, { recursive: true }, (_event, file) => {
          if (String(file ?? '').split(path.sep)[0] === trigger.folder && ++changes === trigger.k) kill();
        })
      : null;
  let answers = 0;
  const sent = requests.map((r) =>
    post(first.url, r).then(
      async (res) => {
        const { status, id } = await answerOf(res);
        r.status = status;
        r.id = id;
        if (status < 300 && trigger.kind === 'answer' && ++answers === trigger.k) kill();
      },
      () => {
        r.status = 'cut';
      },
    ),
  );
  // When the chosen point never comes (fewer answers, deliveries or changes than k), the kill comes once every
  // request that can end before it has.
  const holds = (r: Request) => /\[(agent|receiver):hold\]/.test(r.query) && !r.async;
  await until(`seed ${seed}: the kill point or every request settled`, () => {
    if (killedAt) return true;
    if (requests.every((r) => r.status !== undefined || holds(r))) kill();
    return !!killedAt;
  });
  await exited;
  watcher?.close();
  await Promise.all(sent);
  phase = 'after';

  // What a power cut leaves beside the kill: the last line of each journal segment and of each log cut short.
  for (const file of await readdir(dataDir, { recursive: true }))
    if (file.startsWith(`journal${path.sep}`) || file.endsWith('.jsonl'))
      await appendFile(path.join(dataDir, file), '{"e":"webhook_torn","t":1,"k":"in","s":"Deli');

  const killAt = Date.now();
  let recoveryKilled = '';
  if (recoveryKill) {
    let restartChanges = 0;
    const onChange = (file: string | null) => String(file ?? '').split(path.sep)[0] === recoveryKill.folder;
    let restarting: ChildProcess | undefined;
    const restartWatcher = watch(dataDir, { recursive: true }, (_event, file) => {
      if (onChange(file) && ++restartChanges === recoveryKill.k && restarting?.exitCode === null) {
        recoveryKilled = ` then in recovery at ${recoveryKill.folder} #${recoveryKill.k}`;
        restarting.kill('SIGKILL');
      }
    });
    const interrupted = await startCli(env, START_MS, (child) => {
      restarting = child;
    }).catch(() => null);
    restartWatcher.close();
    if (interrupted) {
      recoveryKilled = '';
      await killIfRunning(interrupted); // it was listening before the k-th change: killed there, as a second crash
    }
  }
  const second = await startCli(env, START_MS);
  const startedAt = Date.now();
  gateways.push(second);
  const s3Endpoint = /S3 {6}(http:\/\/\S+)/.exec(second.output())![1]!;
  const context = `seed ${seed}, killed at ${killedAt}${recoveryKilled}`;

  // Every keyed request is sent again: an answer at once (never 409), the first conversation's when there was one.
  const retried = await Promise.all(
    requests
      .filter((r) => r.key !== 'none')
      .map(async (r) => ({ r, again: await answerOf(await post(second.url, r)) })),
  );
  for (const { r, again } of retried) expect(again.status, `${context}: ${r.query} retried`).not.toBe(409);

  // Settled: no delivery owed but the refused ones, no asynchronous conversation running.
  const answered = [...requests, ...retried.map(({ r, again }) => ({ ...r, ...again }))].filter(
    (r) => typeof r.status === 'number' && r.status < 300 && r.id,
  );
  await until(
    `${context}: every answered conversation exported and delivered`,
    async () => {
      const pending = (await (await fetch(`${second.url}/local/deliveries?state=pending&limit=1`)).json()) as {
        deliveries: unknown[];
      };
      if (pending.deliveries.length > 0) return false;
      const listed = await readExports(s3Endpoint, false);
      return answered.every((r) => listed.some((e) => e.id === r.id && e.files.length === 4));
    },
    60_000, // a loaded machine; it waits only as long as the restart takes to settle
  ).catch(() => {}); // what is missing then is named below
  const settledAt = Date.now();
  const exports = await readExports(s3Endpoint, true);
  const exportOf = (id: string) => exports.find((e) => e.id === id);
  expect(
    answered.filter((r) => !exportOf(r.id!)).map((r) => r.query),
    `${context}: answered, not exported`,
  ).toEqual([]);
  // A retry gets the first conversation, unless that one ended without an answer (cut before its agent answered,
  // or its agent failed): its key was freed, so the retry ran afresh (docs/contract.md, "Idempotent retries").
  for (const { r, again } of retried)
    if (typeof r.status === 'number' && r.status < 300 && exportOf(r.id!)?.answered)
      expect(again.id, `${context}: ${r.query} retried`).toBe(r.id);
  for (const e of exports) {
    expect(e.files.sort(), `${context}: ${e.id}`).toEqual([
      'analysis.json',
      'conversation.json',
      'metadata.json',
      'summary.json',
    ]);
    expect(e.unreadable, `${context}: ${e.id}`).toEqual([]);
  }
  let takenTwice = 0;
  for (const r of requests) {
    const ids = new Set(deliveries.filter((d) => d.query === r.query).map((d) => d.webhookId));
    expect(ids.size, `${context}: ${r.query} delivered under one webhook-id`).toBeLessThanOrEqual(1);
    const withAnswer = exports.filter((e) => e.query === r.query && e.answered);
    expect(withAnswer.length, `${context}: ${r.query} answered once`).toBeLessThanOrEqual(1);
    // At least once: a delivery the crash cut may come again, under its id; never more than that.
    const taken = deliveries.filter((d) => d.query === r.query && d.status === 200).length;
    expect(taken, `${context}: ${r.query} taken`).toBeLessThanOrEqual(2);
    if (taken === 2) takenTwice += 1;
  }
  for (const r of answered.filter((x) => x.async))
    await until(`${context}: ${r.query} no longer running`, async () => {
      const res = await fetch(`${second.url}/conversations/${r.id}?source_system=sweep_test`);
      return ((await res.json()) as { status?: string }).status !== 'running';
    });
  // The operator's view: every answered conversation listed, every delivery refused for good redrivable.
  const listed = await runMain(['conversations', 'list', '--json', '--limit', '1000'], { LOCAL_DATA_DIR: dataDir });
  expect(listed.code, `${context}: conversations list ${listed.stderr}`).toBe(0);
  const listedIds = new Set((JSON.parse(listed.stdout) as { conversation_id: string }[]).map((c) => c.conversation_id));
  expect(
    answered.filter((r) => !listedIds.has(r.id!)).map((r) => r.query),
    `${context}: answered, not listed`,
  ).toEqual([]);
  const dead = await runMain(['deliveries', 'list', '--state', 'dead', '--json', '--limit', '1000'], {
    LOCAL_DATA_DIR: dataDir,
  });
  const deadIds = new Set((JSON.parse(dead.stdout) as { conversation_id: string }[]).map((e) => e.conversation_id));
  expect(
    exports.filter((e) => e.deliveryStatus === 'failed' && !deadIds.has(e.id)).map((e) => e.query),
    `${context}: delivery failed, not redrivable`,
  ).toEqual([]);
  const keysDir = path.join(dataDir, 'idempotency');
  const inProgress: string[] = [];
  for (const f of await readdir(keysDir).catch(() => [] as string[])) {
    if (!f.endsWith('.json')) continue; // a claim's copy written aside when the kill came (removed after a day)
    const text = await readFile(path.join(keysDir, f), 'utf8');
    let status = 'unreadable';
    try {
      status = (JSON.parse(text) as { status: string }).status;
    } catch {}
    if (status !== 'completed' && status !== 'failed') inProgress.push(`${f}: ${status} ${text.slice(0, 80)}`);
  }
  expect(inProgress, `${context}: keys in progress`).toEqual([]);
  console.log(
    `crash sweep ${context}: ${answered.length} answered, ${exports.length} exported, ${takenTwice} taken twice; ms: ${JSON.stringify(
      {
        kill: killAt - begun,
        restart: startedAt - killAt,
        settle: settledAt - startedAt,
        checks: Date.now() - settledAt,
      },
    )}`,
  );
  await killIfRunning(second);
}

describe('randomized kill -9 sweep, then a restart on the same data', () => {
  for (const seed of seedsFrom('CRASH_SWEEP_SEEDS', process.env.CRASH_SWEEP_SEEDS, [1, 2]))
    it(`seed ${seed}: loses no answered request, delivers each under one webhook-id, settles every key`, async () => {
      await sweep(seed);
    }, 180_000);
});
