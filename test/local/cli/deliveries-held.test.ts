import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileEndpointStore } from '../../../functions/shared/endpoint-store.ts';
import { settings } from '../../../functions/shared/settings.ts';
import { listFragment } from '../../../local/console/pages.ts';
import { LocalFailedDeliveryStore } from '../../../local/store/failed-delivery-store.ts';
import { pendingEnvelope, T0 } from '../../support/aws-fixtures.ts';
import { runMain } from '../../support/cli.ts';

/**
 * A delivery owed to a paused (or disabled) receiver is not tried until an operator resumes it (docs/operations.md,
 * "Receivers"): `deliveries list` and the console say so instead of an overdue next_due.
 */
let dataDir: string;
const deal = pendingEnvelope('held01', T0);
const general = pendingEnvelope('free01', T0, { webhook_type: 'general' });
const endpoints = () => new FileEndpointStore(path.join(dataDir, 'deliveries'));
const rowOf = (stdout: string, id: string) => stdout.split('\n').find((l) => l.startsWith(id)) ?? '';

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-held-'));
  const store = new LocalFailedDeliveryStore(dataDir);
  await store.put(deal);
  await store.put(general);
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('deliveries of a paused receiver', () => {
  it('deliveries list says held until resumed, not an overdue time; the others keep their next_due', async () => {
    expect(deal.webhook_type).toBe('deal_analysis');
    await endpoints().configure('deal_analysis', { paused: true }, new Date());
    const paused = await runMain(['deliveries', 'list'], { LOCAL_DATA_DIR: dataDir });
    expect(paused.code, paused.stderr).toBe(0);
    expect(rowOf(paused.stdout, deal.conversation_id)).toMatch(/pending\s+held: paused, until resumed$/);
    expect(rowOf(paused.stdout, general.conversation_id)).toMatch(
      new RegExp(`pending\\s+${general.next_due_at!.replace(/\./g, '\\.')}$`),
    );

    await endpoints().resume('deal_analysis', new Date());
    const resumed = await runMain(['deliveries', 'list'], { LOCAL_DATA_DIR: dataDir });
    expect(rowOf(resumed.stdout, deal.conversation_id)).toMatch(
      new RegExp(`pending\\s+${deal.next_due_at!.replace(/\./g, '\\.')}$`),
    );
  });

  it("the console's failed-delivery table says the same", () => {
    const cells = listFragment(
      { rows: [], next_cursor: null, unreadable: [] },
      { deliveries: [deal, general], total: 2 },
      50,
      {
        held: new Map([
          ['deal_analysis', { webhook_type: 'deal_analysis', status: 'paused', paused_at: null, disabled_at: null }],
        ]),
        waits: new Map(),
      },
    ).value;
    expect(cells).toContain('<td>held: paused, until resumed</td>');
    // Its time, which may wrap after its date.
    expect(cells.replace(/<\/?span[^>]*>/g, '')).toContain(`<td>${general.next_due_at}</td>`);
  });
});

describe("deliveries of a receiver that asked to wait (its answer's Retry-After)", () => {
  it('deliveries list says held until the time it gave, not the stored due time it will not be tried at', async () => {
    // Before, the row showed its next_due_at, long past: as though the schedule were about to try it.
    const now = new Date();
    const { health } = await endpoints().recordFailure(
      'general',
      'HTTP 503',
      now,
      settings().breaker,
      undefined,
      600_000,
    );
    const until = health.retry_after_until!;
    expect(until > general.next_due_at!).toBe(true);
    const listed = await runMain(['deliveries', 'list'], { LOCAL_DATA_DIR: dataDir });
    expect(listed.code, listed.stderr).toBe(0);
    expect(rowOf(listed.stdout, general.conversation_id)).toMatch(
      new RegExp(`pending\\s+held: Retry-After, until ${until.replace(/\./g, '\\.')}$`),
    );
    // Another type's deliveries keep their time.
    expect(rowOf(listed.stdout, deal.conversation_id)).toMatch(
      new RegExp(`pending\\s+${deal.next_due_at!.replace(/\./g, '\\.')}$`),
    );
  });

  it("the console's failed-delivery table says the same", () => {
    const until = '2099-01-01T00:00:00.000Z';
    const cells = listFragment(
      { rows: [], next_cursor: null, unreadable: [] },
      { deliveries: [general], total: 1 },
      50,
      { held: new Map(), waits: new Map([['general', until]]) },
    ).value;
    expect(cells).toContain(`<td>held: Retry-After, until ${until}</td>`);
  });
});
