import { mkdtemp, readdir, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileEndpointStore } from '../../../functions/shared/endpoint-store.ts';
import { type Redeliver, runSchedule } from '../../../functions/shared/redelivery.ts';
import { LocalFailedDeliveryStore } from '../../../local/store/failed-delivery-store.ts';
import { pendingEnvelope, T0 } from '../../support/aws-fixtures.ts';
import { runMain } from '../../support/cli.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * Failed deliveries locally: the store, the automatic schedule (shortened by REDELIVERY_SCHEDULE, never by
 * sleeping a fixed time) and operator redrives, each redelivery an execution of statemachine/redelivery.asl.json.
 */
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld({ REDELIVERY_SCHEDULE: '1h,1h,1h' });
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  world.receiver.reset();
  process.env.REDELIVERY_SCHEDULE = '1h,1h,1h';
});

async function failedConversation(...replies: (number | { status: number; headers?: Record<string, string> })[]) {
  world.receiver.reply(...replies);
  const res = await world.post(SEED_REQUEST);
  expect(res.status).toBe(200);
  world.receiver.reset();
  return res.body as { conversation_id: string; tracking: { delivery_id: string; delivery_status: string } };
}

/** Make one envelope due now, as the clock would after its wait. */
async function makeDue(id: string) {
  const envelope = (await world.gateway.failedDeliveries.get(id))!;
  await world.gateway.failedDeliveries.put({ ...envelope, next_due_at: new Date(Date.now() - 1).toISOString() });
}

