/**
 * kill -9 chaos (not part of `npm test` or `npm run bench`): the real gateway (`webhook-gateway start`, a child
 * process) on a fresh LOCAL_DATA_DIR with its sample agent and built-in receiver, and lead_analysis delivered to a
 * receiver of this script that fails (500) most of the time, so deliveries queue and the schedule redelivers. Clients
 * keep sending a mix — synchronous, `Prefer: respond-async`, Idempotency-Key retries (also after a success), thread
 * turns one after the other, `[sample:slow]` and `[sample:error]` — while the gateway is killed with SIGKILL at random
 * moments: while it serves, while it starts, while it recovers the journal (once the recovery's own journal segment
 * appears) and while it stops gracefully. Then one last start settles everything (the receiver now answers), and the
 * promises of docs/operations.md ("After a crash", "Failed deliveries", "Asynchronous conversations", "A thread") are
 * checked over what every client was answered and what the data folder holds:
 *
 * 1. every conversation id a client was given (2xx, 202, or a 5xx naming one) is exported once, its four files whole;
 *    a synchronous 200 is an answered conversation (completed, or interrupted with its answer for a keyed retry);
 * 2. an Idempotency-Key never makes a second answered conversation, and every 2xx after a 200 names the same one;
 * 3. every answered conversation is delivered (the receiver got its delivery id, under one webhook-id) or its envelope
 *    says what is owed (`deliveries list`), and a settled envelope's export says delivered; nothing was delivered
 *    without being exported;
 * 4. every accepted asynchronous conversation reaches `completed` or `failed`;
 * 5. a thread's answered turns keep the order they were sent in, no turn number twice;
 * 6. no start is refused, each listens within CHAOS_START_BOUND_MS (60 s: the machine's load counts);
 * 7. no key is left in progress, no journal after the graceful stop, each execution's history saved once, and
 *    `conversations list` shows every exported conversation once.
 *
 *   npx tsx bench/chaos-kill9.ts [kills=30]
 *
 * Everything on 127.0.0.1, on ports free when it begins (the gateway keeps its port across restarts). The data folder
 * is removed when every check passed, kept (and named) otherwise.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { argsOrExit, parseCount } from './support/args.ts';

const KILLS = argsOrExit(
  () => parseCount(process.argv.slice(2), 30, 'kills'),
  'usage: npx tsx bench/chaos-kill9.ts [kills=30]   (about 20 s per kill; docs/development.md)',
);
const START_BOUND_MS = Number(process.env.CHAOS_START_BOUND_MS ?? 60_000);
const BIN = path.join(import.meta.dirname, '..', 'bin', 'webhook-gateway.mjs');

const listen = (server: Server) =>
  new Promise<number>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
/** A port free now: the gateway must keep one across its restarts, so that the clients find it again. */
async function freePort(): Promise<number> {
  const probe = createServer();
  const port = await listen(probe);
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
const PORT = await freePort();
const S3_PORT = await freePort();
const URL_ = `http://127.0.0.1:${PORT}`;

let receiverFails = true;
const receiverGot: { conversation_id: string; webhook_id: string }[] = [];
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (receiverFails) {
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"down"}');
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { conversation_id: string };
    receiverGot.push({ conversation_id: body.conversation_id, webhook_id: String(req.headers['webhook-id']) });
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
});
const RECEIVER_PORT = await listen(receiver);

