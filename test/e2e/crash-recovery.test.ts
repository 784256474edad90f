import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { crashTestEnv, killIfRunning, startCli, until } from '../support/cli.ts';
import { closeJsonServers, serveJson } from '../support/servers.ts';

/**
 * The chaos test (loopback only, ports 0, bounded): the real gateway (`webhook-gateway start`, a child process) with
 * conversations in flight at every crash point of the workflow — held there by test markers (LOCAL_TEST_HOLDS) —
 * and more waiting on the agent and on the receiver, is killed with SIGKILL and restarted on the same data. Every
 * accepted request must end exported (completed, failed or interrupted), every delivery must reach the receiver
 * under one webhook-id per request, and every Idempotency-Key must be settled at once (a retry never gets 409).
 */
const POINTS = [
  'before:Validate',
  'after:Validate',
  'before:InvokeManagerAgent',
  'after:InvokeManagerAgent',
  'before:Classify',
  'before:Deliver',
  'after:Deliver',
  'before:QueueFailedDelivery',
  'after:QueueFailedDelivery',
  'before:Export',
  'after:Export',
  'before:ExportFailedConversation',
] as const;
/** Reaching these points needs the receiver to refuse the delivery, or the agent to fail. */
const NEEDS: Partial<Record<(typeof POINTS)[number], string>> = {
  'before:QueueFailedDelivery': '[receiver:reject]',
  'after:QueueFailedDelivery': '[receiver:reject]',
  'before:ExportFailedConversation': '[agent:fail]',
};

interface Request {
  n: number;
  query: string;
  key: string | null;
  point: string | null;
}

const requests: Request[] = [];
const add = (marker: string, keyed: boolean, point: string | null = null) => {
  const n = requests.length + 1;
  requests.push({ n, query: `chaos #${n} ${marker}`.trim(), key: keyed ? `chaos-key-${n}` : null, point });
};
for (let i = 0; i < 10; i++) add('', i % 2 === 0); // answered before the kill
const firstInFlight = requests.length;
for (const point of POINTS)
  for (const keyed of [true, false]) add(`[hold:${point}] ${NEEDS[point] ?? ''}`, keyed, point);
for (let i = 0; i < 20; i++) add('[agent:hold]', i % 2 === 0); // waiting on the agent
for (let i = 0; i < 10; i++) add('[receiver:hold]', i % 2 === 0); // waiting on the receiver's answer
const inFlight = requests.slice(firstInFlight);
const heldPoints = requests.filter((r) => r.point).length;

/**
 * A start (and recovery) on a machine shared with other test files can be slow: bounded, but generously. The restart
 * recovers 50 conversations before it listens: 55.7 s at load 19 (its recovery 22.5 s; the first start 29 s), and past
 * 60 s in a loaded run of test/e2e (load 12-22: 'did not start'). The limits only catch a hang.
 */
const START_MS = 120_000;

const body = (r: Request) => JSON.stringify({ query: r.query, source_system: 'chaos_test', source_process: 'kill9' });

let holding = true;
interface Delivery {
  query: string;
  webhookId: string;
}
const deliveries: Delivery[] = [];
const servers: Server[] = [];
const serve = (handler: Parameters<typeof serveJson>[1]) => serveJson(servers, handler);
const never = new Promise<never>(() => {});
let agentWaiting = 0;
let receiverWaiting = 0;

