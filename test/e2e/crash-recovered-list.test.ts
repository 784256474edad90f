import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { crashTestEnv, killIfRunning, runCli, startCli, until } from '../support/cli.ts';
import { closeJsonServers, serveJson } from '../support/servers.ts';

/**
 * "What did the last crash interrupt?" (docs/operations.md, "After a crash"): the real gateway (a child process) is
 * killed with SIGKILL with one conversation cut after its delivery (recovery finishes it: completed) and one cut before
 * it (closed interrupted); `conversations list --status interrupted`, `conversations show` and the console list both,
 * the first as `interrupted → completed`, and not the conversation answered before the kill.
 */
const START_MS = 60_000;
const servers: Server[] = [];
const started: { dataDir?: string; gateway?: Awaited<ReturnType<typeof startCli>> } = {};
afterAll(async () => {
  await killIfRunning(started.gateway ?? null);
  closeJsonServers(servers);
  if (started.dataDir) await rm(started.dataDir, { recursive: true, force: true });
});

const post = (url: string, query: string) =>
  fetch(`${url}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, source_system: 'crash_list', source_process: 'kill9' }),
  });

interface Row {
  conversation_id: string;
  status: string;
  delivery_status: string;
  recovered: boolean;
  query: string;
}

describe('conversations a kill -9 cut, listed after the restart', () => {
  it('--status interrupted lists the one recovery completed (interrupted → completed) and the one it closed interrupted', async () => {
    const agentUrl = await serveJson(servers, async (_req, text) => [
      200,
      { response: `Answer to: ${String((JSON.parse(text || '{}') as { query?: unknown }).query)}` },
    ]);
    const receiverUrl = await serveJson(servers, async () => [200, { ok: true }]);
    const dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-recovered-list-'));
    started.dataDir = dataDir;
    const env = crashTestEnv(dataDir, agentUrl, receiverUrl);
    const first = await startCli({ ...env, LOCAL_TEST_HOLDS: 'true' }, START_MS);
    started.gateway = first;
    expect((await post(first.url, 'answered before the kill')).status).toBe(200);
    const cut = [
      post(first.url, 'cut once delivered [hold:before:Export]'),
      post(first.url, 'cut before delivering [hold:before:Deliver]'),
    ].map((p) =>
      p.then(
        (r) => r.status,
        () => 'cut',
      ),
    );
    await until('both held at their point', () => (first.output().match(/test hold: /g)?.length ?? 0) === 2);
    const exited = new Promise((resolve) => first.child.once('exit', resolve));
    first.child.kill('SIGKILL');
    await exited;
    expect(await Promise.all(cut)).toEqual(['cut', 'cut']);

    const gateway = await startCli(env, START_MS);
    started.gateway = gateway;
    const cliEnv = { LOCAL_DATA_DIR: dataDir };
    const listed = await runCli(['conversations', 'list', '--status', 'interrupted', '--json'], cliEnv);
    expect(listed.code, listed.stderr).toBe(0);
    // (The one cut before its delivery is delivered by the redelivery schedule meanwhile: its delivery is not looked at.)
    const rows = (JSON.parse(listed.stdout) as Row[]).map(({ query, status, recovered }) => ({
      query,
      status,
      recovered,
    }));
    // Before: only the second (status interrupted); the first, completed by recovery, was not listed.
    expect(rows.sort((a, b) => a.query.localeCompare(b.query))).toEqual([
      {
        query: 'cut before delivering [hold:before:Deliver]',
        status: 'interrupted',
        recovered: true,
      },
      {
        query: 'cut once delivered [hold:before:Export]',
        status: 'completed',
        recovered: true,
      },
    ]);
    const all = JSON.parse((await runCli(['conversations', 'list', '--json'], cliEnv)).stdout) as Row[];
    expect(all.find((r) => r.query === 'answered before the kill')?.recovered).toBe(false);
    const completed = all.find((r) => r.query.startsWith('cut once delivered'))!.conversation_id;

    const table = await runCli(['conversations', 'list', '--status', 'interrupted'], cliEnv);
    expect(table.stdout).toMatch(new RegExp(`${completed} .*interrupted → completed +delivered`));
    const shown = await runCli(['conversations', 'show', completed], cliEnv);
    expect(shown.stdout).toContain('  status     interrupted → completed   delivery delivered');
    expect(shown.stdout).toContain("a stop of the gateway cut it; the next start's recovery finished it");
    const shownJson = JSON.parse((await runCli(['conversations', 'show', completed, '--json'], cliEnv)).stdout);
    expect(shownJson.recovered).toBe(true);

    // The console: its list filtered as the CLI is, and the conversation's page.
    const page = await (await fetch(`${gateway.url}/console?status=interrupted`)).text();
    expect(page).toContain(
      `data-id="${completed}" data-status="completed" data-delivery="delivered" data-recovered="true"`,
    );
    expect(page.match(/<tr data-id="/g)).toHaveLength(2);
    const own = await (await fetch(`${gateway.url}/console/conversations/${completed}`)).text();
    expect(own).toMatch(/id="conversation-status" data-recovered="true">.*b-interrupted.*→.*b-completed/s);
  }, 180_000);
});