const dataDir = await mkdtemp(path.join(tmpdir(), 'chaos-kill9-'));
const env = {
  ...process.env,
  PORT: String(PORT),
  LOCAL_S3_PORT: String(S3_PORT),
  LOCAL_DATA_DIR: dataDir,
  AWS_ENDPOINT_URL_S3: undefined,
  AWS_ENDPOINT_URL_LAMBDA: undefined,
  MANAGER_AGENT_FUNCTION_NAME: undefined,
  CONVERSATION_EXPORT_S3_BUCKET: undefined,
  DEAL_ANALYSIS_WEBHOOK_URL: undefined,
  DATA_ANALYSIS_WEBHOOK_URL: undefined,
  GENERAL_WEBHOOK_URL: undefined,
  LEAD_ANALYSIS_WEBHOOK_URL: `http://127.0.0.1:${RECEIVER_PORT}/lead`,
  SAMPLE_AGENT_SLOW_MS: '1500',
  REDELIVERY_SCHEDULE: '300ms,1s,2s,3s,5s,5s,5s,5s',
  REDELIVERY_POLL_MS: '100',
  DELIVERY_TIMEOUT_MS: '2000',
};
for (const [k, v] of Object.entries(env)) if (v === undefined) delete (env as Record<string, unknown>)[k];

// ---------------------------------------------------------------------------------------------------------------
interface Sent {
  n: number;
  kind: string;
  query: string;
  key: string | null;
  thread: string | null;
  async: boolean;
  answers: { status: number | string; conversation_id?: string; at: number }[];
}
const sent: Sent[] = [];
let requestsSent = 0;
let stopping = false;

async function post(s: Sent): Promise<void> {
  requestsSent += 1;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (s.key) headers['idempotency-key'] = s.key;
  if (s.async) headers.prefer = 'respond-async';
  const body = JSON.stringify({
    query: s.query,
    source_system: 'chaos',
    source_process: s.kind,
    ...(s.thread ? { thread_id: s.thread } : {}),
  });
  try {
    const res = await fetch(`${URL_}/webhook`, { method: 'POST', headers, body, signal: AbortSignal.timeout(30_000) });
    const json = (await res.json().catch(() => ({}))) as {
      conversation_id?: string;
      error?: { conversation_id?: string; code?: string };
    };
    s.answers.push({
      status: res.status,
      conversation_id: json.conversation_id ?? json.error?.conversation_id,
      at: Date.now(),
    });
  } catch {
    s.answers.push({ status: 'refused or cut', at: Date.now() });
  }
}
const ok = (a: Sent['answers'][number]) => typeof a.status === 'number' && a.status >= 200 && a.status < 300;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(xs: readonly T[]) => xs[Math.floor(Math.random() * xs.length)]!;
const TOPICS = ['top deals this quarter', 'leads to call', 'data metrics report', 'hello there'] as const;

function make(kind: string, extra: Partial<Sent> = {}): Sent {
  const n = sent.length + 1;
  const r = Math.random();
  const slow = r < 0.15 ? ' [sample:slow]' : r < 0.2 ? ' [sample:error]' : '';
  const s: Sent = {
    n,
    kind,
    query: `chaos #${n} ${pick(TOPICS)}${slow}`,
    key: null,
    thread: null,
    async: false,
    answers: [],
    ...extra,
  };
  sent.push(s);
  return s;
}

/** Workers: each sends forever (while the gateway is up or down) until told to stop. */
async function syncWorker() {
  while (!stopping) {
    const s = make('sync');
    await post(s);
    await sleep(ok(s.answers.at(-1)!) ? 50 : 250);
  }
}
async function asyncWorker() {
  while (!stopping) {
    const s = make('async', { async: true });
    await post(s);
    await sleep(ok(s.answers.at(-1)!) ? 80 : 250);
  }
}
/** Keyed requests: retried with the same key until a final answer (2xx, or a 4xx/5xx that is not 409/503/cut). */
async function keyedWorker(id: number) {
  let k = 0;
  while (!stopping) {
    const s = make('keyed', { key: `chaos-${id}-${k++}`, async: Math.random() < 0.3 });
    for (let tries = 0; tries < 50; tries++) {
      await post(s);
      const last = s.answers.at(-1)!;
      if (ok(last) && Math.random() < 0.5) continue; // a retry after a success: must be the same conversation
      if (ok(last) || (typeof last.status === 'number' && last.status !== 409 && last.status !== 503)) break;
      await sleep(250);
      if (stopping) break;
    }
    await sleep(50);
  }
}
/** A thread: turns sent one after the other, each only after the previous was answered. */
async function threadWorker(id: number) {
  const thread = `thread-${id}`;
  while (!stopping) {
    const s = make('thread', { thread });
    await post(s);
    await sleep(ok(s.answers.at(-1)!) ? 30 : 200);
  }
}

