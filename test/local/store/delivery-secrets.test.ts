import { chmod, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../local/paths.ts';
import { changeLocalDeliverySecrets, localDeliverySecrets } from '../../../local/store/delivery-secrets.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'delivery-secrets-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const modeOf = async (file: string) => (await stat(file)).mode & 0o777;

describe('the local delivery signing secrets file', () => {
  it('is made readable by its owner only (0600), and kept across starts', async () => {
    const made = await localDeliverySecrets(dir);
    expect(await modeOf(made.file)).toBe(0o600);
    expect(made.fixedMode).toBeNull();
    expect(Object.keys(JSON.parse(await readFile(made.file, 'utf8')))).toHaveLength(4);
    const again = await localDeliverySecrets(dir);
    expect(again.json).toBe(made.json);
  });

  it('found readable by others (0644, as older versions made it), it is put back to 0600 and says so', async () => {
    const made = await localDeliverySecrets(dir);
    await chmod(made.file, 0o644);
    const again = await localDeliverySecrets(dir);
    expect(again.fixedMode).toBe('0644');
    expect(await modeOf(made.file)).toBe(0o600);
    expect(again.json).toBe(made.json);
  });

  it('is the file the docs name (configuration.md, operations.md, security.md), so an operator finds it', async () => {
    const name = path.basename((await localDeliverySecrets(dir)).file);
    for (const doc of ['configuration.md', 'operations.md', 'security.md']) {
      const text = await readFile(path.join(PROJECT_ROOT, 'docs', doc), 'utf8');
      const named = [...text.matchAll(/\.data\/([\w.-]*secrets[\w.-]*\.json)/g)].map((m) => m[1]);
      expect(named.length, doc).toBeGreaterThan(0);
      expect(new Set(named), doc).toEqual(new Set([name]));
    }
  });

  it('made by two at once (a gateway starting while endpoints set makes it), both sign with the same secrets', async () => {
    // Before: each made its own and wrote it over the other's, so one went on signing with secrets no file held.
    const [one, two] = await Promise.all([localDeliverySecrets(dir), localDeliverySecrets(dir)]);
    expect(one.json).toBe(two.json);
    expect(JSON.parse(await readFile(one.file, 'utf8'))).toEqual(JSON.parse(one.json));
    expect(await modeOf(one.file)).toBe(0o600);
    expect(await readdir(dir)).toEqual(['delivery-signing-secrets.json']);
  });

  it('two endpoints set --secret at once (one process): both new secrets are kept', async () => {
    const { file } = await localDeliverySecrets(dir);
    const rotate = (next: string) => (current: string[]) => [next, ...current.slice(0, 1)];
    // Before: both read the file, then each wrote it back with only its own change: one rotation was lost.
    await Promise.all([
      changeLocalDeliverySecrets(dir, 'deal_analysis', rotate('whsec_deal')),
      changeLocalDeliverySecrets(dir, 'lead_analysis', rotate('whsec_lead')),
    ]);
    const all = JSON.parse(await readFile(file, 'utf8')) as Record<string, string[]>;
    expect(all.deal_analysis?.[0]).toBe('whsec_deal');
    expect(all.lead_analysis?.[0]).toBe('whsec_lead');
    expect(await modeOf(file)).toBe(0o600);
  });
});