describe('automatic redelivery on the schedule', () => {
  it('receiver down → stored with attempts; receiver back → the schedule delivers it once, with the same delivery id', async () => {
    const body = await failedConversation(503, 503, 503, 503);
    expect(body.tracking.delivery_status).toBe('retrying');
    const stored = (await world.gateway.failedDeliveries.get(body.conversation_id))!;
    expect(stored).toMatchObject({ state: 'pending', scheduled_attempts: 0, delivery_id: body.tracking.delivery_id });
    expect(Date.parse(stored.next_due_at!) - Date.now()).toBeGreaterThan(3_500_000);

    expect((await world.gateway.redelivery.runDue()).map((r) => r.conversation_id)).not.toContain(body.conversation_id);
    await makeDue(body.conversation_id);
    const results = await world.gateway.redelivery.runDue();
    expect(results.find((r) => r.conversation_id === body.conversation_id)?.status).toBe('delivered');
    expect(world.receiver.received).toHaveLength(1);
    expect(world.receiver.received[0]!.headers['webhook-id']).toBe(body.tracking.delivery_id);
    expect(world.receiver.received[0]!.body.delivery_id).toBe(body.tracking.delivery_id);

    const envelope = (await world.gateway.failedDeliveries.get(body.conversation_id))!;
    expect(envelope).toMatchObject({ state: 'settled', next_due_at: null, scheduled_attempts: 1 });
    const record = await world.getJson(`${folderOf(body.conversation_id)}conversation.json`);
    expect(record.conversation.webhook_context.delivery_status).toBe('delivered');
    const attempts = record.conversation.execution.delivery_attempts;
    // Every attempt, the in-workflow retries too (the attempt log keeps them), each with what the receiver said.
    expect(attempts.map((a: { outcome: string; via: string }) => `${a.via}:${a.outcome}`)).toEqual([
      'workflow:retryable',
      'workflow:retryable',
      'workflow:retryable',
      'workflow:retryable',
      'schedule:delivered',
    ]);
    expect(attempts.map((a: { attempt: number }) => a.attempt)).toEqual([1, 2, 3, 4, 5]);
    expect(attempts.map((a: { response: { status: number } }) => a.response.status)).toEqual([503, 503, 503, 503, 200]);
    expect(record.conversation.execution.executions).toHaveLength(2);
    expect(record.conversation.execution.executions[1]).toMatch(new RegExp(`^${body.conversation_id}-redelivery-5-`));

    const executions = await world.gateway.executions.executions(body.conversation_id);
    expect(executions.map((e) => e.state_machine)).toEqual(['conversation', 'redelivery']);
    expect(executions[1]!.events.filter((e) => e.type === 'StateEntered').map((e) => e.state)).toEqual([
      'IsDeliveryOwed',
      'Deliver',
      'Export',
      'Redelivered',
    ]);

    // Nothing left to do: a second sweep does not deliver again.
    await world.gateway.redelivery.runDue();
    expect(world.receiver.received).toHaveLength(1);
  });

  it('a redelivery whose history cannot be written is settled by what it did: delivered once, not again at each retry of the run', async () => {
    // Before, the failed history write made the run count as failed: the receiver got it again 1, 2, 4 and 8 minutes
    // later, then the envelope was dead-lettered (runs_failed) though delivered.
    const body = await failedConversation(503, 503, 503, 503);
    const folder = path.join(world.dataDir, 'executions');
    const saved = path.join(world.dataDir, 'executions.saved');
    await rm(saved, { recursive: true, force: true });
    await rename(folder, saved);
    await writeFile(folder, 'not a folder');
    const printed = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      await makeDue(body.conversation_id);
      const results = await world.gateway.redelivery.runDue();
      expect(results.find((r) => r.conversation_id === body.conversation_id)?.status).toBe('delivered');
      expect(world.receiver.received).toHaveLength(1);
      expect(await world.gateway.failedDeliveries.get(body.conversation_id)).toMatchObject({ state: 'settled' });
      expect(printed).toHaveBeenCalledWith(
        expect.stringContaining(`(conversation ${body.conversation_id}) could not be saved`),
      );
    } finally {
      printed.mockRestore();
      await rm(folder, { force: true });
      await rename(saved, folder);
    }
  });

  it('the poller runs the schedule by itself when REDELIVERY_POLL_MS is set', async () => {
    process.env.REDELIVERY_SCHEDULE = '50ms';
    const body = await failedConversation(503, 503, 503, 503);
    world.gateway.redelivery.start(25);
    try {
      await vi.waitFor(
        async () => expect((await world.gateway.failedDeliveries.get(body.conversation_id))!.state).toBe('settled'),
        { timeout: 15_000, interval: 20 },
      );
    } finally {
      await world.gateway.redelivery.stop();
    }
    expect(world.receiver.received.filter((r) => r.body.conversation_id === body.conversation_id)).toHaveLength(1);
  });

  it('a sweep slower than the poll interval reports each redelivery once (no repeated operator lines)', async () => {
    process.env.REDELIVERY_SCHEDULE = '10ms';
    const body = await failedConversation(503, 503, 503, 503);
    // The poller's ticks, counted; the receiver holds the redelivery until five have passed during the sweep (before:
    // it answered 300 ms late, and a loaded machine could tick fewer times than the test meant, or none).
    let ticks = 0;
    const realSetInterval = globalThis.setInterval;
    const spied = vi.spyOn(globalThis, 'setInterval').mockImplementationOnce(((tick: () => void, ms: number) =>
      realSetInterval(() => {
        ticks++;
        tick();
      }, ms)) as typeof setInterval);
    world.receiver.reply({ status: 200, held: true });
    const reported: string[] = [];
    world.gateway.redelivery.start(20, (r) => reported.push(`${r.conversation_id} ${r.status}`));
    try {
      await expect.poll(() => world.receiver.received.length).toBe(1);
      const during = ticks;
      await expect.poll(() => ticks).toBeGreaterThanOrEqual(during + 5);
      world.receiver.letGo();
      await vi.waitFor(
        async () => expect((await world.gateway.failedDeliveries.get(body.conversation_id))!.state).toBe('settled'),
        { timeout: 15_000, interval: 20 },
      );
      const after = ticks;
      await expect.poll(() => ticks).toBeGreaterThanOrEqual(after + 5); // nothing more to report
    } finally {
      spied.mockRestore();
      await world.gateway.redelivery.stop();
    }
    expect(reported).toEqual([`${body.conversation_id} delivered`]);
  });

  it('a failed scheduled attempt moves to the next slot; the last slot failing dead-letters it (exhausted)', async () => {
    process.env.REDELIVERY_SCHEDULE = '1h,2h';
    const body = await failedConversation(500, 500, 500, 500);
    world.receiver.reply(500, 500);
    await makeDue(body.conversation_id);
    await world.gateway.redelivery.runDue();
    let envelope = (await world.gateway.failedDeliveries.get(body.conversation_id))!;
    expect(envelope).toMatchObject({ state: 'pending', scheduled_attempts: 1 });
    expect(Date.parse(envelope.next_due_at!) - Date.now()).toBeGreaterThan(7_000_000);
    let record = await world.getJson(`${folderOf(body.conversation_id)}conversation.json`);
    expect(record.conversation.webhook_context.delivery_status).toBe('retrying');

    await makeDue(body.conversation_id);
    await world.gateway.redelivery.runDue();
    envelope = (await world.gateway.failedDeliveries.get(body.conversation_id))!;
    expect(envelope).toMatchObject({
      state: 'dead',
      dead_reason: 'exhausted',
      next_due_at: null,
      scheduled_attempts: 2,
    });
    // The envelope keeps every attempt, short: the workflow's retries the state did not carry are counted from the
    // attempt log by the schedule's first run; the export has them with what the receiver answered (the log's).
    expect(envelope.attempts.map((a) => a.attempt)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(envelope.attempts[0]).not.toHaveProperty('response');
    record = await world.getJson(`${folderOf(body.conversation_id)}conversation.json`);
    expect(record.conversation.webhook_context.delivery_status).toBe('failed');
    expect(record.conversation.execution.delivery_attempts).toHaveLength(6);
  });

  it('Retry-After on 429/503 is honoured when it asks for more than the schedule', async () => {
    process.env.REDELIVERY_SCHEDULE = '1s';
    const retryAfter = { status: 503, headers: { 'retry-after': '7200' } };
    world.receiver.reply(retryAfter, retryAfter, retryAfter, retryAfter);
    const res = await world.post(SEED_REQUEST);
    // One attempt: the workflow does not retry against the receiver's word; the schedule takes it.
    expect(world.receiver.received).toHaveLength(1);
    world.receiver.reset();
    const body = res.body as { conversation_id: string; tracking: { delivery_status: string } };
    expect(body.tracking.delivery_status).toBe('retrying');
    const envelope = (await world.gateway.failedDeliveries.get(body.conversation_id))!;
    expect(envelope.attempts).toHaveLength(1);
    expect(envelope.attempts.at(-1)).toMatchObject({ status_code: 503, retry_after_ms: 7_200_000 });
    expect(envelope.last_error).toMatch(/^HTTP 503/);
    const wait = Date.parse(envelope.next_due_at!) - Date.now();
    expect(wait).toBeGreaterThan(7_100_000);
    expect(wait).toBeLessThanOrEqual(7_200_000);
    // Its word holds the whole type: the next conversation is queued without an attempt, and the schedule sends
    // nothing either (before, both went to the receiver that had asked for two hours).
    const next = await world.post(SEED_REQUEST);
    expect((next.body as { tracking: { delivery_status: string } }).tracking.delivery_status).toBe('queued');
    await makeDue(body.conversation_id);
    await world.gateway.redelivery.runDue();
    expect(world.receiver.received).toHaveLength(0);
    // What the operator does to send anyway (and what lets the next tests deliver).
    await new FileEndpointStore(path.join(world.dataDir, 'deliveries')).resume('deal_analysis', new Date());
    for (const e of await world.gateway.failedDeliveries.list())
      await world.gateway.failedDeliveries.put({ ...e, state: 'settled', next_due_at: null });
  });

  it.each([410, 400])(
    'a %i answer dead-letters at once, with no automatic attempts, but a manual redrive still works',
    async (status) => {
      const body = await failedConversation(status);
      expect(body.tracking.delivery_status).toBe('failed');
      const envelope = (await world.gateway.failedDeliveries.get(body.conversation_id))!;
      expect(envelope).toMatchObject({ state: 'dead', dead_reason: 'permanent', next_due_at: null });
      await world.gateway.redelivery.runDue();
      expect(world.receiver.received).toHaveLength(0);

      const result = await world.gateway.redelivery.redrive(body.conversation_id);
      expect(result.status).toBe('delivered');
      expect(world.receiver.received).toHaveLength(1);
      const record = await world.getJson(`${folderOf(body.conversation_id)}conversation.json`);
      expect(record.conversation.webhook_context.delivery_status).toBe('delivered');
      expect(record.conversation.execution.delivery_attempts.at(-1)).toMatchObject({
        via: 'redrive',
        outcome: 'delivered',
      });
    },
  );
});

