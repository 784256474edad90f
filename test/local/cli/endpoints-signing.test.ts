import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { localDeliverySecrets } from '../../../local/store/delivery-secrets.ts';
import { runMain } from '../../support/cli.ts';

/**
 * After `endpoints set <type> --secret …`, neither `endpoints list` nor the console said that the receiver's
 * deliveries were signed, nor that two secrets signed them until --drop-previous-secret, nor since when: the old one
 * was easily forgotten. And the very first --secret already said "two secrets", unexplained. Now the list has a
 * signing column and a line per rotation (since when, and what ends it), never a secret; the first --secret says the
 * previous one is the secret the gateway made; a rotation whose time was not recorded says so.
 */
const NEW = 'whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=';
const ISO = '\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z';
let dataDir: string;
const env = () => ({
  LOCAL_DATA_DIR: dataDir,
  GATEWAY_URL: undefined,
  DELIVERY_SIGNING_SECRETS: undefined,
  DELIVERY_SIGNING_SECRETS_ARN: undefined,
  DELIVERY_SIGNING_SECRETS_FILE: undefined,
});
const run = (...args: string[]) => runMain(['endpoints', ...args], env());
const secretsIn = (text: string) => text.match(/whsec_\S+/g) ?? [];

beforeEach(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-signing-'));
  await localDeliverySecrets(dataDir); // what the gateway makes at its first start: one secret per type
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('endpoints set --secret, then endpoints list', () => {
  it('shows two secrets since the rotation and how to end it, then one secret once dropped', async () => {
    const set = await run('set', 'deal_analysis', '--secret', NEW);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain(
      'deal_analysis deliveries are signed with two secrets (the new one first; the previous one is the secret the gateway made for deal_analysis at its first start): both signatures are on the wire until --drop-previous-secret',
    );

    const listed = await run('list');
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/^type\s+state\s+signing\s+url/m);
    expect(listed.stdout).toMatch(/^deal_analysis\s+healthy\s+2 secrets\s/m);
    expect(listed.stdout).toMatch(/^general\s+healthy\s+one secret\s/m);
    expect(listed.stdout).toMatch(
      new RegExp(
        `^deal_analysis: two secrets since ${ISO} \\(\\d+s ago\\): endpoints set deal_analysis --drop-previous-secret once the receiver verifies the new one$`,
        'm',
      ),
    );
    expect(secretsIn(listed.stdout + listed.stderr)).toEqual([]);
    const json = JSON.parse((await run('list', '--json')).stdout);
    expect(json.find((v: { webhook_type: string }) => v.webhook_type === 'deal_analysis')).toMatchObject({
      signing_secrets: 2,
      secrets_changed_at: expect.stringMatching(new RegExp(`^${ISO}$`)),
    });

    expect((await run('set', 'deal_analysis', '--drop-previous-secret')).code).toBe(0);
    const after = await run('list');
    expect(after.stdout).toMatch(/^deal_analysis\s+healthy\s+one secret\s/m);
    expect(after.stdout).not.toContain('two secrets');

    // A second rotation is no first one: nothing is said of the gateway's secret.
    const again = await run('set', 'deal_analysis', '--secret', NEW.replace('MDEy', 'OTk5'));
    expect(again.stdout).toContain('signed with two secrets (the new one first): both');
  });

  it('refuses a new --secret while a rotation is under way: it would drop the secret the receiver may verify with', async () => {
    // Before, a second --secret before --drop-previous-secret kept the two newest and dropped the one the receiver
    // still verified with: every delivery failed its signature check from then on.
    const file = path.join(dataDir, 'delivery-signing-secrets.json');
    const original = JSON.parse(await readFile(file, 'utf8')).deal_analysis;
    expect((await run('set', 'deal_analysis', '--secret', NEW)).code).toBe(0);
    const rotating = await readFile(file, 'utf8');
    expect(JSON.parse(rotating).deal_analysis).toEqual([NEW, original]);

    const refused = await run('set', 'deal_analysis', '--secret', NEW.replace('MDEy', 'OTk5'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      'webhook-gateway: deal_analysis: a rotation is under way (two secrets sign): another --secret would drop the previous one, which the receiver may still verify with. End the rotation first with --drop-previous-secret once the receiver verifies the newer secret (or give --secret with --drop-previous-secret to sign with the new one alone at once)\n',
    );
    expect(await readFile(file, 'utf8')).toBe(rotating);
    // With a URL beside it, neither is made (before, the URL was changed, then the secret refused).
    const both = await run(
      'set',
      'deal_analysis',
      '--url',
      'https://crm-new.example.com/hooks',
      '--secret',
      NEW.replace('MDEy', 'OTk5'),
    );
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('webhook-gateway: deal_analysis: a rotation is under way (two secrets sign)');
    expect(both.stderr).not.toContain('the change was made');
    expect((await run('list')).stdout).not.toContain('crm-new.example.com');
    expect(await readFile(file, 'utf8')).toBe(rotating);

    // The same secret again changes nothing; with --drop-previous-secret the new one signs alone at once.
    expect((await run('set', 'deal_analysis', '--secret', NEW)).code).toBe(0);
    expect(JSON.parse(await readFile(file, 'utf8')).deal_analysis).toEqual([NEW, original]);
    const NEWER = NEW.replace('MDEy', 'OTk5');
    expect((await run('set', 'deal_analysis', '--secret', NEWER, '--drop-previous-secret')).code).toBe(0);
    expect([JSON.parse(await readFile(file, 'utf8')).deal_analysis].flat()).toEqual([NEWER]);
  });

  it('says the time of a rotation it did not record is not known, without making one up', async () => {
    // A secrets file written by an earlier version (or by hand): two secrets, no time on the receiver.
    const file = path.join(dataDir, 'delivery-signing-secrets.json');
    const all = JSON.parse(await readFile(file, 'utf8'));
    await writeFile(file, JSON.stringify({ ...all, general: [NEW, all.general] }));
    const listed = await run('list');
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(
      'general: two secrets since a time not recorded (set by hand, or before this version recorded it): endpoints set general --drop-previous-secret once the receiver verifies the new one',
    );
    expect(secretsIn(listed.stdout)).toEqual([]);
    const general = JSON.parse((await run('list', '--json')).stdout).find(
      (v: { webhook_type: string }) => v.webhook_type === 'general',
    );
    expect(general).toMatchObject({ signing_secrets: 2, secrets_changed_at: null });
  });

  it('says signing is not known here when the secrets are DELIVERY_SIGNING_SECRETS', async () => {
    const listed = await runMain(['endpoints', 'list'], { ...env(), DELIVERY_SIGNING_SECRETS: `{"general":"${NEW}"}` });
    expect(listed.stdout).toMatch(/^general\s+healthy\s+not known here\s/m);
  });

  // Before: every type `unsigned` (signing_secrets 0), though the first start makes one secret per type.
  it('before the first start, says the first start makes the secrets, not unsigned, and makes none itself', async () => {
    const fresh = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-signing-fresh-'));
    try {
      const file = path.join(fresh, 'delivery-signing-secrets.json');
      const listed = await runMain(['endpoints', 'list'], { ...env(), LOCAL_DATA_DIR: fresh });
      expect(listed.code, listed.stderr).toBe(0);
      expect(listed.stdout).toMatch(/^general\s+healthy\s+at first start\s/m);
      expect(listed.stdout).not.toContain('unsigned');
      expect(listed.stdout).toContain(
        `No gateway has started on this data folder yet: its first start makes one signing secret per type in ${file}.\n`,
      );
      const json = await runMain(['endpoints', 'list', '--json'], { ...env(), LOCAL_DATA_DIR: fresh });
      expect(JSON.parse(json.stdout)[0]).toMatchObject({ signing_secrets: null, signing_at_first_start: true });
      await expect(readFile(file)).rejects.toMatchObject({ code: 'ENOENT' });
      // Once made (as the first start does), the count is the file's.
      await localDeliverySecrets(fresh);
      const after = await runMain(['endpoints', 'list'], { ...env(), LOCAL_DATA_DIR: fresh });
      expect(after.stdout).toMatch(/^general\s+healthy\s+one secret\s/m);
      expect(after.stdout).not.toContain('first start');
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  });
});
