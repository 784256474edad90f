import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../local/paths.ts';
import { localDeliverySecrets } from '../../../local/store/delivery-secrets.ts';

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
});
