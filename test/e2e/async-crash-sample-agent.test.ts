import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killIfRunning, NEW_USER_START_ENV, startCli, until } from '../support/cli.ts';

/**
 * kill -9 of a plain `npm start` (its SAMPLE agent and built-in receiver on the gateway's own port) while an
 * asynchronous conversation's agent is called (docs/operations.md, "After a crash": `started again`, then delivered
 * and exported, its status `completed`). The restart starts the run again while it still recovers, before it takes
 * requests: its agent and receiver are this very server. Before, they answered that run 503 `STARTING` like any
 * request, and the accepted conversation ended `failed` with `AGENT_ERROR` (`Lambda.Unknown ... Status Code: 503`),
 * never delivered.
 */
const START_MS = 60_000;
const SOURCE = 'crash_sample';

let dataDir: string;
let gateway: Awaited<ReturnType<typeof startCli>> | null = null;
afterAll(async () => {
  await killIfRunning(gateway);
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** Whether the journal says the run of `conversationId` went into InvokeManagerAgent (the agent is being called). */
async function atTheAgent(conversationId: string): Promise<boolean> {
  const dir = path.join(dataDir, 'journal');
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.jsonl')))
    for (const line of (await readFile(path.join(dir, file), 'utf8')).split('\n'))
      if (line.includes('"k":"in","s":"InvokeManagerAgent"') && line.includes(conversationId)) return true;
  return false;
}

/** How many runs the journal says went into InvokeManagerAgent. */
async function inTheJournal(): Promise<number> {
  const dir = path.join(dataDir, 'journal');
  let n = 0;
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.jsonl')))
    n += (await readFile(path.join(dir, file), 'utf8')).split('"k":"in","s":"InvokeManagerAgent"').length - 1;
  return n;
}

describe('kill -9 of npm start with the sample agent while an asynchronous conversation waits on it', () => {
  it('starts the run again at the restart, and its own sample agent and receiver answer it: completed, delivered', async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-async-crash-sample-'));
    const env = { ...NEW_USER_START_ENV, LOCAL_DATA_DIR: dataDir, REDELIVERY_POLL_MS: '0' };
    // The first gateway's sample agent takes longer than the test: the run is cut while its agent is called.
    gateway = await startCli({ ...env, SAMPLE_AGENT_SLOW_MS: '110000' }, START_MS);
    const first = gateway;
    const accepted = await fetch(`${first.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', prefer: 'respond-async', 'idempotency-key': 'sample-crash-1' },
      body: JSON.stringify({ query: 'top deals? [sample:slow]', source_system: SOURCE, source_process: 'kill9' }),
    });
    expect(accepted.status).toBe(202);
    const { conversation_id: id } = (await accepted.json()) as { conversation_id: string };
    // Synchronous conversations cut at their agent too: the restart closes them as interrupted while the run it
    // started again calls its agent (before the gateway takes requests).
    const cut = Array.from({ length: 12 }, (_, i) =>
      fetch(`${first.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: `sync ${i} [sample:slow]`, source_system: SOURCE, source_process: 'kill9' }),
      }).catch(() => 'cut'),
    );
    await until('the run calling its agent', () => atTheAgent(id));
    await until('the synchronous ones at their agent', async () => (await inTheJournal()) === 13);
    const exited = new Promise((resolve) => first.child.once('exit', resolve));
    first.child.kill('SIGKILL');
    await exited;
    await Promise.all(cut);

    // The restarted gateway's sample agent answers at once.
    gateway = await startCli({ ...env, SAMPLE_AGENT_SLOW_MS: '1' }, START_MS);
    const second = gateway;
    expect(second.output()).toMatch(new RegExp(`recovered\\s+${id}\\s+asynchronous, cut before its agent's answer`));
    let status: { status: string; error?: { code: string; message: string }; tracking?: { delivery_status: string } };
    await until('the run started again ended', async () => {
      const res = await fetch(`${second.url}/conversations/${id}?source_system=${SOURCE}`);
      status = (await res.json()) as typeof status;
      return status.status !== 'running';
    });
    expect(status!.error, JSON.stringify(status!.error)).toBeUndefined();
    expect(status!.status).toBe('completed');
    expect(status!.tracking?.delivery_status).toBe('delivered');
    const received = (await (await fetch(`${second.url}/local/receiver/deal_analysis`)).json()) as {
      body: { conversation_id: string };
    }[];
    expect(received.map((r) => r.body.conversation_id)).toEqual([id]);
  }, 180_000);
});
