import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UnreadableFileError } from '../../../functions/shared/local-files.ts';
import { LocalFailedDeliveryStore } from '../../../local/store/failed-delivery-store.ts';

const ID = 'webhook_20261202_113902_crm_p_79eec5jp3s';

describe('a damaged file of the local failed-delivery store is never read as "no envelope"', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'failed-deliveries-'));
    await mkdir(path.join(dataDir, 'failed-deliveries'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it.each([
    ['cut short', '{"version":1,"conversation_id'],
    ['an empty object', '{}'],
    ['an array', '[]'],
    ['a bare null', 'null'],
    ['another version', JSON.stringify({ version: 2, conversation_id: ID, conversation: {} })],
  ])('%s: get() names the file, list() leaves it out and unreadable() names it', async (_what, text) => {
    const store = new LocalFailedDeliveryStore(dataDir);
    const file = path.join(dataDir, 'failed-deliveries', `${ID}.json`);
    await writeFile(file, text);
    const error = await store.get(ID).catch((e: Error) => e);
    expect(error).toBeInstanceOf(UnreadableFileError);
    expect((error as UnreadableFileError).file).toBe(file);
    expect(await store.list()).toEqual([]);
    expect((await store.unreadable()).map((u) => u.file)).toEqual([file]);
  });

  it('no file at all is no envelope', async () => {
    const store = new LocalFailedDeliveryStore(dataDir);
    expect(await store.get(ID)).toBeNull();
    expect(await store.unreadable()).toEqual([]);
  });
});
