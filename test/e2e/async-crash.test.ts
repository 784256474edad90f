import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { crashTestEnv, killIfRunning, startCli, until } from '../support/cli.ts';
import { closeJsonServers, serveJson } from '../support/servers.ts';

/**
 * kill -9 with asynchronous conversations (`Prefer: respond-async`) in flight (docs/operations.md, "After a crash"):
 * runs waiting on the agent or on the receiver, accept executions held before and after they started their run, and
 * a conversation delivered just before the kill. After the restart, every conversation whose run began ends exported,
 * its status completed (a run cut while its agent was called is started again), delivered under one webhook-id; a
 * keyed client's retry gets an answer, never 409.
 */
const START_MS = 60_000;

interface Request {
  query: string;
  key: string | null;
}
const REQUESTS = {
  agent: '[agent:hold]',
  receiver: '[receiver:hold]',
  beforeStart: '[hold:before:StartConversation]',
  afterStart: '[hold:after:StartConversation]',
  done: '',
} as const;
type Case = keyof typeof REQUESTS;
const requests: Record<string, Request> = {};
for (const [name, marker] of Object.entries(REQUESTS) as [Case, string][])
  for (const keyed of [true, false])
    requests[`${name}${keyed ? ':keyed' : ''}`] = {
      query: `async crash ${name}${keyed ? ' keyed' : ''} ${marker}`.trim(),
      key: keyed ? `async-crash-${name}` : null,
    };

const deliveries: { query: string; webhookId: string }[] = [];
const servers: Server[] = [];
let holding = true;
let agentWaiting = 0;
let receiverWaiting = 0;
const never = new Promise<never>(() => {});

const serve = (handler: Parameters<typeof serveJson>[1]) => serveJson(servers, handler);

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
    headers: {
      'content-type': 'application/json',
      prefer: 'respond-async',
      ...(r.key ? { 'idempotency-key': r.key } : {}),
    },
    body: JSON.stringify({ query: r.query, source_system: 'crash_test', source_process: 'async_kill9' }),
  });
}

