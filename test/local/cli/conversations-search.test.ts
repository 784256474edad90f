import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordOf } from '../../../local/history/conversations.ts';
import type { CliResult } from '../../support/children.ts';
import { runCli, runMain } from '../../support/cli.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * `conversations list` filters and `conversations search` over the exported records against a running gateway (its
 * embedded S3), then with the gateway stopped (a temporary embedded S3 over the same files). The output formats,
 * errors run through the real bin (runCli); the many filter combinations call the same `main` in
 * process, which is much faster than a process each.
 */
let world: TestWorld;
let env: Record<string, string | undefined>;
const ids: Record<'deal' | 'data' | 'lead' | 'general', string> = { deal: '', data: '', lead: '', general: '' };
let secondReceivedAt = '';

async function send(
  body: Record<string, unknown>,
): Promise<{ conversation_id: string; tracking: { delivery_status: string } }> {
  const res = await world.post({ ...SEED_REQUEST, timestamp: undefined, ...body });
  expect(res.status).toBe(200);
  return res.body;
}

beforeAll(async () => {
  world = await startWorld();
  env = { LOCAL_DATA_DIR: world.dataDir };
  ids.deal = (
    await send({
      query: 'Which deals close this quarter?',
      source_system: 'crm_system',
      source_process: 'nightly_sync',
      webhook_type: 'deal_analysis',
    })
  ).conversation_id;
  const data = await send({
    query: 'Show the CHURN metrics report',
    source_system: 'scheduler',
    source_process: 'weekly_report',
    webhook_type: 'data_analysis',
  });
  ids.data = data.conversation_id;
  secondReceivedAt = recordOf((await world.gateway.executions.executions(ids.data))[0]!)!.metadata.received_at;
  world.receiver.reply(400);
  const lead = await send({
    query: 'How many new leads came in from the Acme webinar?',
    source_system: 'crm_system',
    source_process: 'lead_import',
    webhook_type: 'lead_analysis',
  });
  expect(lead.tracking.delivery_status).toBe('failed');
  ids.lead = lead.conversation_id;
  ids.general = (
    await send({ query: 'Hello there', source_system: 'chat_bot', source_process: 'greeting', webhook_type: 'general' })
  ).conversation_id;
});
afterAll(async () => {
  await world?.close();
});

/** `main(args)` in this process, with LOCAL_DATA_DIR set and its stdout/stderr captured. */
const inProcess = (args: string[]) => runMain(args, { LOCAL_DATA_DIR: env.LOCAL_DATA_DIR });

const json = async (args: string[]) => {
  const result = await inProcess(args);
  expect(result.stderr).not.toMatch(/^\s+at /m);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as {
    conversation_id: string;
    matched_in?: string[];
    snippet?: string;
    delivery_status: string;
  }[];
};
const idsOf = (rows: { conversation_id: string }[]) => rows.map((r) => r.conversation_id);

