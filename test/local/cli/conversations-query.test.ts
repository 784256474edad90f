import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CONVERSATIONS_COLUMNS } from '../../../functions/domain/analytics-table.ts';
import { NAMED_QUERIES } from '../../../functions/domain/named-queries.ts';
import { runCli, runMain } from '../../support/cli.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * `webhook-gateway conversations query` on this machine: DuckDB over the exports of a running gateway, as a new user
 * runs it after sending a mix of questions (the classifier picks each type).
 */
let world: TestWorld;
let env: Record<string, string | undefined>;
const types: Record<string, number> = {};
const sent: { id: string; type: string; status: string }[] = [];

const QUESTIONS = [
  'What are the top 5 deals closing this quarter?',
  'Which deals in the pipeline slipped this month?',
  'How many new leads came in from the Acme webinar?',
  'Show the churn metrics report for last week',
  'Hello there',
];

beforeAll(async () => {
  world = await startWorld();
  // As a user's shell runs the CLI: LOCAL_DATA_DIR set, no S3 endpoint (the gateway set one in this process).
  env = { LOCAL_DATA_DIR: world.dataDir, AWS_ENDPOINT_URL_S3: undefined };
  for (const [i, query] of QUESTIONS.entries()) {
    if (i === 2) world.receiver.reply(400);
    const res = await world.post({ ...SEED_REQUEST, query, source_system: i < 3 ? 'crm' : 'scheduler' });
    expect(res.status).toBe(200);
    const type = res.body.tracking.webhook_type as string;
    types[type] = (types[type] ?? 0) + 1;
    sent.push({ id: res.body.conversation_id, type, status: res.body.tracking.delivery_status });
  }
  expect(Object.keys(types).sort()).toEqual(['data_analysis', 'deal_analysis', 'general', 'lead_analysis']);
});
afterAll(async () => {
  await world?.close();
});

const query = (args: string[]) => runMain(['conversations', 'query', ...args], env);