describe('a redelivery run that keeps failing, on the local store (the rule of the AWS scheduler)', () => {
  it('five failed runs in a row from the due time on, 1, 2, 4 and 8 minutes apart, then dead (runs_failed)', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-failed-runs-'));
    try {
      const store = new LocalFailedDeliveryStore(dataDir);
      const dueAt = T0.getTime() + 7_200_000;
      const envelope = pendingEnvelope(undefined, T0, { next_due_at: new Date(dueAt).toISOString() });
      await store.put(envelope);
      let clock = T0.getTime();
      const runs: number[] = [];
      const failing: Redeliver = async () => {
        runs.push(clock);
        return { ok: false, execution_name: 'x', status: 'FAILED', error: 'FAILED: States.Runtime' };
      };
      const quiet = { info: () => {}, warn: () => {}, error: () => {} };
      // The local poller's runs, one per minute of an injected clock (the gateway's polls every REDELIVERY_POLL_MS).
      for (; clock < dueAt + 3_600_000; clock += 60_000)
        await runSchedule(store, failing, {
          remainingMs: () => Number.POSITIVE_INFINITY,
          reserveMs: 0,
          minHoldSeconds: 0,
          log: quiet,
          now: () => new Date(clock),
        });
      expect(runs[0]).toBe(dueAt);
      expect(runs.slice(1).map((t, i) => (t - runs[i]!) / 60_000)).toEqual([1, 2, 4, 8]);
      expect(await store.get(envelope.conversation_id)).toMatchObject({
        state: 'dead',
        dead_reason: 'runs_failed',
        failed_runs: 5,
        scheduled_attempts: 0,
        next_due_at: null,
      });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a failed-delivery file cut short (a crash, a full disk, a hand edit)', () => {
  it('is left out and named: the schedule still redelivers the others, deliveries list still lists them', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-cut-envelope-'));
    try {
      const store = new LocalFailedDeliveryStore(dataDir);
      const good = pendingEnvelope('goodone', T0, { next_due_at: T0.toISOString() });
      const cut = pendingEnvelope('cutone', T0, { next_due_at: T0.toISOString() });
      await store.put(good);
      await store.put(cut);
      const cutFile = path.join(store.dir, `${cut.conversation_id}.json`);
      await writeFile(cutFile, (await readFile(cutFile, 'utf8')).slice(0, 200));

      expect((await store.list()).map((e) => e.conversation_id)).toEqual([good.conversation_id]);
      expect(await store.unreadable()).toEqual([{ file: cutFile, reason: expect.stringContaining(cutFile) }]);
      const redelivered: string[] = [];
      const delivering: Redeliver = async (envelope) => {
        redelivered.push(envelope.conversation_id);
        return { ok: false, execution_name: 'x', status: 'FAILED', error: 'FAILED: States.Runtime' };
      };
      const quiet = { info: () => {}, warn: () => {}, error: () => {} };
      // Before, the one cut file made every sweep fail ("redelivery sweep failed: Unterminated string in JSON").
      await runSchedule(store, delivering, {
        remainingMs: () => Number.POSITIVE_INFINITY,
        reserveMs: 0,
        minHoldSeconds: 0,
        log: quiet,
        now: () => T0,
      });
      expect(redelivered).toEqual([good.conversation_id]);

      const listed = await runMain(['deliveries', 'list'], { LOCAL_DATA_DIR: dataDir });
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain(good.conversation_id);
      expect(listed.stderr).toContain(`${cutFile} is not valid JSON`);
      expect(listed.stderr).toContain('left out of this list and of the redelivery schedule');
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('an execution history cut short is left out of conversations list and show, named, and the rest is shown', async () => {
    const kept = await failedConversation(200);
    const damaged = await failedConversation(400);
    await world.gateway.redelivery.redrive(damaged.conversation_id);
    const folder = path.join(world.dataDir, 'executions', damaged.conversation_id);
    const [original] = (await readdir(folder)).sort();
    const cutFile = path.join(folder, original!);
    await truncate(cutFile, 100);
    try {
      const env = { LOCAL_DATA_DIR: world.dataDir };
      // Before, one cut history file made the whole list fail with "SyntaxError: Unterminated string in JSON".
      const list = await runMain(['conversations', 'list', '--limit', '1000'], env);
      expect(list.code).toBe(0);
      expect(list.stdout).toContain(kept.conversation_id);
      expect(list.stderr).toContain(`${cutFile} is not valid JSON`);
      const show = await runMain(['conversations', 'show', damaged.conversation_id], env);
      expect(show.code).toBe(0);
      expect(show.stdout).toMatch(/\(redelivery\) SUCCEEDED/);
      expect(show.stderr).toContain(`${cutFile} is not valid JSON`);
    } finally {
      await rm(cutFile, { force: true });
    }
  });
});

describe('operator redrive', () => {
  it('redriving an already delivered conversation is a no-op', async () => {
    const body = await failedConversation(400);
    await world.gateway.redelivery.redrive(body.conversation_id);
    world.receiver.reset();
    const again = await world.gateway.redelivery.redrive(body.conversation_id);
    expect(again.status).toBe('already_delivered');
    expect(world.receiver.received).toHaveLength(0);
  });

  it('two concurrent redrives of one conversation deliver once', async () => {
    const body = await failedConversation(400);
    // The receiver holds the first delivery until it has arrived: the other redrives, asked at once, come while it is
    // under way (before: it answered 100 ms late, and on a loaded machine they could come one after another).
    world.receiver.reply({ status: 200, held: true });
    const redrives = Promise.all([
      world.gateway.redelivery.redrive(body.conversation_id),
      world.gateway.redelivery.redrive(body.conversation_id),
      fetch(`${world.gateway.url}/local/deliveries/${body.conversation_id}/redrive`, { method: 'POST' }).then(
        (r) => r.json() as Promise<{ status: string }>,
      ),
    ]);
    await expect.poll(() => world.receiver.received.length).toBe(1);
    world.receiver.letGo();
    const results = await redrives;
    expect(results.map((r) => r.status).sort()).toEqual(['already_delivered', 'already_delivered', 'delivered']);
    expect(world.receiver.received).toHaveLength(1);
  });

  it('a redrive that fails again keeps it dead and records the attempt', async () => {
    const body = await failedConversation(400);
    world.receiver.reply(500);
    const result = await world.gateway.redelivery.redrive(body.conversation_id);
    expect(result.status).toBe('failed');
    expect(result.envelope).toMatchObject({ state: 'dead' });
    expect(result.envelope!.attempts).toHaveLength(2);
    const record = await world.getJson(`${folderOf(body.conversation_id)}conversation.json`);
    expect(record.conversation.webhook_context.delivery_status).toBe('failed');
  });

  it("an unknown conversation id answers 404 in the contract's error shape (docs/contract.md)", async () => {
    const id = 'webhook_20250813_103045_testing_phase3valid_nothere';
    const res = await fetch(`${world.gateway.url}/local/deliveries/${id}/redrive`, { method: 'POST' });
    expect(res.status).toBe(404);
    // Before: {conversation_id, status: "not_found"}, unlike every other error.
    expect(await res.json()).toEqual({
      success: false,
      error: {
        code: 'NOT_FOUND',
        message: `no failed delivery of ${id} is stored (none was owed, or its file was deleted): nothing was attempted`,
      },
    });
  });
});

describe('webhook-gateway deliveries (CLI against the running gateway)', () => {
  const cli = (args: string[]) => runMain(args, { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url });

  it('list shows conversation id, type, attempts, last error, age and state', async () => {
    const body = await failedConversation(410);
    const result = await cli(['deliveries', 'list']);
    expect(result.code).toBe(0);
    expect(result.stdout.split('\n')[0]).toMatch(
      /^conversation_id\s+type\s+attempts\s+last_error\s+age\s+state\s+next_due$/,
    );
    const line = result.stdout.split('\n').find((l) => l.startsWith(body.conversation_id))!;
    expect(line).toMatch(/deal_analysis\s+1\s+HTTP 410: nope\s+\d+s\s+dead \(permanent\)/);
  });

  it("list counts every attempt, with the workflow's immediate retries, as conversations show does", async () => {
    const body = await failedConversation(500, 500, 500, 500);
    const line = (await cli(['deliveries', 'list'])).stdout
      .split('\n')
      .find((l) => l.startsWith(body.conversation_id))!;
    // The envelope keeps one attempt per Deliver run (the fourth try); before, the list said 1.
    expect(line).toMatch(/deal_analysis\s+4\s+HTTP 500/);
    expect((await cli(['conversations', 'show', body.conversation_id])).stdout).toMatch(/\(4 tries, 3 retries/);
    const dry = await cli(['deliveries', 'redrive', body.conversation_id, '--dry-run']);
    expect(dry.stdout).toMatch(new RegExp(`${body.conversation_id}\\s+deal_analysis\\s+.*\\s4 attempts`));
  });

  it('redrive --all --since only takes what failed since then; --dry-run changes nothing', async () => {
    // What failed before (this one and the earlier tests') is dated an hour back, instead of waiting on the clock:
    // --since half an hour ago leaves it out.
    const old = await failedConversation(400);
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    for (const e of await world.gateway.failedDeliveries.list())
      await world.gateway.failedDeliveries.put({ ...e, created_at: hourAgo });
    const since = new Date(Date.now() - 1_800_000).toISOString();
    const recent = await failedConversation(400);

    const dry = await cli(['deliveries', 'redrive', '--all', '--since', since, '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/dry run: would redrive 1 delivery/);
    expect(dry.stdout).toContain(recent.conversation_id);
    expect(world.receiver.received).toHaveLength(0);
    expect((await world.gateway.failedDeliveries.get(recent.conversation_id))!.state).toBe('dead');

    const run = await cli(['deliveries', 'redrive', '--all', '--since', since]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`[1/1] ${recent.conversation_id} → delivered`);
    expect(run.stdout).toMatch(/redrove 1: 1 delivered/);
    expect((await world.gateway.failedDeliveries.get(old.conversation_id))!.state).toBe('dead');
    expect((await world.gateway.failedDeliveries.get(recent.conversation_id))!.state).toBe('settled');
  });

  it('redrive <id> delivers one; again says already delivered and points to resend; bad input gets a clear error', async () => {
    const body = await failedConversation(400);
    const first = await cli(['deliveries', 'redrive', body.conversation_id]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/→ delivered/);
    const second = await cli(['deliveries', 'redrive', body.conversation_id]);
    expect(second.code).toBe(0);
    // When and how it was delivered, as --aws says it (before: "(2 attempts)", which read as two deliveries).
    const delivered = (await world.gateway.failedDeliveries.get(body.conversation_id))!.attempts.at(-1)!;
    expect(delivered).toMatchObject({ attempt: 2, outcome: 'delivered', via: 'redrive' });
    expect(second.stdout).toContain(
      `${body.conversation_id} was already delivered (attempt 2 at ${delivered.at} by the redrive): nothing to redrive. To deliver it again: webhook-gateway deliveries resend ${body.conversation_id}`,
    );
    const bad = await cli(['deliveries', 'redrive', 'not-an-id']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/is not a conversation id/);
    const since = await cli(['deliveries', 'redrive', '--all', '--since', 'last tuesday']);
    expect(since.code).toBe(1);
    expect(since.stderr).toMatch(/--since must be an ISO 8601 date or date-time with a zone/);
  });

  it('redrive <id> of a conversation delivered at its first try is a no-op that points to resend', async () => {
    const res = await world.post(SEED_REQUEST);
    const body = res.body as { conversation_id: string; tracking: { delivery_status: string } };
    expect(body.tracking.delivery_status).toBe('delivered');
    world.receiver.reset();
    const result = await cli(['deliveries', 'redrive', body.conversation_id]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      `${body.conversation_id} was delivered (nothing is owed): nothing to redrive. To deliver it again: webhook-gateway deliveries resend ${body.conversation_id}`,
    );
    expect(world.receiver.received).toHaveLength(0);
    const unknown = await cli(['deliveries', 'redrive', 'webhook_20250813_103045_testing_phase3valid_nothere']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(
      /no conversation webhook_20250813_103045_testing_phase3valid_nothere in the local history/,
    );
  });

  it('redrive --all refuses a time without its zone and an unknown type instead of planning 0 deliveries', async () => {
    const body = await failedConversation(400);
    // Read in the shell's zone, 08:00 could be hours before or after the failure: the list commands refuse it too.
    const zoneless = await cli(['deliveries', 'redrive', '--all', '--since', '2020-01-01T08:00:00', '--dry-run']);
    expect(zoneless.code).toBe(1);
    expect(zoneless.stderr).toMatch(/--since must be an ISO 8601 date or date-time with a zone.*"2020-01-01T08:00:00"/);
    const noSuchDay = await cli(['deliveries', 'redrive', '--all', '--since', '2026-02-31', '--dry-run']);
    expect(noSuchDay.code).toBe(1);
    expect(noSuchDay.stderr).toMatch(/--since must be an ISO 8601 date.*"2026-02-31"/);
    const typo = await cli(['deliveries', 'redrive', '--all', '--type', 'deal-analysis', '--dry-run']);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(
      /--type takes one of deal_analysis, data_analysis, lead_analysis, general; got "deal-analysis"/,
    );
    expect(world.receiver.received).toHaveLength(0);
    expect((await world.gateway.failedDeliveries.get(body.conversation_id))!.state).toBe('dead');
    const dated = await cli([
      'deliveries',
      'redrive',
      '--all',
      '--since',
      '2020-01-01',
      '--type',
      'general',
      '--dry-run',
    ]);
    expect(dated.code).toBe(0);
  });

  it('redrive finds the gateway running on LOCAL_DATA_DIR (its gateway.json), whatever its PORT', async () => {
    const body = await failedConversation(400);
    const result = await runMain(['deliveries', 'redrive', body.conversation_id], {
      LOCAL_DATA_DIR: world.dataDir,
      GATEWAY_URL: undefined,
      PORT: undefined,
    });
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(new RegExp(`${body.conversation_id} → delivered`));
  });

  it('redrive without a running gateway says how to start it', async () => {
    const body = await failedConversation(400);
    const result = await runMain(['deliveries', 'redrive', body.conversation_id], {
      LOCAL_DATA_DIR: world.dataDir,
      GATEWAY_URL: 'http://127.0.0.1:9',
    });
    expect(result.code).toBe(1);
    // On its data folder: before, "npm start", which another shell runs on the repository's .data.
    expect(result.stderr).toContain(
      `the local gateway is not running at http://127.0.0.1:9: start it with "LOCAL_DATA_DIR=${world.dataDir} npm start"`,
    );
  });

  it('conversations show lists the original execution and each redelivery', async () => {
    const body = await failedConversation(400);
    await world.gateway.redelivery.redrive(body.conversation_id);
    const result = await cli(['conversations', 'show', body.conversation_id]);
    expect(result.stdout).toMatch(/execution \S+ \(conversation\) SUCCEEDED/);
    expect(result.stdout).toMatch(
      new RegExp(`execution ${body.conversation_id}-redelivery-2-\\w+ \\(redelivery\\) SUCCEEDED`),
    );
    expect(result.stdout).toMatch(/attempt 1 .* permanent HTTP 400/);
    expect(result.stdout).toMatch(/attempt 2 .* delivered HTTP 200/);
    expect(result.stdout).toMatch(/path: IsDeliveryOwed → Deliver → Export → Redelivered/);
  });
});

describe('operator endpoints refuse what is not a local operator', () => {
  it('a cross-site browser POST (foreign Origin) or a rebound Host name gets 403 and redrives nothing', async () => {
    const body = await failedConversation(400);
    const url = `${world.gateway.url}/local/deliveries/${body.conversation_id}/redrive`;
    const crossSite = await fetch(url, { method: 'POST', headers: { origin: 'https://evil.example' } });
    expect(crossSite.status).toBe(403);
    const { request } = await import('node:http');
    const rebound = await new Promise<number>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { host: 'evil.example:3000' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(rebound).toBe(403);
    expect(world.receiver.received).toHaveLength(0);
    expect((await world.gateway.failedDeliveries.get(body.conversation_id))!.state).toBe('dead');
  });
});
