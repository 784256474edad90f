import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalFailedDeliveryStore } from '../../../local/store/failed-delivery-store.ts';
import { pendingEnvelope, T0 } from '../../support/aws-fixtures.ts';
import { runMain } from '../../support/cli.ts';

/**
 * `deliveries list` shows the newest 50 owed deliveries (`--limit N` for more), as `conversations list` does, and says
 * how many older ones it left out: a data folder owing thousands printed every one of them (docs/operations.md).
 */
let dataDir: string;
/** 53 pending envelopes, newest first. */
const newestFirst: string[] = [];

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-deliveries-limit-'));
  const store = new LocalFailedDeliveryStore(dataDir);
  for (let n = 0; n < 53; n++) {
    const envelope = pendingEnvelope(`lim${String(n).padStart(3, '0')}`, new Date(T0.getTime() + n * 1000));
    await store.put(envelope);
    newestFirst.unshift(envelope.conversation_id);
  }
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const idsIn = (stdout: string) => stdout.split('\n').flatMap((l) => (/^webhook_\S+/.exec(l) ?? []).slice(0, 1));

describe('deliveries list --limit', () => {
  it('shows the newest 50 by default and says how many older ones are not shown', async () => {
    const listed = await runMain(['deliveries', 'list'], { LOCAL_DATA_DIR: dataDir });
    expect(listed.code, listed.stderr).toBe(0);
    expect(idsIn(listed.stdout)).toEqual(newestFirst.slice(0, 50));
    expect(listed.stdout.trimEnd().split('\n').at(-1)).toBe('(3 older not shown; use --limit)');
  });

  it('--limit raises (or lowers) it, for the table and for --json', async () => {
    const all = await runMain(['deliveries', 'list', '--limit', '100'], { LOCAL_DATA_DIR: dataDir });
    expect(idsIn(all.stdout)).toEqual(newestFirst);
    expect(all.stdout).not.toContain('not shown');
    const json = await runMain(['deliveries', 'list', '--json', '--limit', '2'], { LOCAL_DATA_DIR: dataDir });
    expect(JSON.parse(json.stdout).map((e: { conversation_id: string }) => e.conversation_id)).toEqual(
      newestFirst.slice(0, 2),
    );
    const fifty = await runMain(['deliveries', 'list', '--json'], { LOCAL_DATA_DIR: dataDir });
    expect(JSON.parse(fifty.stdout)).toHaveLength(50);
  });

  // Before, 99999999999999999999 was taken (and a search's SQL failed on it as "Conversion Error: Type INT128 …").
  it.each([
    [['deliveries', 'list'], '0'],
    [['deliveries', 'list'], '1000001'],
    [['conversations', 'list'], '99999999999999999999'],
    [['conversations', 'search', 'x'], '99999999999999999999'],
    [['deliveries', 'redrive', '--all', '--dry-run'], '99999999999999999999'],
  ])('%j refuses --limit %s, naming the range', async (command, value) => {
    const refused = await runMain([...command, '--limit', value], { LOCAL_DATA_DIR: dataDir });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`webhook-gateway: --limit must be a whole number from 1 to 1000000, got "${value}"\n`);
  });
});

describe('deliveries list with none of the states asked', () => {
  it('names them as a list reads ("dead or settled", "pending, dead or settled" is every delivery)', async () => {
    const empty = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-deliveries-none-'));
    try {
      const said = async (state: string) =>
        (await runMain(['deliveries', 'list', '--state', state], { LOCAL_DATA_DIR: empty })).stdout;
      expect(await said('pending')).toMatch(/^No pending deliveries in \S+\.\n$/);
      expect(await said('dead,settled')).toMatch(/^No dead or settled deliveries in /);
      expect(await said('dead,pending,dead')).toMatch(/^No dead or pending deliveries in /);
      expect(await said('pending,dead,settled')).toMatch(/^No deliveries in /);
      expect(await said('all')).toMatch(/^No deliveries in /);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});

/**
 * `deliveries redrive --all --dry-run` counts every delivery it would redrive and lists the oldest 50 (`--limit N`),
 * saying how many more it planned: it listed every one (with --json, every envelope with its record).
 */
describe('deliveries redrive --all --dry-run --limit', () => {
  const oldestFirst = () => newestFirst.toReversed();
  const planned = (stdout: string) => stdout.split('\n').flatMap((l) => (/^ {2}(webhook_\S+)/.exec(l) ?? []).slice(1));

  it('lists the oldest 50 of the plan by default, and says how many more it planned', async () => {
    const plan = await runMain(['deliveries', 'redrive', '--all', '--dry-run'], { LOCAL_DATA_DIR: dataDir });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout.split('\n')[0]).toBe('dry run: would redrive 53 deliveries; nothing was changed');
    expect(planned(plan.stdout)).toEqual(oldestFirst().slice(0, 50));
    expect(plan.stdout.trimEnd().split('\n').at(-1)).toBe('  (3 more planned, not shown; use --limit)');
  });

  it('--limit N lists N, for the table and for --json (the rest counted on stderr)', async () => {
    const two = await runMain(['deliveries', 'redrive', '--all', '--dry-run', '--limit', '2'], {
      LOCAL_DATA_DIR: dataDir,
    });
    expect(planned(two.stdout)).toEqual(oldestFirst().slice(0, 2));
    const json = await runMain(['deliveries', 'redrive', '--all', '--dry-run', '--json', '--limit', '2'], {
      LOCAL_DATA_DIR: dataDir,
    });
    expect(JSON.parse(json.stdout).map((e: { conversation_id: string }) => e.conversation_id)).toEqual(
      oldestFirst().slice(0, 2),
    );
    expect(json.stderr).toContain('(51 more planned, not shown; use --limit)');
  });

  it('refuses --limit without --dry-run: a redrive redrives every delivery it plans', async () => {
    const refused = await runMain(['deliveries', 'redrive', '--all', '--limit', '2'], { LOCAL_DATA_DIR: dataDir });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('--limit bounds what a --dry-run shows');
  });
});

/**
 * `deliveries list --type T`: one receiver's deliveries (its backlog while it is down), as `deliveries redrive --all
 * --type` plans them. Before, the list took no --type: the newest 50 of every type were shown mixed.
 */
describe('deliveries list --type', () => {
  it("shows only that type's deliveries, counts only those, and names the type when there are none", async () => {
    const typed = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-deliveries-type-'));
    try {
      const store = new LocalFailedDeliveryStore(typed);
      const deal = pendingEnvelope('typ001', T0);
      const general = pendingEnvelope('typ002', new Date(T0.getTime() + 1000), { webhook_type: 'general' });
      await store.put(deal);
      await store.put(general);
      const list = (...args: string[]) => runMain(['deliveries', 'list', ...args], { LOCAL_DATA_DIR: typed });

      const generalOnly = await list('--type', 'General', '--limit', '1');
      expect(generalOnly.code, generalOnly.stderr).toBe(0);
      expect(idsIn(generalOnly.stdout)).toEqual([general.conversation_id]);
      expect(generalOnly.stdout).not.toContain('not shown');
      const json = JSON.parse((await list('--type', 'deal_analysis', '--json')).stdout);
      expect(json.map((e: { conversation_id: string }) => e.conversation_id)).toEqual([deal.conversation_id]);
      expect((await list('--type', 'lead_analysis')).stdout).toMatch(
        /^No pending or dead lead_analysis deliveries in /,
      );

      const refused = await list('--type', 'deals');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(
        '--type takes one of deal_analysis, data_analysis, lead_analysis, general; got "deals"',
      );
    } finally {
      await rm(typed, { recursive: true, force: true });
    }
  });
});
