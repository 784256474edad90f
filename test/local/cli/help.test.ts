import { describe, expect, it } from 'vitest';
import { runMain } from '../../support/cli.ts';

/** `--help` after a command (or `help <command>`) prints that command's usage lines, and runs nothing. */
describe('help for one command', () => {
  it('<command> [sub] --help and -h print its usage lines, exit 0, and run nothing', async () => {
    const list = await runMain(['conversations', 'list', '--help']);
    expect(list).toMatchObject({ code: 0, stderr: '' });
    expect(list.stdout).toMatch(/^Usage:\n {2}conversations list \[--source S\]/);
    expect(list.stdout).toContain('conversations list|show|search|query … --aws');
    expect(list.stdout).not.toContain('deliveries');

    const redrive = await runMain(['deliveries', 'redrive', '--all', '-h']);
    expect(redrive).toMatchObject({ code: 0, stderr: '' });
    // --limit bounds what a --dry-run lists (docs/operations.md): before, the usage did not name it.
    expect(redrive.stdout).toContain('deliveries redrive --all [--since ISO] [--type T] [--dry-run [--limit N]]');
    expect(redrive.stdout).not.toMatch(/^ {2}deliveries list \[/m);

    const group = await runMain(['conversations', '--help']);
    expect(group.code).toBe(0);
    for (const sub of ['list', 'show', 'search', 'query']) expect(group.stdout).toContain(`  conversations ${sub}`);

    // --csv neutralises what a spreadsheet would run (CSV injection), and --json gives the raw text: before, --help said
    // neither, and a user opening the CSV could not know a cell starting with = had been changed.
    const queryHelp = await runMain(['conversations', 'query', '--help']);
    expect(queryHelp.stdout.replace(/\s+/g, ' ')).toContain(
      "--csv: a text cell that starts with = + - @, a tab, CR or NUL gets a leading ' so that a spreadsheet does not run it (numbers, dates as they are); --json: raw",
    );

    // A command with filters says what they take, every status named: before, `conversations list --help` showed
    // `[--status S]` alone, and the full usage "completed, failed, delivered, retrying, ...".
    for (const words of [
      ['conversations', 'list'],
      ['conversations', 'search'],
    ]) {
      const help = (await runMain([...words, '--help'])).stdout.replace(/\s+/g, ' ');
      expect(help, words.join(' ')).toContain('Filters take one value or a comma-separated list: --source system');
      expect(help).toContain(
        '--status completed, failed, interrupted, in_progress, timed_out, aborted, delivered, queued, retrying, pending, not_attempted',
      );
    }
    // Not where they would name filters the command does not take (deliveries list has no --source or --status).
    for (const words of [['sign'], ['deliveries', 'list']])
      expect((await runMain([...words, '--help'])).stdout, words.join(' ')).not.toContain('Filters');

    // Where the start's settings are: before, `start --help` named PORT alone.
    expect((await runMain(['start', '--help'])).stdout.replace(/\s+/g, ' ')).toContain(
      'LOCAL_S3_PORT 4569, HOST, LOCAL_DATA_DIR and every other variable: docs/configuration.md',
    );

    const helpEndpoints = await runMain(['help', 'endpoints']);
    expect(helpEndpoints.code).toBe(0);
    expect(helpEndpoints.stdout).toContain('  endpoints pause <type> [--json] | resume <type> [--json]');

    // A subcommand that is not the line's first (pause <type> | resume <type>) gets its line, not every endpoints line.
    const resume = await runMain(['endpoints', 'resume', '--help']);
    expect(resume.stdout).toMatch(/^Usage:\n {2}endpoints pause <type> \[--json\] \| resume <type> \[--json\]/);
    expect(resume.stdout).not.toMatch(/^ {2}endpoints (list \[|set <)/m);

    // Each endpoints command says how to run it on a deployed stack, as the conversations and deliveries ones do, and
    // that it takes --json (each prints the receivers, or the one changed, as JSON with it, locally and with --aws).
    for (const sub of ['list', 'set', 'pause', 'resume', 'test']) {
      const help = await runMain(['endpoints', sub, '--help']);
      expect(help.stdout.split('\n')[1], sub).toContain('[--json]');
      expect(help.stdout, sub).toContain(
        'endpoints list|set|pause|resume|test … --aws [--stack NAME] [--region R] [--profile P]',
      );
    }
  });

  // Before, each printed the whole usage on stdout and exited 0, as if the command existed.
  it.each([[['help', 'bogus']], [['bogus', '--help']], [['bogus', 'list', '-h']]])(
    '%j: an unknown command, said on stderr with the usage, exit 2 (as "bogus" alone)',
    async (args) => {
      const result = await runMain(args);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^webhook-gateway: unknown command "bogus"\n\nUsage: webhook-gateway <command>\n/);
    },
  );

  it('a command group without a known subcommand names its subcommands and shows only their lines', async () => {
    const bare = await runMain(['conversations']);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toMatch(/^webhook-gateway: conversations takes list, show, search or query\n\nUsage:\n/);
    expect(bare.stderr).not.toContain('unknown command');
    expect(bare.stderr).not.toContain('deliveries list');

    const typo = await runMain(['deliveries', 'lsit']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/^webhook-gateway: deliveries takes list, redrive or resend; got "lsit"\n/);
    expect(typo.stderr).toContain('  deliveries redrive <conversation_id>');
    expect(typo.stderr).not.toContain('conversations list');

    // endpoints as the other groups (before: exit 1, and a usage of its own without the --aws line).
    for (const args of [['endpoints'], ['endpoints', 'pasue', 'deal_analysis']]) {
      const endpoints = await runMain(args);
      expect(endpoints.code).toBe(2);
      expect(endpoints.stderr).toMatch(
        /^webhook-gateway: endpoints takes list, set, pause, resume or test(; got "pasue")?\n\nUsage:\n/,
      );
      expect(endpoints.stderr).toContain('  endpoints list|set|pause|resume|test … --aws');
      expect(endpoints.stderr).not.toContain('deliveries list');
    }

    const unknown = await runMain(['frobnicate']);
    expect(unknown).toMatchObject({ code: 2 });
    expect(unknown.stderr).toMatch(/^webhook-gateway: unknown command "frobnicate"/);
  });

  it('a flag given twice is refused, not read as its last value alone; --param may repeat', async () => {
    const type = await runMain(['conversations', 'list', '--type', 'deal_analysis', '--type', 'general']);
    expect(type).toMatchObject({ code: 1, stdout: '' });
    expect(type.stderr).toBe(
      'webhook-gateway: --type is given twice: give it once (for several, one comma-separated list: --type a,b)\n',
    );
    const since = await runMain([
      'deliveries',
      'redrive',
      '--all',
      '--since=2026-11-28',
      '--since',
      '2026-11-29',
      '--dry-run',
    ]);
    expect(since.stderr).toBe('webhook-gateway: --since is given twice: give it once\n');
    // After --, words are arguments: searching for "--type --type" is not a repeated flag.
    const sign = await runMain(['sign', '--secret', 'whsec_x', '--', '--id', '--id']);
    expect(sign.stderr).not.toContain('given twice');
  });

  it('a mistyped flag is named with the options its command takes, not read as text to put after --', async () => {
    const list = await runMain(['conversations', 'list', '--statu', 'failed']);
    expect(list).toMatchObject({ code: 1, stdout: '' });
    expect(list.stderr).toBe(
      'webhook-gateway: unknown option --statu: this command takes --source, --type, --status, --since, --until, --id, ' +
        '--thread, --key, --limit, --json, --aws, --stack, --region, --profile\n',
    );
    const sign = await runMain(['sign', '--secret', 'whsec_x', '--datta', '{}']);
    expect(sign.stderr).toBe(
      'webhook-gateway: unknown option --datta: this command takes --secret, --data, --file, --status, --id, --json\n',
    );
    // The one command that takes text keeps the way to search for a text that starts with "-".
    const search = await runMain(['conversations', 'search', '-x']);
    expect(search.stderr).toMatch(/^webhook-gateway: unknown option -x: this command takes --source, .*--profile; /);
    expect(search.stderr).toMatch(/ text that starts with "-" goes after --: conversations search -- -x\n$/);
  });

  it('a --help after -- is an argument, not a request for help', async () => {
    const sign = await runMain(['sign', '--secret', 'whsec_x', '--', '--help']);
    expect(sign.stdout).not.toMatch(/^Usage:/);
  });
});