let dataDir: string;
let gateway: Awaited<ReturnType<typeof startCli>> | null = null;
afterAll(async () => {
  await killIfRunning(gateway);
  closeJsonServers(servers);
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

function post(url: string, r: Request) {
  return fetch(`${url}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(r.key ? { 'idempotency-key': r.key } : {}) },
    body: body(r),
  });
}

describe('kill -9 with conversations in flight, then a restart on the same data', () => {
  it('loses nothing, delivers each request under one webhook-id, and settles every key at once', async () => {
    const agentUrl = await serve(async (_req, text) => {
      const query = String((JSON.parse(text || '{}') as { query?: unknown }).query ?? '');
      if (query.includes('[agent:hold]') && holding) {
        agentWaiting += 1;
        return never;
      }
      if (query.includes('[agent:fail]'))
        return [
          200,
          { errorType: 'ChaosAgentError', errorMessage: 'asked to fail' },
          { 'x-amz-function-error': 'Unhandled' },
        ];
      return [200, { response: `Answer to: ${query}` }];
    });
    const receiverUrl = await serve(async (req, text) => {
      const payload = JSON.parse(text) as { query: string };
      deliveries.push({ query: payload.query, webhookId: String(req.headers['webhook-id']) });
      if (payload.query.includes('[receiver:reject]')) return [400, { error: 'rejected' }];
      if (payload.query.includes('[receiver:hold]') && holding) {
        receiverWaiting += 1;
        return never;
      }
      return [200, { ok: true }];
    });

    dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-chaos-'));
    const env = { ...crashTestEnv(dataDir, agentUrl, receiverUrl), MANAGER_AGENT_TIMEOUT_MS: '20000' };
    gateway = await startCli({ ...env, LOCAL_TEST_HOLDS: 'true' }, START_MS);
    const first = gateway;

    for (const r of requests.slice(0, firstInFlight)) expect((await post(first.url, r)).status).toBe(200);
    const cut = inFlight.map((r) =>
      post(first.url, r).then(
        (res) => res.status,
        () => 'cut',
      ),
    );
    await until('every request in flight at its point', () => {
      const held = first.output().match(/test hold: /g)?.length ?? 0;
      return held === heldPoints && agentWaiting === 20 && receiverWaiting === 10;
    });
    const exited = new Promise((resolve) => first.child.once('exit', resolve));
    first.child.kill('SIGKILL');
    await exited;
    expect(new Set(await Promise.all(cut))).toEqual(new Set(['cut']));
    holding = false;

    // Restart on the same data: the gateway listens only once recovery has finished.
    gateway = await startCli(env, START_MS);
    const second = gateway;
    const recoveredLines = second.output().match(/ recovered {2}.*/g) ?? [];
    const recoveryMs = Number(/recovered from the journal in (\d+) ms/.exec(second.output())?.[1]);
    const s3Endpoint = /S3 {6}(http:\/\/\S+)/.exec(second.output())![1]!;

    // Every keyed request is retried by its client: an answer at once, never 409.
    const retried = await Promise.all(
      inFlight.filter((r) => r.key).map(async (r) => ({ r, res: await post(second.url, r) })),
    );
    for (const { r, res } of retried) expect(res.status, r.query).toBe(r.query.includes('[agent:fail]') ? 502 : 200);

    // Owed deliveries go out on the (shortened) schedule.
    await until('the redelivery schedule to deliver what was owed', async () => {
      const { deliveries } = (await (await fetch(`${second.url}/local/deliveries?state=pending&limit=1`)).json()) as {
        deliveries: { state: string }[];
      };
      return deliveries.length === 0;
    });

    const s3 = new S3Client({ endpoint: s3Endpoint, forcePathStyle: true, region: 'us-east-1' });
    const exports: { query: string; status: string; delivery_status: string; answered: boolean }[] = [];
    for (let token: string | undefined, page = 0; page === 0 || token; page++) {
      const listed = await s3.send(
        new ListObjectsV2Command({ Bucket: 'revops-conversations', ContinuationToken: token }),
      );
      token = listed.NextContinuationToken;
      for (const object of listed.Contents ?? []) {
        if (!object.Key!.endsWith('/conversation.json')) continue;
        const got = await s3.send(new GetObjectCommand({ Bucket: 'revops-conversations', Key: object.Key! }));
        const record = JSON.parse(await got.Body!.transformToString()).conversation;
        exports.push({
          query: record.conversation.turns[0].content,
          status: record.execution.status,
          delivery_status: record.webhook_context.delivery_status,
          answered: record.conversation.turns.length > 1,
        });
      }
    }
    s3.destroy();
    const exportsOf = (r: Request) => exports.filter((e) => e.query === r.query);
    const idsOf = (r: Request) => new Set(deliveries.filter((d) => d.query === r.query).map((d) => d.webhookId));

    const accepted = inFlight.filter((r) => r.point !== 'before:Validate' && r.point !== 'after:Validate');
    const lost = accepted.filter(
      (r) => !exportsOf(r).some((e) => ['completed', 'failed', 'interrupted'].includes(e.status)),
    );
    const duplicates = requests.filter((r) => idsOf(r).size > 1 || exportsOf(r).filter((e) => e.answered).length > 1);
    const undelivered = requests.filter(
      (r) => exportsOf(r).some((e) => e.answered && e.delivery_status !== 'failed') && idsOf(r).size === 0,
    );
    const figures = {
      in_flight: inFlight.length,
      accepted: accepted.length,
      recovered: recoveredLines.filter((l) => !l.includes('not accepted')).length,
      lost: lost.length,
      duplicates: duplicates.length,
      recovery_ms: recoveryMs,
    };
    console.log(`chaos figures: ${JSON.stringify(figures)}`);
    expect(lost.map((r) => r.query)).toEqual([]);
    expect(duplicates.map((r) => r.query)).toEqual([]);
    expect(undelivered.map((r) => r.query)).toEqual([]);
    expect(figures.recovered).toBe(accepted.length);

    // What each crash point ends as.
    const outcome = (point: string, keyed: boolean) => {
      const r = inFlight.find((x) => x.point === point && !!x.key === keyed)!;
      return exportsOf(r)
        .map((e) => `${e.status}/${e.delivery_status}`)
        .sort();
    };
    for (const keyed of [true, false]) {
      const retry = keyed ? ['completed/delivered'] : [];
      expect(outcome('before:Validate', keyed)).toEqual(retry);
      expect(outcome('after:Validate', keyed)).toEqual(retry);
      expect(outcome('before:InvokeManagerAgent', keyed)).toEqual([...retry, 'interrupted/not_attempted']);
      expect(outcome('after:InvokeManagerAgent', keyed)).toEqual([...retry, 'interrupted/not_attempted']);
      for (const point of ['before:Classify', 'before:Deliver', 'after:Deliver'])
        expect(outcome(point, keyed), point).toEqual(['interrupted/delivered']);
      expect(outcome('before:Export', keyed)).toEqual(['completed/delivered']);
      expect(outcome('after:Export', keyed)).toEqual(['completed/delivered']);
      expect(outcome('before:QueueFailedDelivery', keyed)).toEqual(['completed/failed']);
      expect(outcome('after:QueueFailedDelivery', keyed)).toEqual(['completed/failed']);
      expect(outcome('before:ExportFailedConversation', keyed)).toEqual(
        keyed ? ['failed/not_attempted', 'failed/not_attempted'] : ['failed/not_attempted'],
      );
    }

    // Held after Deliver returned: the receiver took it, and the attempt log kept that, so it is not sent again
    // (before: queued as if its outcome were unknown, and the schedule delivered it a second time).
    for (const r of inFlight.filter((x) => x.point === 'after:Deliver'))
      expect(deliveries.filter((d) => d.query === r.query).length, r.query).toBe(1);

    // No key is left in progress.
    const keysDir = path.join(dataDir, 'idempotency');
    const statuses = await Promise.all(
      (await readdir(keysDir)).map(
        async (f) => (JSON.parse(await readFile(path.join(keysDir, f), 'utf8')) as { status: string }).status,
      ),
    );
    expect(statuses.filter((s) => s === 'in_progress')).toEqual([]);
    // …and no journal is left once everything ended.
    const stopped = new Promise((resolve) => second.child.once('exit', resolve));
    second.child.kill('SIGINT');
    await stopped;
    expect(await readdir(path.join(dataDir, 'journal'))).toEqual([]);
    // The whole test took 129 s at load 17-20, its restart 55.7 s of it: a restart near START_MS would pass 180 s.
  }, 240_000);
});
