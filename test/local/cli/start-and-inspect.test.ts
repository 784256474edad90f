import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PROJECT_ROOT } from '../../../local/paths.ts';
import { runCommand } from '../../support/children.ts';
import { NEW_USER_START_ENV, runCli, startCli } from '../../support/cli.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

const TRACING_SDK_REPORT = path.join(PROJECT_ROOT, 'test', 'support', 'report-tracing-sdk.cjs');
const HAS_JQ = (process.env.PATH ?? '').split(path.delimiter).some((d) => existsSync(path.join(d, 'jq')));

/** What a new user does: `npm start` (the bin), the README's curl, then the CLI to inspect the conversation. */
let root: string;
let dataDir: string;
let gateway: Awaited<ReturnType<typeof startCli>>;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-cli-'));
  dataDir = path.join(root, '.data'); // made by the start, as on a fresh clone
  gateway = await startCli({
    ...NEW_USER_START_ENV,
    LOCAL_DATA_DIR: dataDir,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${TRACING_SDK_REPORT}`,
  });
});
afterAll(async () => {
  if (gateway && gateway.child.exitCode === null) {
    const exited = new Promise((r) => gateway.child.once('exit', r));
    gateway.child.kill('SIGINT');
    await exited;
  }
  await rm(root, { recursive: true, force: true });
});

describe('webhook-gateway start / conversations', () => {
  let conversationId: string;

  it('prints what runs where', () => {
    const out = gateway.output();
    expect(out).toMatch(/POST http:\/\/127\.0\.0\.1:\d+\/webhook/);
    expect(out).toMatch(/SAMPLE agent/);
    expect(out).toMatch(/bucket revops-conversations/);
    expect(out).toMatch(/deliver deal_analysis\s+→ http:\/\/127\.0\.0\.1:\d+\/…/);
    expect(out).toMatch(/signing deliveries with the secrets in \S*delivery-signing-secrets\.json/);
    expect(out).toMatch(/console http:\/\/127\.0\.0\.1:\d+\/console/);
  });

  it("makes the data folder its owner's alone (0700); the handlers' log is 0600", async () => {
    const mode = async (file: string) => (await stat(file)).mode & 0o777;
    expect(await mode(dataDir)).toBe(0o700);
    expect(await mode(path.join(dataDir, 'logs', 'handlers.jsonl'))).toBe(0o600);
    expect(await mode(path.join(dataDir, 'delivery-signing-secrets.json'))).toBe(0o600);
  });

  it('answers the README curl with 200 and tracking, delivering to the built-in receiver', async () => {
    const res = await fetch(`${gateway.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(SEED_REQUEST),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.tracking).toMatchObject({ webhook_type: 'deal_analysis', delivery_status: 'delivered' });
    expect(Object.keys(body.tracking)).toEqual(
      expect.arrayContaining(['conversation_id', 'delivery_id', 'webhook_type', 'processing_time_ms']),
    );
    expect(body.response.sample).toBe(true);
    conversationId = body.conversation_id;
    const received = (await (await fetch(`${gateway.url}/local/receiver/deal_analysis`)).json()) as any;
    expect(received.map((r: { body: { conversation_id: string } }) => r.body.conversation_id)).toContain(
      conversationId,
    );
    const folder = path.join(
      dataDir,
      's3',
      'revops-conversations',
      'conversation-history',
      ...conversationId
        .slice(8, 16)
        .match(/^(\d{4})(\d{2})(\d{2})$/)!
        .slice(1),
      conversationId,
    );
    // Each export is a plain file under its key (the embedded S3's metadata sits beside it in `.`-files).
    const files = (await readdir(folder)).filter((f) => !f.startsWith('.')).sort();
    expect(files).toEqual(['analysis.json', 'conversation.json', 'metadata.json', 'summary.json']);
    const summary = JSON.parse(await readFile(path.join(folder, 'summary.json'), 'utf8'));
    expect(summary.conversation_id).toBe(conversationId);
  });

  it("the banner's Then: command lists this gateway's conversations from another shell", async () => {
    // Before, it said `npx webhook-gateway conversations list`, which reads the repository's .data, not this folder.
    const then = /^Then: (.+?) {3}·/m.exec(gateway.output())![1]!;
    expect(then).toBe(`LOCAL_DATA_DIR=${dataDir} npx webhook-gateway conversations list`);
    const { LOCAL_DATA_DIR: _, ...shell } = process.env;
    const bin = `"${process.execPath}" "${path.join(PROJECT_ROOT, 'bin', 'webhook-gateway.mjs')}"`;
    const listed = await runCommand('bash', ['-c', then.replace('npx webhook-gateway', bin)], {
      cwd: root,
      env: shell,
    });
    expect(listed.stdout).toContain(conversationId);
  });

  it('the sample agent reaches all four types', async () => {
    const queries = {
      deal_analysis: 'Which deals are in the pipeline?',
      lead_analysis: 'How many new leads came in?',
      data_analysis: 'Show the churn metrics report',
      general: 'Hello there',
    };
    for (const [type, query] of Object.entries(queries)) {
      const res = await fetch(`${gateway.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...SEED_REQUEST, query }),
      });
      expect(((await res.json()) as any).tracking.webhook_type).toBe(type);
    }
  });

  it('conversations show <id> prints the state-by-state timeline with timings', async () => {
    const result = await runCli(['conversations', 'show', conversationId], { LOCAL_DATA_DIR: dataDir });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`conversation ${conversationId}`);
    expect(result.stdout).toMatch(
      /path: Validate → IsRequestValid → InvokeManagerAgent → Classify → Deliver → Export$/m,
    );
    for (const state of ['Validate', 'InvokeManagerAgent', 'Classify', 'Deliver', 'Export']) {
      expect(result.stdout).toMatch(new RegExp(`\\n  ${state}\\s+\\+\\d+ ms\\s+\\d+ ms\\s+0  succeeded`));
    }
    expect(result.stdout).toContain(`s3://revops-conversations/conversation-history/`);
    expect(result.stdout).toMatch(
      /\n {2}time {7}agent \d+ ms · delivery \d+ ms \(1 try\) · total \d+ ms · run \d+ ms\n/,
    );
  });

  it('conversations list shows the newest first', async () => {
    const result = await runCli(['conversations', 'list'], { LOCAL_DATA_DIR: dataDir });
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^conversation_id\s+received_at\s+source\s+type\s+status\s+delivery\s+total_ms$/);
    expect(lines).toHaveLength(2 + 5);
    expect(lines.at(-1)).toContain(conversationId);
    const json = JSON.parse((await runCli(['conversations', 'list', '--json'], { LOCAL_DATA_DIR: dataDir })).stdout);
    expect(json.map((c: { webhook_type: string }) => c.webhook_type)).toEqual([
      'general',
      'data_analysis',
      'lead_analysis',
      'deal_analysis',
      'deal_analysis',
    ]);
  });

  it('the sample agent says how many earlier turns of its thread it received', async () => {
    const answers: string[] = [];
    for (const query of ['Hello, first turn', 'And a second turn']) {
      const res = await fetch(`${gateway.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...SEED_REQUEST, query, thread_id: 'sample-thread' }),
      });
      answers.push(((await res.json()) as any).response.response);
    }
    expect(answers[0]).toMatch(/\(thread sample-thread, turn 1: 0 earlier turns received\)$/);
    expect(answers[1]).toMatch(/\(thread sample-thread, turn 2: 1 earlier turn received\)$/);
  });

  it("the banner's Try: curl works as printed, and an idempotent replay is logged as one", async () => {
    const banner = gateway.output();
    const tryLines = banner.slice(banner.indexOf('Try:'), banner.indexOf('Then:')).replace(/^Try:/, '');
    const curl = spawnSync('bash', ['-c', tryLines], { encoding: 'utf8' });
    const body = JSON.parse(curl.stdout);
    expect(body).toMatchObject({ success: true, tracking: { delivery_status: 'delivered' } });

    const replay = async () =>
      fetch(`${gateway.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': 'start-and-inspect-replay' },
        body: JSON.stringify({ ...SEED_REQUEST, query: 'Hello, once' }),
      });
    const first = (await (await replay()).json()) as { conversation_id: string };
    const again = await replay();
    expect(again.status).toBe(200);
    const line = new RegExp(
      `^\\S+ {2}200 {2}${first.conversation_id} {2}replayed \\(Idempotency-Key\\): general delivered`,
      'm',
    );
    await vi.waitFor(() => expect(gateway.output()).toMatch(line), { timeout: 15_000 });
    expect(gateway.output()).not.toMatch(/200 {2}\(rejected\)/);
  });

  it('unknown or malformed ids and unknown commands get one clear line, no stack trace', async () => {
    const unknown = await runCli(['conversations', 'show', 'webhook_20250813_103045_testing_phase3valid_zzzzzz'], {
      LOCAL_DATA_DIR: dataDir,
    });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(
      /^webhook-gateway: no conversation webhook_20250813_103045_testing_phase3valid_zzzzzz/,
    );
    expect(unknown.stderr).not.toMatch(/\n\s+at /);
    const malformed = await runCli(['conversations', 'show', '../../etc/passwd'], { LOCAL_DATA_DIR: dataDir });
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toMatch(/is not a conversation id/);
    const bad = await runCli(['frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown command/);
  });

  it('the operator log is one line per request, whatever bytes the request carries', async () => {
    const before = gateway.output().split('\n').length;
    const forged = `x\n${new Date().toISOString()}  200  webhook_20250101_000000_forged_line_x  deal_analysis delivered  1 ms`;
    const bodies: (string | Buffer)[] = [
      forged, // not JSON, with a line of its own inside
      Buffer.from(`\ufeff${JSON.stringify({ query: 'q', source_system: 's', source_process: 'p' })}`, 'utf16le'), // NULs
      `\u2028nul\u0000`,
    ];
    for (const body of bodies) {
      const res = await fetch(`${gateway.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).not.toContain('forged');
    }
    await vi.waitFor(() => expect(gateway.output().split('\n').length - before).toBeGreaterThanOrEqual(3), {
      timeout: 15_000,
    });
    const lines = gateway
      .output()
      .split('\n')
      .slice(before - 1, -1);
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).toMatch(/^\S+ {2}400 {2}\(rejected\) {2}INVALID_JSON: /);
    expect(gateway.output()).not.toContain('\u0000');
    expect(gateway.output()).not.toContain('\u2028');
    expect(gateway.output()).not.toMatch(/^\S+ {2}200 {2}webhook_20250101_000000_forged/m);
  });

  it("a sender's control characters reach the operator's terminal escaped: no ANSI or OSC sequence, no CR", async () => {
    const query = 'Which deals \u001b[31mRED\u001b[0m \u001b]0;retitled\u0007 close? \u202eevil\r';
    const res = await fetch(`${gateway.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...SEED_REQUEST, query, thread_id: 'escapes-thread' }),
    });
    const { conversation_id: id } = (await res.json()) as { conversation_id: string };
    const show = await runCli(['conversations', 'show', id], { LOCAL_DATA_DIR: dataDir });
    const thread = await runCli(['conversations', 'list', '--thread', 'escapes-thread'], { LOCAL_DATA_DIR: dataDir });
    // The thread's own turns, not another source's thread of the same name.
    expect(show.stdout).toContain(
      `(all of it: conversations list --thread escapes-thread --source ${SEED_REQUEST.source_system})`,
    );
    for (const result of [show, thread]) {
      expect(result.code).toBe(0);
      const raw = [...result.stdout].filter((c) => {
        const code = c.codePointAt(0)!;
        return (code < 0x20 && c !== '\n') || (code >= 0x7f && code <= 0x9f) || code === 0x202e;
      });
      expect(raw).toEqual([]);
      expect(result.stdout).toContain(
        'Which deals \\u001b[31mRED\\u001b[0m \\u001b]0;retitled\\u0007 close? \\u202eevil',
      );
    }
  });

  it('a long question is cut the same way in a thread listing and in show: on one line, marked "…"', async () => {
    const query = `Which deals close this quarter,\n${' and which of them slipped from the last one?'.repeat(6)}`;
    const res = await fetch(`${gateway.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...SEED_REQUEST, query, thread_id: 'long-thread' }),
    });
    const { conversation_id: id } = (await res.json()) as { conversation_id: string };
    const flat = query.replace(/\s+/g, ' ');
    const thread = await runCli(['conversations', 'list', '--thread', 'long-thread'], { LOCAL_DATA_DIR: dataDir });
    const row = thread.stdout.split('\n').find((line) => line.includes(id))!;
    expect(row).toMatch(new RegExp(`  ${flat.slice(0, 59).replaceAll('?', '\\?')}…$`));
    const show = await runCli(['conversations', 'show', id], { LOCAL_DATA_DIR: dataDir });
    const line = show.stdout.split('\n').find((l) => l.startsWith('  query '))!;
    expect(line).toBe(`  query      ${flat.slice(0, 159)}…`);
  });

  it("the README's curl, as written, gets the answer it shows", async () => {
    const readme = await readFile(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
    const block = /^```bash\n(curl -s -X POST http:\/\/127\.0\.0\.1:3000\/webhook[\s\S]*?)^```/m.exec(readme)![1]!;
    const run = await runCommand('bash', ['-e', '-c', block.replaceAll('http://127.0.0.1:3000', gateway.url)]);
    expect(JSON.parse(run.stdout)).toMatchObject({
      success: true,
      response: { sample: true },
      tracking: { webhook_type: 'deal_analysis', delivery_status: 'delivered' },
    });
  });

  // The README's block reads the 202's status_url with jq (Debian's; CI installs it: .ci/run).
  it.skipIf(!HAS_JQ && !process.env.CI)("the README's asynchronous example reads a running conversation", async () => {
    const readme = await readFile(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
    const block = /^```bash\n(status_url=[\s\S]*?)^```/m.exec(readme)![1]!;
    // Not spawnSync: the answer's 5 s must not hold this process's timers.
    const run = await runCommand('bash', ['-e', '-c', block.replaceAll('http://127.0.0.1:3000', gateway.url)]);
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toMatchObject({ success: true, status: 'running' });
  });

  // docs/operations.md "Processing performance" reads the handlers' log with jq: its field names are the log's.
  it.skipIf(!HAS_JQ && !process.env.CI)(
    "the Runbook's jq over the handlers' log counts each type's conversations",
    async () => {
      const runbook = await readFile(path.join(PROJECT_ROOT, 'docs', 'operations.md'), 'utf8');
      const command =
        /^(jq -s 'map\(select\(\.event_type == "WEBHOOK_CONVERSATION_COMPLETED"\)\)[\s\S]*?handlers\*\.jsonl)\s/m.exec(
          runbook,
        )![1]!;
      const run = await runCommand('bash', ['-e', '-c', command.replace('.data/', `${dataDir}/`)]);
      expect(run.stderr).toBe('');
      const rows = JSON.parse(run.stdout) as { type: string; count: number; avg_ms: number; max_ms: number }[];
      expect(rows.map((r) => r.type).sort()).toEqual(['data_analysis', 'deal_analysis', 'general', 'lead_analysis']);
      for (const row of rows) {
        expect(row.count, row.type).toBeGreaterThan(0);
        expect(row.avg_ms, row.type).toBeGreaterThan(0);
        expect(row.avg_ms, row.type).toBeLessThanOrEqual(row.max_ms);
      }
    },
  );

  it('Ctrl-C stops the gateway and its embedded S3', async () => {
    // 'close', not 'exit': the process's last output (the next test reads it) may still be on its way at 'exit'.
    const exited = new Promise<number | null>((r) => gateway.child.once('close', r));
    gateway.child.kill('SIGINT');
    expect(await exited).toBe(0);
    await expect(fetch(`${gateway.url}/health`)).rejects.toThrow();
  });

  it('never loads the X-Ray SDK: tracing is off locally, and its async hook would slow every promise', () => {
    // Reported by test/support/report-tracing-sdk.cjs when the process exited (the previous test stopped it).
    expect(gateway.output()).toContain('[tracing SDK not loaded]');
  });
});