describe('conversations query (DuckDB over the local exports)', () => {
  it('counts the conversations per type, through the real command, as JSON', async () => {
    const result = await runCli(
      [
        'conversations',
        'query',
        'SELECT webhook_type, count(*) AS n FROM conversations GROUP BY 1 ORDER BY 1',
        '--json',
      ],
      env,
    );
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual(
      Object.entries(types)
        .sort()
        .map(([webhook_type, n]) => ({ webhook_type, n })),
    );
    expect(result.stderr).toMatch(
      /^4 row\(s\) · 5 exported conversation\(s\) in s3:\/\/test-conversations \(files under /,
    );
  });

  it('answers the three saved Logs Insights questions (docs/deploy.md#monitoring) with the named queries', async () => {
    const bySource = await query(['--named', 'conversations-by-source', '--param', 'source_system=crm', '--json']);
    expect(bySource.code, bySource.stderr).toBe(0);
    expect(JSON.parse(bySource.stdout).map((r: { conversation_id: string }) => r.conversation_id)).toEqual(
      sent
        .slice(0, 3)
        .map((s) => s.id)
        .reverse(),
    );

    const perf = JSON.parse((await query(['--named', 'processing-time-5m', '--json'])).stdout);
    expect(perf.reduce((n: number, r: { conversations: number }) => n + r.conversations, 0)).toBe(5);
    for (const bin of perf) {
      expect(bin.bin_5m).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d[05]:00Z$/);
      expect(bin.min_total_time_ms).toBeLessThanOrEqual(bin.avg_total_time_ms);
      expect(bin.avg_total_time_ms).toBeLessThanOrEqual(bin.max_total_time_ms);
    }

    const delivery = JSON.parse((await query(['--named', 'delivery-success', '--json'])).stdout);
    const expected: Record<string, number> = {};
    for (const s of sent) expected[`${s.status} ${s.type}`] = (expected[`${s.status} ${s.type}`] ?? 0) + 1;
    expect(
      Object.fromEntries(delivery.map((r: any) => [`${r.delivery_status} ${r.webhook_type}`, r.conversations])),
    ).toEqual(expected);
  });

  it('prints a table by default and CSV on request; long texts stay on one line in the table', async () => {
    const table = await query(['--named', 'search', '--param', 'text=ACME']);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^received_at\s+conversation_id\s+source_system.*\s+query\s+response$/);
    expect(lines).toHaveLength(3);
    expect(lines[2]).toContain(sent[2]!.id);
    expect(lines[2]!.length).toBeLessThan(400);

    const csv = await query(['SELECT conversation_id, query FROM conversations ORDER BY received_at LIMIT 2', '--csv']);
    // RFC 4180: CRLF ends every record, the last one too (no bare LF after it).
    expect(csv.stdout).toBe(
      ['conversation_id,query', `${sent[0]!.id},${QUESTIONS[0]}`, `${sent[1]!.id},${QUESTIONS[1]}`]
        .map((line) => `${line}\r\n`)
        .join(''),
    );
    const none = await query(['SELECT * FROM conversations WHERE 1 = 0']);
    expect(none.stdout).toBe('(no rows)\n');
  });

  it('without SQL describes the table and the named queries', async () => {
    const result = await query([]);
    expect(result.code).toBe(0);
    for (const c of CONVERSATIONS_COLUMNS)
      expect(result.stdout).toMatch(new RegExp(`^  ${c.name}\\s+${c.type}\\s`, 'm'));
    for (const q of NAMED_QUERIES) expect(result.stdout).toContain(`  ${q.id}`);
  });

  it('a mistake is one clear line and exit 1, never a stack trace, and the SQL cannot touch files', async () => {
    const cases: [string[], RegExp][] = [
      [['SELECT nope FROM conversations'], /^webhook-gateway: query failed: .*nope/],
      [["COPY conversations TO '/tmp/out.csv'"], /^webhook-gateway: conversations query only reads .*"COPY"/],
      [["SELECT * FROM read_csv('/etc/passwd')"], /^webhook-gateway: query failed: .*(disabled|Permission)/],
      [['--named', 'nope'], /^webhook-gateway: no named query "nope"; there are: conversations-by-source, /],
      [['--named', 'search'], /^webhook-gateway: search needs text/],
      [['--named', 'search', '--param', 'text'], /^webhook-gateway: --param takes name=value, got "text"/],
      [['--named', 'delivery-success', '--param', 'since=last week'], /^webhook-gateway: since must be an ISO 8601/],
      [['--named', 'delivery-success', 'SELECT 1'], /^webhook-gateway: give either SQL or --named/],
      [['SELECT 1', '--param', 'x=1'], /^webhook-gateway: --param goes with --named/],
      // Before: "the query has 1 parameter(s) (?) but 0 value(s) were given", with no way to give one.
      [
        ["SELECT count(*) FROM conversations WHERE source_system = ? AND query <> '?'"],
        /^webhook-gateway: query failed: the query has 1 \? placeholder\(s\), and only a named query gives them values \(--named NAME --param name=value\): write each value into the SQL instead, e\.g\. WHERE source_system = 'crm'$/m,
      ],
      [
        ['--named', 'delivery-success', '--param', 'since=2026-11-28', '--param', 'since=2026-11-29'],
        /^webhook-gateway: --param since is given twice \("2026-11-28" and "2026-11-29"\): give it once$/m,
      ],
      [['SELECT 1', '--json', '--csv'], /^webhook-gateway: --json and --csv: choose one/],
      // Before: the table's description on stdout and exit 0, which `query "$(cat missing.sql)" --csv > out.csv` kept.
      [[''], /^webhook-gateway: the SQL is empty \(an argument with nothing in it/],
      [['  \n', '--csv'], /^webhook-gateway: the SQL is empty/],
      [['--json'], /^webhook-gateway: --json needs SQL or --named NAME; conversations query alone lists the columns/],
      // Before: 'conversations query only reads (SELECT, …): "" is refused'.
      [['--', '-- only a comment\n/* and another */'], /^webhook-gateway: the SQL holds only comments: there is no/],
      [['SELECT 1', '--stack', 'X'], /^webhook-gateway: --stack, --region and --profile go with --aws/],
      [['DROP VIEW conversations'], /^webhook-gateway: conversations query only reads .*"DROP" is refused/],
      // A saved .sql file that starts with a comment (`conversations query "$(cat q.sql)"`) reads as an option.
      [
        ['-- types\nSELECT 1'],
        /^webhook-gateway: unknown option -- types\\nSELECT 1: .*; SQL that starts with "-" \(a -- comment\) goes after --: conversations query -- "<SQL>"$/m,
      ],
      // DuckDB's message quotes the value (here made in the SQL; a question or answer is the sender's text): its
      // escape sequences are written out, not sent to the terminal to clear or retitle it.
      [
        ["SELECT CAST(chr(27) || '[2J' || chr(27) || ']0;pwned' || chr(7) AS INTEGER)"],
        /^webhook-gateway: query failed: Conversion Error: Could not convert string '\\u001b\[2J\\u001b\]0;pwned\\u0007' to INT32/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await query(args);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr, args.join(' ')).toMatch(message);
      expect(result.stderr.trim().split('\n').at(-1)).toMatch(/^webhook-gateway: /);
      expect(result.stdout).toBe('');
    }
  });

  it('sees a redelivery: the re-exported row replaces the old one', async () => {
    const failed = sent[2]!;
    expect(failed.status).toBe('failed');
    expect((await world.gateway.redelivery.redrive(failed.id)).status).toBe('delivered');
    const rows = JSON.parse(
      (
        await query([
          `SELECT delivery_status, delivery_attempt_count FROM conversations WHERE conversation_id = '${failed.id}'`,
          '--json',
        ])
      ).stdout,
    );
    expect(rows).toEqual([{ delivery_status: 'delivered', delivery_attempt_count: 2 }]);
  });

  it('writes JSON and CSV a row at a time: a bucket of long answers is more text than one string holds', async () => {
    // The whole text of 9,000 answers of 60 KB (~550 M characters) was one string: "RangeError: Invalid string length".
    const sql = `SELECT i, repeat('x', 1000) || '"' AS s FROM range(300) r(i) ORDER BY i`;
    const { main } = await import('../../../local/cli/main.ts');
    const written = async (args: string[]) => {
      const chunks: string[] = [];
      const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: unknown) => {
        chunks.push(String(chunk));
        return true;
      }) as never);
      const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((() => true) as never);
      const before = { ...process.env };
      process.env.LOCAL_DATA_DIR = world.dataDir;
      delete process.env.AWS_ENDPOINT_URL_S3;
      try {
        expect(await main(['conversations', 'query', sql, ...args])).toBe(0);
      } finally {
        stdout.mockRestore();
        stderr.mockRestore();
        process.env = before;
      }
      expect(Math.max(...chunks.map((c) => c.length))).toBeLessThan(2_000);
      return chunks.join('');
    };
    const rows = Array.from({ length: 300 }, (_, i) => ({ i, s: `${'x'.repeat(1000)}"` }));
    expect(await written(['--json'])).toBe(`${JSON.stringify(rows, null, 2)}\n`);
    const csv = await written(['--csv']);
    expect(csv).toBe(`i,s\r\n${rows.map((r) => `${r.i},"${'x'.repeat(1000)}"""\r\n`).join('')}`);
  });

  it("names a skipped export's key as text: a key's escape sequences do not reach the terminal", async () => {
    // Any S3 client may write under conversation-history/ (a shared S3 with AWS_ENDPOINT_URL_S3, a script's PUT).
    const day = path.join(world.dataDir, 's3', world.gateway.bucket, 'conversation-history', '2025', '01', '03');
    await mkdir(path.join(day, 'webhook_\u001b]0;pwned\u0007'), { recursive: true });
    await writeFile(path.join(day, 'webhook_\u001b]0;pwned\u0007', 'analysis.json'), '{"format":"analy');
    try {
      const all = await query(['SELECT count(*) AS n FROM conversations', '--json']);
      expect(all.code, all.stderr).toBe(0);
      expect(all.stderr).toMatch(
        /e\.g\. conversation-history\/2025\/01\/03\/webhook_\\u001b\]0;pwned\\u0007\/analysis\.json: /,
      );
      expect([...all.stderr].filter((c) => c === '\u001b' || c === '\u0007')).toEqual([]);
    } finally {
      await rm(path.join(world.dataDir, 's3', world.gateway.bucket, 'conversation-history', '2025'), {
        recursive: true,
      });
    }
  });

  it('a named query lists and reads only the day folders from its since on, however many days the bucket holds', async () => {
    // An export of long ago that cannot be read: a listing of every day meets it (and says so), one from since does not.
    const old = path.join(
      world.dataDir,
      's3',
      world.gateway.bucket,
      'conversation-history',
      '2025',
      '01',
      '02',
      'webhook_old',
    );
    await mkdir(old, { recursive: true });
    await writeFile(path.join(old, 'analysis.json'), '{"format":"analy');
    try {
      const named = await query(['--named', 'delivery-success', '--param', 'since=2025-01-03', '--json']);
      expect(named.code, named.stderr).toBe(0);
      expect(JSON.parse(named.stdout).reduce((n: number, r: { conversations: number }) => n + r.conversations, 0)).toBe(
        5,
      );
      expect(named.stderr).not.toMatch(/skipped/);
      expect(named.stderr).toMatch(/^\d+ row\(s\) · the exports from 2025\/01\/03 on in s3:\/\/test-conversations /m);
      const all = await query(['SELECT count(*) AS n FROM conversations', '--json']);
      expect(JSON.parse(all.stdout)).toEqual([{ n: 5 }]);
      expect(all.stderr).toMatch(
        /^skipped 1 export\(s\) that are not analysis rows, e\.g\. conversation-history\/2025\/01\/02\/webhook_old/,
      );
    } finally {
      await rm(path.join(world.dataDir, 's3', world.gateway.bucket, 'conversation-history', '2025'), {
        recursive: true,
      });
    }
  });

  it('--csv neutralises a text cell a spreadsheet would run as a formula; numbers, dates and --json stay as they are', async () => {
    // A sender controls the question: before, `=HYPERLINK("http://x","y")` was written as is, and a spreadsheet opening
    // the file ran it (CSV injection).
    const questions = ['=HYPERLINK("http://x","y")', '-2+3', '@SUM(1)', '+1', 'Hello = world'];
    const ids: string[] = [];
    for (const q of questions) {
      const res = await world.post({ ...SEED_REQUEST, query: q, source_system: 'csv_check' });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      ids.push(res.body.conversation_id);
    }
    const sql = `SELECT query, -5 AS n, -1.5 AS x, DATE '2026-12-03' AS day, INTERVAL '-5 days' AS ago, '=1' AS "=header", chr(9) || 'tab' AS t, chr(13) || 'cr' AS r, chr(0) || '=1' AS z FROM conversations WHERE source_system = 'csv_check' ORDER BY received_at`;
    const csv = await runCli(['conversations', 'query', sql, '--csv'], env);
    expect(csv.code, csv.stderr).toBe(0);
    const lines = csv.stdout.split('\r\n');
    expect(lines[0]).toBe(`query,n,x,day,ago,"'=header",t,r,z`);
    const numbersAndDates = `,-5,-1.5,2026-12-03,-5 days,"'=1","'\ttab","'\rcr","'\u0000=1"`;
    expect(lines.slice(1)).toEqual([
      `"'=HYPERLINK(""http://x"",""y"")"${numbersAndDates}`,
      `"'-2+3"${numbersAndDates}`,
      `"'@SUM(1)"${numbersAndDates}`,
      `"'+1"${numbersAndDates}`,
      `Hello = world${numbersAndDates}`,
      '',
    ]);
    // --json keeps the sender's text as it is.
    const json = await runCli(['conversations', 'query', sql, '--json'], env);
    expect(JSON.parse(json.stdout).map((r: { query: string; n: number }) => [r.query, r.n])).toEqual(
      questions.map((q) => [q, -5]),
    );
  });
  it("--csv and --json on a terminal write a text's control characters out; to a file or a pipe, exactly", async () => {
    // A sender controls the question: an ESC or OSC sequence (recolour, retitle, set the clipboard), a C1 CSI, a
    // bidirectional override. The table wrote them out; --csv sent them to the terminal raw.
    const question = 'metrics \u001b[31mred\u001b[0m \u001b]0;pwned\u0007 \u009b2J \u202eevil\nnext line\tcell';
    const res = await world.post({ ...SEED_REQUEST, query: question, source_system: 'tty_check' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const sql = "SELECT query FROM conversations WHERE source_system = 'tty_check'";
    const onTerminal = async (args: string[]) => {
      const tty = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY');
      Object.defineProperty(process.stdout, 'isTTY', { value: true, configurable: true });
      try {
        return await query([sql, ...args]);
      } finally {
        if (tty) Object.defineProperty(process.stdout, 'isTTY', tty);
        else delete (process.stdout as { isTTY?: boolean }).isTTY;
      }
    };
    // biome-ignore lint/suspicious/noControlCharactersInRegex: what must not reach the terminal
    const raw = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
    const csv = await onTerminal(['--csv']);
    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stdout).not.toMatch(raw);
    expect(csv.stdout).toBe(
      'query\r\n"metrics \\u001b[31mred\\u001b[0m \\u001b]0;pwned\\u0007 \\u009b2J \\u202eevil\nnext line\tcell"\r\n',
    );
    const json = await onTerminal(['--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stdout).not.toMatch(raw);
    expect(JSON.parse(json.stdout)).toEqual([{ query: question }]);
    // Redirected, the CSV holds the sender's text byte for byte.
    const file = await query([sql, '--csv']);
    expect(file.stdout).toBe(`query\r\n"${question}"\r\n`);
  });
  it('--json gives a DECIMAL a double cannot hold digit for digit as its text, as a BIGINT past 2^53', async () => {
    // Before, 12345678901234567890.123 was printed as the number 12345678901234567000 in all three formats.
    const sql =
      'SELECT 12345678901234567890.123::DECIMAL(38,3) AS big, 1.10 AS small, 123456789012345.67::DECIMAL(18,2) AS edge, NULL::DECIMAL(10,2) AS none, 9007199254740993::BIGINT AS id';
    const json = await query([sql, '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual([
      { big: '12345678901234567890.123', small: 1.1, edge: 123456789012345.67, none: null, id: '9007199254740993' },
    ]);
    const csv = await query([sql, '--csv']);
    expect(csv.stdout).toBe(
      'big,small,edge,none,id\r\n12345678901234567890.123,1.1,123456789012345.67,,9007199254740993\r\n',
    );
  });
  it('--json gives NaN and the infinities as text, as Athena does, not null', async () => {
    // Before, JSON.stringify wrote NaN as null, which a query answers for a missing value.
    const sql = "SELECT 'nan'::DOUBLE AS n, 'inf'::DOUBLE AS i, '-inf'::DOUBLE AS m, NULL::DOUBLE AS z";
    const json = await query([sql, '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual([{ n: 'NaN', i: 'Infinity', m: '-Infinity', z: null }]);
    expect((await query([sql, '--csv'])).stdout).toBe('n,i,m,z\r\nNaN,Infinity,-Infinity,\r\n');
  });
});