describe('kill -9 with asynchronous conversations in flight, then a restart on the same data', () => {
  it('ends every conversation whose run began exported, its status settled, delivered under one webhook-id', async () => {
    const agentUrl = await serve(async (_req, text) => {
      const query = String((JSON.parse(text || '{}') as { query?: unknown }).query ?? '');
      if (query.includes('[agent:hold]') && holding) {
        agentWaiting += 1;
        return never;
      }
      return [200, { response: `Answer to: ${query}` }];
    });
    const receiverUrl = await serve(async (req, text) => {
      const { query } = JSON.parse(text) as { query: string };
      deliveries.push({ query, webhookId: String(req.headers['webhook-id']) });
      if (query.includes('[receiver:hold]') && holding) {
        receiverWaiting += 1;
        return never;
      }
      return [200, { ok: true }];
    });
    dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-async-crash-'));
    const env = crashTestEnv(dataDir, agentUrl, receiverUrl);
    gateway = await startCli({ ...env, LOCAL_TEST_HOLDS: 'true' }, START_MS);
    const first = gateway;
    const answers: Record<string, Promise<number | 'cut'>> = {};
    const ids: Record<string, string> = {};
    // Two conversations ended before the kill (their status completed), then the others put in flight.
    const ended = ['done', 'done:keyed'];
    const byName = (names: string[]) => Object.entries(requests).filter(([name]) => names.includes(name));
    const send = (name: string, r: Request) => {
      answers[name] = post(first.url, r).then(
        async (res) => {
          if (res.status === 202) ids[name] = ((await res.json()) as { conversation_id: string }).conversation_id;
          return res.status;
        },
        () => 'cut' as const,
      );
    };
    for (const [name, r] of byName(ended)) send(name, r);
    for (const name of ended) expect(await answers[name], name).toBe(202);
    const statusIn = async (url: string, id: string) =>
      ((await (await fetch(`${url}/conversations/${id}?source_system=crash_test`)).json()) as { status: string })
        .status;
    await until('the first two completed', async () =>
      (await Promise.all(ended.map((name) => statusIn(first.url, ids[name]!)))).every((s) => s === 'completed'),
    );
    for (const [name, r] of Object.entries(requests)) if (!ended.includes(name)) send(name, r);
    for (const name of ['agent', 'agent:keyed', 'receiver', 'receiver:keyed'])
      expect(await answers[name], name).toBe(202);
    await until('every run and accept at its point', () => {
      const held = first.output().match(/test hold: /g)?.length ?? 0;
      return held === 4 && agentWaiting === 2 && receiverWaiting === 2;
    });
    const exited = new Promise((resolve) => first.child.once('exit', resolve));
    first.child.kill('SIGKILL');
    await exited;
    holding = false;
    for (const name of ['beforeStart', 'beforeStart:keyed', 'afterStart', 'afterStart:keyed'])
      expect(await answers[name], name).toBe('cut');

    gateway = await startCli(env, START_MS);
    const second = gateway;

    const exported = async (id: string) => {
      const folder = path.join(dataDir, 's3');
      const found: string[] = [];
      const walk = async (dir: string): Promise<void> => {
        for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
          if (entry.isDirectory()) await walk(path.join(dir, entry.name));
          else if (path.join(dir, entry.name).includes(`${id}`) && entry.name.startsWith('conversation.json'))
            found.push(path.join(dir, entry.name));
        }
      };
      await walk(folder);
      return found;
    };
    await until('the owed deliveries delivered', async () => {
      const { deliveries: pending } = (await (
        await fetch(`${second.url}/local/deliveries?state=pending&limit=10`)
      ).json()) as { deliveries: unknown[] };
      return pending.length === 0;
    });
    // Every run whose caller had its 202 ends completed: one cut while its agent was called started again at the
    // restart (before: closed as interrupted, its status failed, never delivered), the others had their answer.
    const accepted = ['done', 'done:keyed', 'agent', 'agent:keyed', 'receiver', 'receiver:keyed'];
    await until('every accepted conversation completed', async () =>
      (await Promise.all(accepted.map((name) => statusIn(second.url, ids[name]!)))).every((s) => s === 'completed'),
    );
    for (const name of accepted) expect((await exported(ids[name]!)).length, name).toBeGreaterThan(0);
    // One webhook-id per conversation, however often it reached the receiver.
    for (const r of Object.values(requests)) {
      const ids = new Set(deliveries.filter((d) => d.query === r.query).map((d) => d.webhookId));
      expect(ids.size, r.query).toBeLessThanOrEqual(1);
    }
    for (const name of ['receiver', 'receiver:keyed'])
      expect(deliveries.filter((d) => d.query === requests[name]!.query).length, name).toBeGreaterThanOrEqual(2);
    for (const name of ['agent', 'agent:keyed'])
      expect(deliveries.filter((d) => d.query === requests[name]!.query).length, name).toBe(1);
    // A keyed client retries: an answer (its 202 again, or a new run for one never accepted), never 409.
    for (const name of Object.keys(requests).filter((n) => n.endsWith(':keyed'))) {
      const res = await post(second.url, requests[name]!);
      expect(res.status, name).toBe(202);
    }
    const keysDir = path.join(dataDir, 'idempotency');
    await until('no key in progress', async () => {
      const statuses = await Promise.all(
        // The keys' records only: a copy being written aside (`<key>.json.<hex>.tmp`) may be read half-written.
        (await readdir(keysDir))
          .filter((f) => f.endsWith('.json'))
          .map(async (f) => (JSON.parse(await readFile(path.join(keysDir, f), 'utf8')) as { status: string }).status),
      );
      return statuses.every((s) => s !== 'in_progress');
    });
    const stopped = new Promise((resolve) => second.child.once('exit', resolve));
    second.child.kill('SIGINT');
    await stopped;
    expect(await readdir(path.join(dataDir, 'journal'))).toEqual([]);
  }, 180_000);
});