// ---------------------------------------------------------------------------------------------------------------
interface Start {
  n: number;
  spawnedAt: number;
  listeningAt: number | null;
  killedAt: number | null;
  phase: string;
  output: string;
  exit: string | null;
  recoveredLines: number;
}
const starts: Start[] = [];
let child: ChildProcess | null = null;

function spawnGateway(): { start: Start; listening: Promise<boolean>; exited: Promise<void> } {
  const start: Start = {
    n: starts.length + 1,
    spawnedAt: Date.now(),
    listeningAt: null,
    killedAt: null,
    phase: 'spawned',
    output: '',
    exit: null,
    recoveredLines: 0,
  };
  starts.push(start);
  const c = spawn(process.execPath, [BIN, 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child = c;
  let resolveListening: (v: boolean) => void;
  const listening = new Promise<boolean>((r) => (resolveListening = r));
  const onData = (d: Buffer) => {
    start.output += d.toString();
    if (start.listeningAt === null && start.output.includes('Ctrl-C stops everything')) {
      start.listeningAt = Date.now();
      resolveListening(true);
    }
  };
  c.stdout!.on('data', onData);
  c.stderr!.on('data', onData);
  const exited = new Promise<void>((r) =>
    c.once('exit', (code, signal) => {
      start.exit = signal ?? String(code);
      start.recoveredLines = (start.output.match(/ recovered {2}/g) ?? []).length;
      resolveListening(false);
      r();
    }),
  );
  return { start, listening, exited };
}

async function killNow(g: ReturnType<typeof spawnGateway>) {
  g.start.killedAt = Date.now();
  if (g.start.phase !== 'stopping') g.start.phase = g.start.listeningAt === null ? 'starting' : 'serving';
  child!.kill('SIGKILL');
  await g.exited;
}

const journalFiles = async () =>
  existsSync(path.join(dataDir, 'journal')) ? (await readdir(path.join(dataDir, 'journal'))).length : 0;

const failures: string[] = [];
const fail = (what: string) => {
  failures.push(what);
  console.log(`FAIL ${what}`);
};

console.log(`data ${dataDir}`);
const workers = [
  ...Array.from({ length: 10 }, syncWorker),
  ...Array.from({ length: 5 }, asyncWorker),
  ...Array.from({ length: 6 }, (_, i) => keyedWorker(i + 1)),
  ...Array.from({ length: 3 }, (_, i) => threadWorker(i + 1)),
];
let killsDuringStart = 0;
let killsDuringRecovery = 0;
for (let i = 0; i < KILLS; i++) {
  const leftover = await journalFiles();
  const g = spawnGateway();
  const prev = starts.at(-2);
  const startMs = prev?.listeningAt ? prev.listeningAt - prev.spawnedAt : 3000;
  if (i % 3 !== 0 && leftover > 0) {
    // During the start (and its recovery, when the journal has leftovers).
    const pid = child!.pid;
    const recovering = async () => {
      while (g.start.listeningAt === null && g.start.exit === null) {
        if ((await readdir(path.join(dataDir, 'journal'))).some((f) => f.includes(`-${pid}-`))) return true;
        await sleep(2);
      }
      return false;
    };
    if (i % 2 === 0) await Promise.race([sleep(Math.random() * startMs), g.listening]);
    else if (await recovering()) await sleep(Math.random() * 30);
    if (g.start.listeningAt === null && g.start.exit === null) {
      killsDuringStart += 1;
      if ((await readdir(path.join(dataDir, 'journal'))).some((f) => f.includes(`-${pid}-`))) killsDuringRecovery += 1;
    }
  } else {
    const up = await Promise.race([g.listening, sleep(START_BOUND_MS).then(() => false)]);
    if (!up) {
      fail(`start ${g.start.n} did not listen (exit ${g.start.exit}):\n${g.start.output.slice(-2000)}`);
      break;
    }
    receiverFails = Math.random() < 0.6;
    await sleep(300 + Math.random() * 2500);
    if (i % 5 === 4) {
      // SIGINT (the graceful stop lets the conversations in flight finish), then SIGKILL in the middle of it.
      child!.kill('SIGINT');
      await sleep(Math.random() * 400);
      g.start.phase = 'stopping';
    }
  }
  if (g.start.exit !== null && g.start.phase !== 'stopping') {
    fail(`start ${g.start.n} exited by itself (${g.start.exit}):\n${g.start.output.slice(-2000)}`);
    break;
  }
  await killNow(g);
  console.log(
    `kill ${i + 1}/${KILLS} ${g.start.phase} after ${g.start.killedAt! - g.start.spawnedAt} ms (journal leftovers ${leftover}, requests ${requestsSent})`,
  );
}

// Final start: let everything settle.
stopping = true;
const last = spawnGateway();
if (!(await Promise.race([last.listening, sleep(START_BOUND_MS).then(() => false)])))
  fail(`final start did not listen:\n${last.start.output.slice(-3000)}`);
await Promise.all(workers);
receiverFails = false;

// Keyed requests without a final answer: the client retries until it has one.
for (const s of sent.filter((x) => x.key)) {
  for (let tries = 0; tries < 100; tries++) {
    const a = s.answers.at(-1);
    if (a && typeof a.status === 'number' && a.status !== 409 && a.status !== 503) break;
    await post(s);
    if (s.answers.at(-1)!.status === 409) await sleep(200);
  }
  if (s.answers.some(ok)) await post(s); // one more retry after a success
}

// Owed deliveries: redrive what is dead (the receiver is fixed now), then wait for the schedule.
const cli = (args: string[]) =>
  new Promise<string>((resolve) => {
    const c = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (out += d));
    c.on('close', () => resolve(out));
  });
interface Envelope {
  conversation_id: string;
  state: string;
  delivery_id?: string;
  dead_reason?: string;
  owed?: string;
}
const envelopes = async (): Promise<Envelope[]> => {
  const dir = path.join(dataDir, 'failed-deliveries');
  if (!existsSync(dir)) return [];
  const out: Envelope[] = [];
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.json')))
    out.push(JSON.parse(await readFile(path.join(dir, f), 'utf8')) as Envelope);
  return out;
};
const settleBy = Date.now() + 60_000;
while (Date.now() < settleBy && (await envelopes()).some((e) => e.state === 'pending')) await sleep(500);
const stillPending = (await envelopes()).filter((e) => e.state === 'pending');
if (stillPending.length) fail(`${stillPending.length} envelopes still pending after 60 s`);

// Asynchronous conversations: every accepted one reaches a final status.
const accepted = sent.filter((s) => s.async).flatMap((s) => s.answers.filter((a) => a.status === 202));
const statusOf = async (id: string) =>
  (await (await fetch(`${URL_}/conversations/${id}?source_system=chaos`)).json()) as { status?: string };
const asyncBy = Date.now() + 30_000;
const asyncIds = [...new Set(accepted.map((a) => a.conversation_id!))];
const asyncFinal = new Map<string, string>();
while (Date.now() < asyncBy && asyncFinal.size < asyncIds.length) {
  for (const id of asyncIds) {
    if (asyncFinal.has(id)) continue;
    const st = (await statusOf(id)).status ?? 'none';
    if (st !== 'running') asyncFinal.set(id, st);
  }
  if (asyncFinal.size < asyncIds.length) await sleep(500);
}
for (const id of asyncIds) {
  const st = asyncFinal.get(id);
  if (st !== 'completed' && st !== 'failed') fail(`async ${id} status ${st ?? 'running'} at the end`);
}
const deliveriesListed = await cli(['deliveries', 'list', '--state', 'all', '--json']);

// Stop gracefully: the journal must be empty.
child!.kill('SIGINT');
await last.exited;
if ((await journalFiles()) > 0) fail('journal not empty after a graceful stop');

// ---------------------------------------------------------------------------------------------------------------
// Exports: read every conversation folder straight from the bucket's files.
interface Exported {
  id: string;
  files: string[];
  query: string;
  status: string;
  delivery_status: string;
  delivery_id: string;
  answered: boolean;
  thread_turn: number | null;
  folders: number;
}
const exported = new Map<string, Exported>();
const root = path.join(dataDir, 's3', 'revops-conversations', 'conversation-history');
async function walk(dir: string, depth: number) {
  for (const name of await readdir(dir)) {
    const p = path.join(dir, name);
    if (depth < 3) await walk(p, depth + 1);
    else {
      const files = (await readdir(p)).filter((f) => !f.startsWith('.')).sort();
      let record: {
        conversation: {
          metadata: { conversation_id: string; thread_turn?: number };
          conversation: { turns: { content: string }[] };
          execution: { status: string };
          webhook_context: { delivery_status: string; delivery_id: string };
        };
      };
      try {
        record = JSON.parse(await readFile(path.join(p, 'conversation.json'), 'utf8'));
      } catch (e) {
        fail(`export ${name}: conversation.json unreadable (${(e as Error).message})`);
        continue;
      }
      const c = record.conversation;
      const prev = exported.get(name);
      exported.set(name, {
        id: name,
        files,
        query: c.conversation.turns[0]!.content,
        status: c.execution.status,
        delivery_status: c.webhook_context.delivery_status,
        delivery_id: c.webhook_context.delivery_id,
        answered: c.conversation.turns.length > 1,
        thread_turn: c.metadata.thread_turn ?? null,
        folders: (prev?.folders ?? 0) + 1,
      });
    }
  }
}
if (existsSync(root)) await walk(root, 0);
const byQuery = new Map<string, Exported[]>();
for (const e of exported.values()) byQuery.set(e.query, [...(byQuery.get(e.query) ?? []), e]);

// 1. Every conversation a client got 2xx (or a 5xx with a conversation id) for is exported, once, with four files.
const FOUR = ['analysis.json', 'conversation.json', 'metadata.json', 'summary.json'];
let answeredIds = 0;
for (const s of sent)
  for (const a of s.answers) {
    if (!a.conversation_id) continue;
    answeredIds += 1;
    const e = exported.get(a.conversation_id);
    if (!e) {
      fail(`#${s.n} (${s.kind}) answered ${a.status} ${a.conversation_id} but not exported`);
      continue;
    }
    if (e.folders !== 1) fail(`${a.conversation_id} exported in ${e.folders} folders`);
    if (JSON.stringify(e.files) !== JSON.stringify(FOUR)) fail(`${a.conversation_id} files ${e.files}`);
    if (e.query !== s.query) fail(`${a.conversation_id} exported query ${e.query} ≠ ${s.query}`);
    // A keyed retry may be answered from an interrupted conversation that had its answer (the key kept it).
    if (a.status === 200 && !s.async && (!e.answered || (e.status !== 'completed' && !s.key)))
      fail(`#${s.n} got 200 but ${a.conversation_id} exported ${e.status}${e.answered ? '' : ' without answer'}`);
  }
// 2. Idempotent retries never create a second answered conversation; every success of one key names one id.
let keyedChecked = 0;
for (const s of sent.filter((x) => x.key)) {
  keyedChecked += 1;
  const answered = (byQuery.get(s.query) ?? []).filter((e) => e.answered);
  if (answered.length > 1) fail(`key ${s.key}: ${answered.length} answered conversations ${answered.map((e) => e.id)}`);
  const syncIds = new Set(s.answers.filter((a) => a.status === 200).map((a) => a.conversation_id));
  if (syncIds.size > 1) fail(`key ${s.key}: 200 with ${[...syncIds]}`);
  const firstOk = s.answers.findIndex((a) => a.status === 200);
  if (firstOk >= 0)
    for (const a of s.answers.slice(firstOk))
      if (ok(a) && a.conversation_id !== s.answers[firstOk]!.conversation_id)
        fail(`key ${s.key}: retry after 200 answered ${a.status} ${a.conversation_id}`);
}
// 3. Deliveries: each answered export is delivered (receiver saw its delivery id), or owed/failed in the store.
const received = new Map<string, Set<string>>();
const note = (cid: string, wid: string) => received.set(cid, (received.get(cid) ?? new Set()).add(wid));
for (const r of receiverGot) note(r.conversation_id, r.webhook_id);
const recvDir = path.join(dataDir, 'receiver');
if (existsSync(recvDir))
  for (const f of await readdir(recvDir))
    for (const line of (await readFile(path.join(recvDir, f), 'utf8')).split('\n').filter(Boolean)) {
      const d = JSON.parse(line) as { headers: Record<string, string>; body: { conversation_id: string } };
      note(d.body.conversation_id, d.headers['webhook-id']!);
    }
const envs = new Map((await envelopes()).map((e) => [e.conversation_id, e]));
let deliveriesChecked = 0;
for (const e of exported.values()) {
  if (!e.answered) continue;
  deliveriesChecked += 1;
  const got = received.get(e.id);
  if (got && got.size > 1) fail(`${e.id} delivered under ${got.size} webhook-ids`);
  if (e.delivery_status === 'delivered' && !got) fail(`${e.id} exported delivered but no receiver got it`);
  if (e.delivery_status !== 'delivered') {
    const env_ = envs.get(e.id);
    if (!env_) fail(`${e.id} exported ${e.status}/${e.delivery_status} without an envelope`);
    else if (env_.state === 'settled' && !got) fail(`${e.id} envelope settled but never received`);
    else if (!deliveriesListed.includes(e.id)) fail(`${e.id} not in deliveries list`);
  }
  const final = envs.get(e.id);
  if (final?.state === 'settled' && e.delivery_status !== 'delivered')
    fail(`${e.id} envelope settled (delivered) but its export still says ${e.delivery_status}`);
  if (got && !got.has(e.delivery_id)) fail(`${e.id} received under ${[...got]} ≠ ${e.delivery_id}`);
}
// 4. Threads: the 2xx turns of a thread, in send order, have increasing turn numbers, and no number twice.
for (const thread of new Set(sent.map((s) => s.thread).filter(Boolean))) {
  const turns = sent
    .filter((s) => s.thread === thread)
    .flatMap((s) => s.answers.filter(ok).map((a) => exported.get(a.conversation_id!)?.thread_turn ?? null));
  for (let i = 1; i < turns.length; i++)
    if (turns[i] === null || turns[i - 1] === null || turns[i]! <= turns[i - 1]!)
      fail(`${thread}: turns out of order at ${i}: ${turns.slice(Math.max(0, i - 3), i + 2)}`);
  const all = [...exported.values()].filter((e) => sent.find((s) => s.query === e.query)?.thread === thread);
  const numbers = all.map((e) => e.thread_turn).filter((t) => t !== null);
  if (new Set(numbers).size !== numbers.length) fail(`${thread}: a turn number taken twice`);
}
// 5. Starts: never refused, bounded.
const startTimes = starts.filter((s) => s.listeningAt).map((s) => s.listeningAt! - s.spawnedAt);
const maxStart = Math.max(...startTimes);
if (maxStart > START_BOUND_MS) fail(`a start took ${maxStart} ms`);
for (const s of starts)
  if (s.exit !== null && s.exit !== 'SIGKILL' && s !== last.start && s.phase !== 'stopping')
    fail(`start ${s.n} exit ${s.exit}`);
const recoveryMs = starts.map((s) => Number(/recovered from the journal in (\d+) ms/.exec(s.output)?.[1] ?? 0));
for (const [cid] of received) if (!exported.has(cid)) fail(`${cid} delivered but never exported`);
// 6. No key left in progress.
const keysDir = path.join(dataDir, 'idempotency');
if (existsSync(keysDir))
  for (const f of (await readdir(keysDir)).filter((n) => n.endsWith('.json'))) {
    const k = JSON.parse(await readFile(path.join(keysDir, f), 'utf8')) as { status: string };
    if (k.status === 'in_progress') fail(`key file ${f} in progress at the end`);
  }

// 7. Execution histories: every file parses, no execution saved twice; the CLI reads the folder.
let tmpLeft = 0;
let histories = 0;
async function scan(dir: string) {
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) await scan(p);
    else if (d.name.endsWith('.tmp')) tmpLeft += 1;
  }
}
await scan(dataDir);
const execDir = path.join(dataDir, 'executions');
for (const id of await readdir(execDir)) {
  const names = new Map<string, number>();
  for (const f of (await readdir(path.join(execDir, id))).filter((n) => n.endsWith('.json'))) {
    histories += 1;
    try {
      const h = JSON.parse(await readFile(path.join(execDir, id, f), 'utf8')) as { execution_name: string };
      names.set(h.execution_name, (names.get(h.execution_name) ?? 0) + 1);
    } catch (e) {
      fail(`history ${id}/${f} unreadable: ${(e as Error).message}`);
    }
  }
  for (const [n, c] of names) if (c > 1) fail(`${id}: execution ${n} saved ${c} times`);
}
const listed = await cli(['conversations', 'list', '--limit', '100000', '--json']);
try {
  const rows = JSON.parse(listed) as { conversation_id: string }[];
  const ids = rows.map((r) => r.conversation_id);
  if (new Set(ids).size !== ids.length) fail(`conversations list shows ${ids.length - new Set(ids).size} twice`);
  for (const id of exported.keys()) if (!ids.includes(id)) fail(`${id} exported but not in conversations list`);
} catch (e) {
  fail(`conversations list --json: ${(e as Error).message}: ${listed.slice(0, 500)}`);
}

