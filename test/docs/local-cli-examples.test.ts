import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../local/paths.ts';
import { runMain } from '../support/cli.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * Every local `npx webhook-gateway …` line of the README's and docs/' shell blocks runs as written, in the order a
 * reader meets them, against a running gateway with a delivered conversation (its source's key msg_2Zq8), a thread and a dead delivery: exit 0,
 * no error line. The `--aws` lines are test/local/cli/aws/documented-examples.test.ts's.
 */
const DOCS = ['README.md', 'docs/operations.md', 'docs/configuration.md', 'docs/security.md', 'docs/contract.md'];

function localExamples(): string[] {
  return DOCS.flatMap((doc) =>
    [...readFileSync(path.join(PROJECT_ROOT, doc), 'utf8').matchAll(/```bash\n([\s\S]*?)```/g)]
      .flatMap((m) => m[1]!.split('\n'))
      .map((line) => line.trim())
      .filter((line) => line.startsWith('npx webhook-gateway ') && !/--aws\b/.test(line))
      // `sign` is run by test/docs/security-examples.test.ts, with the request it signs.
      .filter((line) => !line.startsWith('npx webhook-gateway sign ')),
  );
}

let world: TestWorld;
const ids = { delivered: '', dead: '' };
beforeAll(async () => {
  world = await startWorld();
  // The source's key the docs look conversations up by (`conversations list | show --key`).
  ids.delivered = (await world.post(SEED_REQUEST, { 'Idempotency-Key': 'msg_2Zq8' })).body.conversation_id;
  await world.post({ ...SEED_REQUEST, thread_id: 'q3-review' });
  world.receiver.reply(400); // a permanent answer: the delivery is dead, owed until redriven
  ids.dead = (await world.post(SEED_REQUEST)).body.conversation_id;
});
afterAll(async () => {
  await world?.close();
});

/** A documented line as a shell passes it, its placeholders filled in; the receiver's URL kept on this machine. */
function argv(line: string): string[] {
  const owed = /^npx webhook-gateway deliveries redrive <conversation_id>/.test(line);
  const command = line
    .replace(/\s+#.*$/, '')
    .replace(/ [|>] .*$/, '') // a pipe into jq, a redirection into a file: the command's own output is checked
    .replace(/^npx webhook-gateway /, '')
    .replace(/<conversation_id>|<id>|\bX\b/g, owed ? ids.dead : ids.delivered)
    .replace('<webhook-id>', 'msg_2Zq8')
    .replace('"SELECT …"', '"SELECT conversation_id FROM conversations"')
    // A file of SQL that starts with a comment, as `$(cat query.sql)` passes it.
    .replace(
      '"$(cat query.sql)"',
      '"-- conversations per status\nSELECT status, count(*) AS n FROM conversations GROUP BY status"',
    )
    .replace('whsec_…', 'whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=')
    .replace('https://crm.example.com/hooks/deal', world.receiver.urlFor('deal_analysis'));
  return [...command.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

describe('the docs’ local CLI examples run as written', () => {
  it('each line exits 0 without an error line', async () => {
    const lines = localExamples();
    expect(lines.length).toBeGreaterThan(30);
    const failed: string[] = [];
    for (const line of lines) {
      const result = await runMain(argv(line), { LOCAL_DATA_DIR: world.dataDir });
      if (result.code !== 0 || /^webhook-gateway: /m.test(result.stderr)) failed.push(`${line}\n  ${result.stderr}`);
    }
    expect(failed).toEqual([]);
  });
});
