import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../local/paths.ts';
import { runCommand } from '../support/children.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * docs/operations.md, "Read the exports": its AWS CLI block run in bash as written, in a shell with no AWS settings,
 * against two conversations' exports (the page's bucket, port, day and id put in for this gateway's). Before, the
 * credentials it needs were named only after the block: its first command stopped at "Unable to locate credentials".
 * It needs Debian's awscli and jq; CI installs both (.ci/run), and without them, and without CI set, it is skipped.
 */
const has = (command: string) =>
  (process.env.PATH ?? '').split(path.delimiter).some((d) => existsSync(path.join(d, command)));
const skip = !(has('aws') && has('jq')) && !process.env.CI;
if (skip) console.warn('exports-aws-cli test SKIPPED: no `aws` or `jq` (apt-get install -y awscli jq).');

const SECTION = (() => {
  const page = readFileSync(path.join(PROJECT_ROOT, 'docs', 'operations.md'), 'utf8');
  const start = page.indexOf('\n## Read the exports\n');
  return page.slice(start, page.indexOf('\n## ', start + 1));
})();
const BLOCK = /^```bash\n([\s\S]*?)^```/m.exec(SECTION)![1]!;
/** The credentials line the prose gives before the block. */
const CREDENTIALS = /`(export AWS_ACCESS_KEY_ID=\S+ AWS_SECRET_ACCESS_KEY=\S+)`/.exec(
  SECTION.slice(0, SECTION.indexOf(BLOCK)),
);

let world: TestWorld;
let home: string;
beforeAll(async () => {
  world = await startWorld();
  home = await mkdtemp(path.join(tmpdir(), 'exports-aws-cli-'));
});
afterAll(async () => {
  await world?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

/** The block in bash, in `home`, with nothing of AWS in its environment but what the script sets. */
function runBlock(script: string, id: string) {
  const day = folderOf(id).split('/').slice(1, 4).join('/');
  const filled = script
    .replaceAll('http://127.0.0.1:4569', world.gateway.s3Endpoint)
    .replaceAll('revops-conversations', world.gateway.bucket)
    .replaceAll('2026/11/29', day)
    .replaceAll('<conversation_id>', id);
  return runCommand('bash', ['-e', '-o', 'pipefail', '-c', filled], {
    cwd: home,
    env: { PATH: process.env.PATH, HOME: home, AWS_EC2_METADATA_DISABLED: 'true', AWS_PAGER: '' },
  });
}

describe('docs/operations.md reads the exports with the AWS CLI as written', () => {
  it.skipIf(skip)(
    'lists them, reads one, downloads the day and counts its types, credentials given first',
    async () => {
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) ids.push((await world.post(SEED_REQUEST)).body.conversation_id);
      expect(CREDENTIALS, 'the credentials line, before the block').not.toBeNull();

      const without = await runBlock(BLOCK, ids[0]!);
      expect(without.code).not.toBe(0);
      expect(without.stderr).toContain('Unable to locate credentials');

      const run = await runBlock(`${CREDENTIALS![1]}\n${BLOCK}`, ids[0]!);
      expect(run.stderr).toBe('');
      for (const id of ids)
        for (const file of ['conversation.json', 'metadata.json', 'summary.json', 'analysis.json'])
          expect(run.stdout).toContain(`${folderOf(id)}${file}`);
      expect(run.stdout).toContain('\n"deal_analysis"\n');
      expect(run.stdout).toMatch(/^\s+2 deal_analysis\n$/m);
    },
  );
});