const statuses = new Map<string, number>();
for (const s of sent)
  for (const a of s.answers) statuses.set(String(a.status), (statuses.get(String(a.status)) ?? 0) + 1);
console.log(
  JSON.stringify(
    {
      data: dataDir,
      kills: starts.filter((s) => s.exit === 'SIGKILL').length,
      kills_during_start: killsDuringStart,
      kills_during_recovery: killsDuringRecovery,
      requests: requestsSent,
      distinct_requests: sent.length,
      answers: Object.fromEntries(statuses),
      answered_ids: answeredIds,
      exported: exported.size,
      keyed_checked: keyedChecked,
      deliveries_checked: deliveriesChecked,
      async_checked: asyncIds.length,
      recovered_lines: starts.reduce((n, s) => n + s.recoveredLines, 0),
      start_ms: { max: maxStart, median: startTimes.sort((a, b) => a - b)[Math.floor(startTimes.length / 2)] },
      histories,
      recovery_ms_max: Math.max(...recoveryMs),
      recoveries: starts
        .map((s) => /(\d+) executions cut by the last stop were recovered from the journal in (\d+) ms/.exec(s.output))
        .filter(Boolean)
        .map((m) => `${m![1]}/${m![2]}ms`)
        .join(' '),
      stops_killed: starts.filter((s) => s.phase === 'stopping').length,
      tmp_files_left: tmpLeft,
      failures: failures.length,
    },
    null,
    2,
  ),
);
receiver.close();
if (failures.length === 0) await rm(dataDir, { recursive: true, force: true });
else console.log(`kept for inspection: ${dataDir}`);
process.exit(failures.length ? 1 : 0);
