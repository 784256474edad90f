import { mkdtemp, readdir, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { WebhookType } from '../../functions/domain/conversation.ts';
import { crashTestEnv, killIfRunning, runMain, startCli, until } from '../support/cli.ts';
import { closeJsonServers, serveJson } from '../support/servers.ts';

/**
 * A redelivery cut by kill -9 (docs/operations.md, "After a crash"): the real gateway (a child process) with three
 * redelivery runs waiting on the receiver — one of the schedule, an operator's redrive, an operator's resend — is
 * killed with SIGKILL and restarted on the same data. Each cut run must be shown (its history, the cut state
 * GatewayInterrupted), its envelope left as it was before the run: the schedule's is delivered again (under the
 * same webhook-id), the dead one redriven stays dead for the operator, and the resend is not repeated.
 */
const START_MS = 60_000;

interface Delivery {
  query: string;
  webhookId: string;
  n: number;
}
const deliveries: Delivery[] = [];
const servers: Server[] = [];
let holding = true;
let waiting = 0;
const never = new Promise<never>(() => {});

const serve = (handler: Parameters<typeof serveJson>[1]) => serveJson(servers, handler);

let dataDir: string;
let gateway: Awaited<ReturnType<typeof startCli>> | null = null;
afterAll(async () => {
  await killIfRunning(gateway);
  closeJsonServers(servers);
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** Each conversation goes to its own type, so that one receiver's failures never hold another's back. */
const CASES = {
  schedule: { query: 'redelivery crash: by the schedule', type: 'deal_analysis' },
  redrive: { query: 'redelivery crash: redriven when dead', type: 'data_analysis' },
  resend: { query: 'redelivery crash: resent', type: 'lead_analysis' },
} satisfies Record<string, { query: string; type: WebhookType }>;

describe('kill -9 during a redelivery (the schedule, a redrive, a resend), then a restart on the same data', () => {
  it('shows each cut run as interrupted and leaves its envelope as it was: nothing lost, nothing repeated by itself', async () => {
    const agentUrl = await serve(async (_req, text) => {
      const query = String((JSON.parse(text || '{}') as { query?: unknown }).query ?? '');
      return [200, { response: `Answer to: ${query}` }];
    });
    const receiverUrl = await serve(async (req, text) => {
      const { query } = JSON.parse(text) as { query: string };
      const n = deliveries.filter((d) => d.query === query).length + 1;
      deliveries.push({ query, webhookId: String(req.headers['webhook-id']), n });
      // The schedule's: refused (retryably) through the workflow's 4 attempts; the redrive's: refused for good once.
      if (query === CASES.schedule.query && n <= 4) return [503, { error: 'busy' }];
      if (query === CASES.redrive.query && n === 1) return [400, { error: 'rejected' }];
      if (n > 1 && holding) {
        waiting += 1;
        return never;
      }
      return [200, { ok: true }];
    });

    dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-redelivery-crash-'));
    const env = crashTestEnv(dataDir, agentUrl, receiverUrl);
    gateway = await startCli(env, START_MS);
    const first = gateway;
    const ids: Record<keyof typeof CASES, string> = { schedule: '', redrive: '', resend: '' };
    for (const [name, c] of Object.entries(CASES) as [keyof typeof CASES, (typeof CASES)['schedule']][]) {
      const res = await fetch(`${first.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          query: c.query,
          source_system: 'crash_test',
          source_process: 'kill9',
          webhook_type: c.type,
        }),
      });
      const answer = await res.text();
      expect(res.status, `${name}: ${answer}\n${first.output()}`).toBe(200);
      ids[name] = (JSON.parse(answer) as { conversation_id: string }).conversation_id;
    }
    // The schedule takes the first one up by itself; the operator redrives the dead one and resends the delivered one.
    const redrive = fetch(`${first.url}/local/deliveries/${ids.redrive}/redrive`, { method: 'POST' }).catch(
      () => 'cut',
    );
    const resend = fetch(`${first.url}/local/deliveries/${ids.resend}/resend`, { method: 'POST' }).catch(() => 'cut');
    await until('three redeliveries waiting on the receiver', () => waiting === 3);
    const exited = new Promise((resolve) => first.child.once('exit', resolve));
    first.child.kill('SIGKILL');
    await exited;
    expect([await redrive, await resend]).toEqual(['cut', 'cut']);
    holding = false;

    gateway = await startCli(env, START_MS);
    const second = gateway;
    const recovered = second.output().match(/ recovered {2}.*/g) ?? [];
    for (const [name, id] of Object.entries(ids))
      expect(
        recovered.some((line) => line.includes(id) && line.includes(`${name} `) && line.includes('interrupted')),
        `${name}: ${recovered.join('\n')}`,
      ).toBe(true);

    // The schedule delivers the first again, under the same webhook-id, and settles it.
    const envelopes = async () =>
      (
        (await (await fetch(`${second.url}/local/deliveries?state=all&limit=1000`)).json()) as {
          deliveries: { conversation_id: string; state: string }[];
        }
      ).deliveries;
    await until('the schedule to deliver the cut one again', async () =>
      (await envelopes()).some((e) => e.conversation_id === ids.schedule && e.state === 'settled'),
    );
    const of = (c: keyof typeof CASES) => deliveries.filter((d) => d.query === CASES[c].query);
    expect(of('schedule').map((d) => d.n)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(new Set(of('schedule').map((d) => d.webhookId)).size).toBe(1);
    // The dead one stays dead (the operator may redrive it again); the resend is not repeated.
    expect((await envelopes()).find((e) => e.conversation_id === ids.redrive)?.state).toBe('dead');
    expect(of('redrive')).toHaveLength(2);
    expect(of('resend')).toHaveLength(2);

    // `conversations show` tells each cut run.
    const cliEnv = { LOCAL_DATA_DIR: dataDir, NO_COLOR: '1' };
    for (const id of Object.values(ids)) {
      const shown = (await runMain(['conversations', 'show', id], cliEnv)).stdout;
      expect(shown, id).toMatch(/-redelivery-\d+-\w+ \(redelivery\) FAILED/);
      expect(shown, id).toMatch(/Deliver .*GatewayInterrupted/);
    }

    // Nothing is left in the journal once everything ended.
    const stopped = new Promise((resolve) => second.child.once('exit', resolve));
    second.child.kill('SIGINT');
    await stopped;
    expect(await readdir(path.join(dataDir, 'journal'))).toEqual([]);
  }, 180_000);
});
