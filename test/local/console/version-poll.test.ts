import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type ConsoleContext, version } from '../../../local/console/data.ts';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { LocalFailedDeliveryStore } from '../../../local/store/failed-delivery-store.ts';

/**
 * Every open console tab polls GET /console/api/version each second (local/console/index.ts). With tens of thousands
 * of conversations, listing the executions folder at each poll took most of a second: it is listed again only when
 * the folder changed.
 */
describe("the console's version poll", () => {
  let dataDir: string;
  let ctx: ConsoleContext;
  let listings: ReturnType<typeof vi.spyOn>;
  const id = (n: number) => `webhook_20261202_1200${String(n).padStart(2, '0')}_crm_p_aaaaaaaaaa`;
  const saveConversation = async (n: number) => {
    await ctx.executions.save(id(n), {
      execution_name: `run${n}`,
      state_machine: 'conversation',
      status: 'SUCCEEDED',
      started_at: '2026-12-02T12:00:00.000Z',
      stopped_at: '2026-12-02T12:00:00.100Z',
      input: {},
      output: {},
      events: [],
    } as never);
  };

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'console-version-'));
    const executions = new ExecutionStore(dataDir);
    ctx = {
      executions,
      failedDeliveries: new LocalFailedDeliveryStore(dataDir),
      running: () => [],
      runningVersion: () => 0,
      stopping: () => false,
    } as unknown as ConsoleContext;
    listings = vi.spyOn(executions, 'conversationIds');
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  /** As if the folder's last change were two seconds old. */
  const settle = () => utimes(ctx.executions.dir, new Date(Date.now() - 2000), new Date(Date.now() - 2000));

  it('lists the executions folder once while it is unchanged, and again once a conversation is added', async () => {
    await saveConversation(1);
    await settle();
    const first = await version(ctx);
    expect(await version(ctx)).toBe(first);
    expect(await version(ctx)).toBe(first);
    expect(listings).toHaveBeenCalledTimes(1);

    await saveConversation(2);
    await settle();
    const second = await version(ctx);
    expect(second).not.toBe(first);
    expect(listings).toHaveBeenCalledTimes(2);
    expect(await version(ctx)).toBe(second);
    expect(listings).toHaveBeenCalledTimes(2);
  });

  it('lists it at every poll while its last change is under a second old (file times are coarse)', async () => {
    await saveConversation(1);
    // Its last change dated a minute ahead: under a second old at each poll below, however slow the machine. Left as
    // written, a poll more than a second after the save (a loaded machine) found it settled and did not list it.
    const ahead = new Date(Date.now() + 60_000);
    await utimes(ctx.executions.dir, ahead, ahead);
    await version(ctx);
    await version(ctx);
    expect(listings).toHaveBeenCalledTimes(2);
  });
});