describe('conversations list filters', () => {
  it('filters by source (system or system/process), type, status and since, newest first', async () => {
    const cases: [string[], string[]][] = [
      [[], [ids.general, ids.lead, ids.data, ids.deal]],
      [
        ['--source', 'CRM_SYSTEM'],
        [ids.lead, ids.deal],
      ],
      [['--source', 'crm_system/nightly_sync'], [ids.deal]],
      [
        ['--type', 'data_analysis,general'],
        [ids.general, ids.data],
      ],
      [['--status', 'failed'], [ids.lead]],
      [
        ['--since', secondReceivedAt],
        [ids.general, ids.lead, ids.data],
      ],
      [
        ['--limit', '2'],
        [ids.general, ids.lead],
      ],
      // The console's list and its JSON take the same (docs/operations.md): received before --until, an id or its part.
      [['--until', secondReceivedAt], [ids.deal]],
      [['--since', secondReceivedAt, '--until', '2999-01-01', '--type', 'DATA_ANALYSIS'], [ids.data]],
      [['--id', ids.lead.slice(-10).toUpperCase()], [ids.lead]],
    ];
    for (const [flags, expected] of cases) {
      expect(idsOf(await json(['conversations', 'list', ...flags, '--json'])), flags.join(' ')).toEqual(expected);
      // search with no text but these filters finds the same, from the exports.
      if (!flags.includes('--limit') && flags.some((f) => f === '--until' || f === '--id'))
        expect(idsOf(await json(['conversations', 'search', ids.deal.slice(0, 8), ...flags, '--json']))).toEqual(
          expected,
        );
    }
  });

  it('refuses a bad --until or --id, as the console does', async () => {
    for (const [flags, message] of [
      [['--until', 'tomorrow'], /--until must be an ISO 8601 date or date-time with a zone/],
      [['--since', '2026-12-03', '--until', '2026-12-02'], /--until must be later than --since/],
      [['--id', 'a b'], /--id takes a conversation id or a part of one/],
    ] as const) {
      const result = await inProcess(['conversations', 'list', ...flags]);
      expect(result.code, flags.join(' ')).toBe(1);
      expect(result.stderr).toMatch(message);
    }
  });

  it('prints a table, says when filters leave nothing, and how many are hidden by --limit', async () => {
    const table = await runMain(['conversations', 'list', '--source', 'crm_system', '--limit', '1'], env);
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^conversation_id\s+received_at\s+source\s+type\s+status\s+delivery\s+total_ms$/);
    expect(lines[2]).toMatch(
      new RegExp(`^${ids.lead}\\s+\\S+\\s+crm_system/lead_import\\s+lead_analysis\\s+completed\\s+failed\\s+\\d+$`),
    );
    // The summary index knows each older conversation's fields: how many match, not "may match".
    expect(lines.at(-1)).toBe('(1 older not shown; use --limit)');
    const completed = await runMain(['conversations', 'list', '--status', 'completed', '--limit', '1'], env);
    expect(completed.stdout.trim().split('\n').at(-1)).toBe('(3 older not shown; use --limit)');
    // None older matches: nothing is said.
    const general = await inProcess(['conversations', 'list', '--type', 'general', '--limit', '1']);
    expect(general.stdout.trim().split('\n')).toHaveLength(3);
    expect(general.stdout).toContain(ids.general);
    const all = await runMain(['conversations', 'list', '--limit', '1'], env);
    expect(all.stdout.trim().split('\n').at(-1)).toBe('(3 older not shown; use --limit)');
    const none = await inProcess(['conversations', 'list', '--type', 'none']);
    expect(none.stdout).toMatch(/^No conversations match these filters/);
  });

  it('stops reading at the newest matches: an older history is only read when it could be listed', async () => {
    // A conversation of 2020 whose history is cut short: reading it would say so on stderr.
    const old = path.join(world.dataDir, 'executions', 'webhook_20200101_000000_crm_old_aaaaaaaaaa');
    await mkdir(old, { recursive: true });
    await writeFile(path.join(old, '20200101T000000000Z_x.json'), '{"execution_name":');
    try {
      const newest = await inProcess(['conversations', 'list', '--limit', '2']);
      expect(newest.stderr).toBe('');
      expect(newest.stdout.trim().split('\n').at(-1)).toBe('(3 older not shown; use --limit)');
      // (A filter the ids cannot answer: --source reads no conversation of another source at all.)
      const filtered = await inProcess(['conversations', 'list', '--type', 'general', '--limit', '1']);
      expect(filtered.stderr).toBe('');
      expect(filtered.stdout).toContain(ids.general);
      expect(filtered.stdout.trim().split('\n').at(-1)).toMatch(/\d older not read, which may match; use --limit\)$/);
      // Everything is read when the limit asks for it, the cut-short history with it.
      const all = await inProcess(['conversations', 'list', '--limit', '10']);
      expect(all.stderr).toMatch(/webhook_20200101_000000_crm_old_aaaaaaaaaa.*left out/);
      expect(all.stdout.trim().split('\n')).toHaveLength(2 + 4);
    } finally {
      await rm(old, { recursive: true, force: true });
    }
  });

  it('bad flags get one clear line and exit 1, never a stack trace', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['list', '--type', 'deals'],
        /^webhook-gateway: --type takes deal_analysis, data_analysis, lead_analysis, general, none .*got "deals"\n$/,
      ],
      [
        ['search', 'x', '--since', '2025-08-13T10:00:00'],
        /^webhook-gateway: --since must be an ISO 8601 date or date-time with a zone.*got "2025-08-13T10:00:00"\n$/,
      ],
      // Before: node:util's "Option '--limit <value>' argument missing", and for "-1" three lines suggesting --limit=-XYZ.
      [['list', '--limit'], /^webhook-gateway: --limit needs a value: --limit N\n$/],
      [['list', '--source', '--json'], /^webhook-gateway: --source needs a value: --source S\n$/],
      [
        ['list', '--limit', '-1'],
        /^webhook-gateway: --limit needs a value: --limit N \("-1" reads as an option; if it is the value, write --limit=-1\)\n$/,
      ],
      [['list', '--json=yes'], /^webhook-gateway: --json takes no value\n$/],
      [['search', 'x', '--sauce', 'y'], /^webhook-gateway: unknown option --sauce: this command takes --source, /],
      [['list', 'crm'], /^webhook-gateway: conversations list takes no arguments.*conversations search/],
      [['search'], /^webhook-gateway: conversations search needs the text to look for/],
    ];
    // All of them through main; two also through the real bin (the process's exit code and stderr).
    const checked: [CliResult, [string[], RegExp]][] = [];
    for (const c of cases) checked.push([await inProcess(['conversations', ...c[0]]), c]);
    const viaBin = [cases[0]!, cases[6]!];
    const results = await Promise.all(viaBin.map(([args]) => runCli(['conversations', ...args], env)));
    for (const [i, r] of results.entries()) checked.push([r, viaBin[i]!]);
    for (const [result, [args, message]] of checked) {
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(1);
      expect(result.stderr, args.join(' ')).toMatch(message);
      expect(result.stderr.split('\n')).toHaveLength(2);
      expect(result.stdout).toBe('');
    }
  });
});

