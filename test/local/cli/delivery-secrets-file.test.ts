import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NEW_USER_START_ENV, runCli, startCli } from '../../support/cli.ts';

/**
 * DELIVERY_SIGNING_SECRETS_FILE set by the user (docs/configuration.md): the running gateway signs with that file, its
 * start banner names it, `endpoints set --secret` run from another shell rotates it, and nothing is made in the data
 * folder. Each gateway is a child process: its environment is its own.
 */
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const NEXT = 'whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ==';
let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-secrets-file-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('DELIVERY_SIGNING_SECRETS_FILE', () => {
  it('is the file the gateway signs with, names in its banner and rotates with endpoints set --secret', async () => {
    const dataDir = path.join(root, 'data');
    const file = path.join(root, 'mine.json');
    await writeFile(file, JSON.stringify({ deal_analysis: SECRET, general: SECRET }), { mode: 0o644 });
    const gateway = await startCli({
      ...NEW_USER_START_ENV,
      LOCAL_DATA_DIR: dataDir,
      DELIVERY_SIGNING_SECRETS_FILE: file,
    });
    try {
      // Before, the line did not say that the two types without a secret are delivered unsigned.
      expect(gateway.output()).toMatch(
        new RegExp(
          `signing deliveries with the secrets in \\S*${path.basename(file)} \\(none for data_analysis, lead_analysis: delivered unsigned\\)`,
        ),
      );
      // Said on stderr before the banner (stdout): the two pipes are read in no set order, so it may come after.
      await expect
        .poll(() => gateway.output())
        .toContain(`${file} was readable by others (mode 0644); it is now 0600 (owner only)`);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect(await readdir(dataDir)).not.toContain('delivery-signing-secrets.json');

      // Another shell, without the variable: the running gateway's file is the one rotated.
      const rotated = await runCli(['endpoints', 'set', 'deal_analysis', '--secret', NEXT], {
        LOCAL_DATA_DIR: dataDir,
        DELIVERY_SIGNING_SECRETS_FILE: undefined,
      });
      expect(rotated.code, rotated.stderr).toBe(0);
      expect(rotated.stdout).toContain(`deal_analysis deliveries are signed with two secrets`);
      expect(JSON.parse(await readFile(file, 'utf8')).deal_analysis).toEqual([NEXT, SECRET]);
      expect(await readdir(dataDir)).not.toContain('delivery-signing-secrets.json');

      // A delivery carries both signatures: the gateway's Deliver read the rotated file.
      const sent = await fetch(`${gateway.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: 'top deals this quarter?', source_system: 'crm', source_process: 'sync' }),
      });
      expect(sent.status).toBe(200);
      const received = (await (await fetch(`${gateway.url}/local/receiver/deal_analysis`)).json()) as {
        headers: Record<string, string>;
      }[];
      expect(received.at(-1)?.headers['webhook-signature']?.split(' ')).toHaveLength(2);
    } finally {
      const exited = new Promise((r) => gateway.child.once('exit', r));
      gateway.child.kill('SIGINT');
      await exited;
    }
  });

  it('a file that does not exist, or set beside DELIVERY_SIGNING_SECRETS, stops the start with one line', async () => {
    const missing = path.join(root, 'typo.json');
    const result = await runCli(['start'], {
      ...NEW_USER_START_ENV,
      LOCAL_DATA_DIR: path.join(root, 'data-missing'),
      DELIVERY_SIGNING_SECRETS_FILE: missing,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(`^webhook-gateway: .*DELIVERY_SIGNING_SECRETS_FILE: ${missing} does not exist`),
    );
    const both = await runCli(['start'], {
      ...NEW_USER_START_ENV,
      LOCAL_DATA_DIR: path.join(root, 'data-both'),
      DELIVERY_SIGNING_SECRETS_FILE: missing,
      DELIVERY_SIGNING_SECRETS: JSON.stringify({ general: SECRET }),
    });
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('DELIVERY_SIGNING_SECRETS_FILE and DELIVERY_SIGNING_SECRETS are both set');
  });

  it('endpoints set --url … --secret whose secrets cannot be changed says the URL change was made', async () => {
    const dataDir = path.join(root, 'data-half');
    const file = path.join(root, 'a-folder.json'); // the secrets file named is a folder: it cannot be read
    await mkdir(file);
    const result = await runCli(
      ['endpoints', 'set', 'general', '--url', 'https://crm.example.com/hooks/general', '--secret', NEXT],
      { ...NEW_USER_START_ENV, LOCAL_DATA_DIR: dataDir, DELIVERY_SIGNING_SECRETS_FILE: file },
    );
    expect(result.code).toBe(1);
    // Before: 'webhook-gateway: Error: EISDIR: …' alone, as if nothing had been done, though the URL was changed.
    expect(result.stderr).toMatch(
      /^webhook-gateway: general: the change was made \(URL https:\/\/crm\.example\.com\/…\), but its signing secrets were not changed: EISDIR/,
    );
    const stored = JSON.parse(await readFile(path.join(dataDir, 'deliveries', 'endpoints', 'general.json'), 'utf8'));
    expect(stored.config.url).toBe('https://crm.example.com/hooks/general');
  });
});
