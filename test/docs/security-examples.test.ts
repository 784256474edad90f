import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../local/paths.ts';
import { runCommand } from '../support/children.ts';
import { startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * docs/security.md's examples, "Signed requests" then "Reading a status", run in bash as a reader pastes them: the
 * gateway started with the page's INBOUND_WEBHOOK_SECRETS, `npx webhook-gateway` as this checkout's command. Before,
 * the status read named a synchronous conversation's id, which has no status: 404 for whoever followed the page.
 * jq (the page reads the 202's id with it) is Debian's; CI installs it (.ci/run), and without it, and without CI set,
 * the test is skipped with a note.
 */
const HAS_JQ = (process.env.PATH ?? '').split(path.delimiter).some((d) => existsSync(path.join(d, 'jq')));
if (!HAS_JQ && !process.env.CI)
  console.warn('security-examples test SKIPPED: no `jq` command (apt-get install -y jq).');

const PAGE = readFileSync(path.join(PROJECT_ROOT, 'docs', 'security.md'), 'utf8');

/** The bash blocks of one `## ` section of the page. */
function bashBlocks(heading: string): string[] {
  const start = PAGE.indexOf(`\n## ${heading}\n`);
  expect(start, heading).toBeGreaterThan(0);
  const section = PAGE.slice(start, PAGE.indexOf('\n## ', start + 1));
  return [...section.matchAll(/^```bash\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
}

const [signed] = bashBlocks('Signed requests');
const [statusRead] = bashBlocks('Reading a status');
const START = /^INBOUND_WEBHOOK_SECRETS='([^']+)' npm start\n/;

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld({ INBOUND_WEBHOOK_SECRETS: START.exec(signed!)![1]! });
});
afterAll(async () => {
  await world?.close();
});

describe('docs/security.md, signed requests and a status read, as written', () => {
  it.skipIf(!HAS_JQ && !process.env.CI)(
    'refuses the unsigned POST, runs the signed one, reads the status',
    async () => {
      const script = [
        `curl() { command curl -w '\\n' "$@"; }`, // one answer per line
        signed!.replace(START, ''),
        statusRead!,
      ]
        .join('\n')
        .replaceAll('http://127.0.0.1:3000', world.gateway.url)
        .replaceAll(
          'npx webhook-gateway',
          `"${process.execPath}" "${path.join(PROJECT_ROOT, 'bin', 'webhook-gateway.mjs')}"`,
        );
      // Not spawnSync: the gateway answering curl runs in this process.
      const run = await runCommand('bash', ['-e', '-c', script]);
      expect(run.stderr).toBe('');
      const [unsigned, signedAnswer, status, ...rest] = run.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
      expect(rest).toEqual([]);
      expect(unsigned.error.code).toBe('INVALID_SIGNATURE');
      expect(signedAnswer).toMatchObject({ success: true, tracking: { delivery_status: 'delivered' } });
      expect(status).toMatchObject({ success: true, conversation_id: expect.stringMatching(/^webhook_/) });
      expect(['running', 'completed']).toContain(status.status);
    },
  );
});