describe('conversations search (exported records, through S3)', () => {
  it('matches the query, the answer, the id and the source, case-insensitively, with the filters', async () => {
    const suffix = ids.lead.split('_').at(-1)!;
    const churn = await json(['conversations', 'search', 'churn', '--json']);
    const answers = await json(['conversations', 'search', 'ANSWER TO', '--json']);
    const source = await json(['conversations', 'search', 'nightly_SYNC', '--json']);
    const byId = await json(['conversations', 'search', suffix.toUpperCase(), '--json']);
    const crmLeads = await json(['conversations', 'search', 'crm', '--type', 'lead_analysis', '--json']);
    const failed = await json(['conversations', 'search', 'answer', '--status', 'failed', '--json']);
    const since = await json([
      'conversations',
      'search',
      'answer',
      '--source',
      'crm_system',
      '--since',
      secondReceivedAt,
      '--json',
    ]);
    expect(idsOf(churn)).toEqual([ids.data]);
    expect(churn[0]).toMatchObject({
      matched_in: ['query', 'answer'],
      webhook_type: 'data_analysis',
      source_system: 'scheduler',
      status: 'completed',
    });
    expect(churn[0]!.snippet).toContain('Show the CHURN metrics report');
    // Every answer of the test agent starts "Answer to:": all four, newest first.
    expect(idsOf(answers)).toEqual([ids.general, ids.lead, ids.data, ids.deal]);
    expect(source).toEqual([expect.objectContaining({ conversation_id: ids.deal, matched_in: ['source'] })]);
    expect(byId).toEqual([expect.objectContaining({ conversation_id: ids.lead, matched_in: ['conversation_id'] })]);
    expect(idsOf(crmLeads)).toEqual([ids.lead]);
    expect(idsOf(failed)).toEqual([ids.lead]);
    expect(idsOf(since)).toEqual([ids.lead]);
  });

  it('with --since, lists and reads only the day folders from it on, however many days the bucket holds', async () => {
    // An export of long ago that cannot be read: a search of every day meets it (and says so), one from --since does not.
    const days = path.join(world.dataDir, 's3', 'test-conversations', 'conversation-history', '2025');
    await mkdir(path.join(days, '01', '02', 'webhook_old'), { recursive: true });
    await writeFile(path.join(days, '01', '02', 'webhook_old', 'analysis.json'), '{"format":"analy');
    try {
      const local = { ...env, AWS_ENDPOINT_URL_S3: undefined };
      const recent = await runMain(['conversations', 'search', 'acme', '--since', '2025-01-03', '--json'], local);
      expect(recent.code, recent.stderr).toBe(0);
      expect(idsOf(JSON.parse(recent.stdout))).toEqual([ids.lead]);
      expect(recent.stderr).toMatch(
        /^1 exported conversations match "acme" in s3:\/\/test-conversations \(files under .*\), the exports from 2025\/01\/03 on\n$/,
      );
      const every = await runMain(['conversations', 'search', 'acme', '--json'], local);
      expect(idsOf(JSON.parse(every.stdout))).toEqual([ids.lead]);
      expect(every.stderr).toMatch(
        /^skipped 1 export\(s\) that are not analysis rows, e\.g\. conversation-history\/2025\/01\/02\/webhook_old/,
      );
    } finally {
      await rm(days, { recursive: true });
    }
  });

  it("prints a readable table from the embedded store's files, or through any S3 endpoint (AWS_ENDPOINT_URL_S3)", async () => {
    const bucketDir = path.join(world.dataDir, 's3', 'test-conversations');
    const result = await runMain(['conversations', 'search', 'acme'], { ...env, AWS_ENDPOINT_URL_S3: undefined });
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(
      /^conversation_id\s+received_at\s+source\s+type\s+status\s+delivery\s+matched_in\s+snippet$/,
    );
    expect(lines[2]).toMatch(
      new RegExp(
        `^${ids.lead}\\s.*crm_system/lead_import\\s+lead_analysis\\s+completed\\s+failed\\s+query,answer\\s+.*Acme webinar`,
      ),
    );
    expect(lines).toHaveLength(3);
    expect(result.stderr).toBe(
      `1 of 4 exported conversations match "acme" in s3://test-conversations (files under ${bucketDir})\n`,
    );
    const viaS3 = await runMain(['conversations', 'search', 'acme', '--json'], {
      ...env,
      AWS_ENDPOINT_URL_S3: world.gateway.s3Endpoint,
    });
    expect(idsOf(JSON.parse(viaS3.stdout))).toEqual([ids.lead]);
    expect(viaS3.stderr).toBe(
      `1 of 4 exported conversations match "acme" in s3://test-conversations at ${world.gateway.s3Endpoint}\n`,
    );
    const none = await inProcess(['conversations', 'search', 'zebra']);
    expect(none.stdout).toBe('No exported conversation matches "zebra".\n');
  });

  it('with the gateway stopped, reads the same files (exports only, no history needed)', async () => {
    await world.gateway.close();
    await rm(path.join(world.dataDir, 'executions'), { recursive: true, force: true });
    // As a user's shell runs it: no AWS_ENDPOINT_URL_S3 (the gateway set one in this process).
    const result = await runMain(['conversations', 'search', 'leads', '--json'], {
      ...env,
      AWS_ENDPOINT_URL_S3: undefined,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(idsOf(JSON.parse(result.stdout))).toEqual([ids.lead]);
    expect(result.stderr).toMatch(
      /^1 of 4 exported conversations match "leads" in s3:\/\/test-conversations \(files under /,
    );
    // A data directory without exports: nothing to read, and no S3 started or bucket created.
    const nothing = path.join(world.dataDir, 'nothing-here');
    const empty = await runMain(['conversations', 'search', 'leads'], {
      ...env,
      AWS_ENDPOINT_URL_S3: undefined,
      LOCAL_DATA_DIR: nothing,
    });
    expect(empty.code).toBe(0);
    expect(empty.stdout).toBe('No exported conversation matches "leads".\n');
    expect(empty.stderr).toMatch(/^0 of 0 exported conversations match "leads"/);
  });
});
