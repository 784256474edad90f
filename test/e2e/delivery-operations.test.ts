import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FileEndpointStore } from '../../functions/shared/endpoint-store.ts';
import { LocalFailedDeliveryStore } from '../../local/store/failed-delivery-store.ts';
import { pendingEnvelope } from '../support/aws-fixtures.ts';
import { runMain } from '../support/cli.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';
import { captureJsonLines } from '../support/log-capture.ts';

/**
 * Operating deliveries (docs/operations.md#did-the-crm-get-it): the attempt log with what the receiver answered,
 * resend, run-time receivers (URL, pause/resume) and the circuit breaker, through the running local gateway.
 */
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});
beforeEach(async () => {
  world.receiver.reset();
  process.env.ENDPOINT_FAILURE_THRESHOLD = '1000';
  delete process.env.ENDPOINT_DISABLE_AFTER_DAYS;
  await cli(['endpoints', 'resume', 'deal_analysis']);
  await cli(['endpoints', 'set', 'deal_analysis', '--url', 'default', '--rate', 'none']);
});

async function dealEndpoint() {
  const listed = JSON.parse((await cli(['endpoints', 'list', '--json'])).stdout);
  return listed.find((v: any) => v.webhook_type === 'deal_analysis');
}

const cli = (args: string[]) =>
  runMain(args, { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url, NO_COLOR: '1' });

async function showJson(id: string) {
  const shown = await cli(['conversations', 'show', id, '--json']);
  expect(shown.code, shown.stderr).toBe(0);
  return JSON.parse(shown.stdout);
}

describe('the attempt log: what the receiver answered, for every attempt', () => {
  it('keeps each attempt’s status, selected headers and body; show --json and conversation.json hold them', async () => {
    world.receiver.reply(
      {
        status: 500,
        body: '{"error":"crm database locked"}',
        headers: { 'x-request-id': 'crm-1', 'set-cookie': 'a=b' },
      },
      { status: 200, body: 'accepted as CRM-42' },
    );
    const res = await world.post(SEED_REQUEST);
    expect(res.body.tracking.delivery_status).toBe('delivered');
    const id = res.body.conversation_id as string;

    const shown = await showJson(id);
    expect(shown.delivery_attempts.map((a: any) => a.response.status)).toEqual([500, 200]);
    expect(shown.delivery_attempts[0]).toMatchObject({
      attempt: 1,
      outcome: 'retryable',
      via: 'workflow',
      response: {
        status: 500,
        body: '{"error":"crm database locked"}',
        body_truncated: false,
        headers: { 'x-request-id': 'crm-1', 'content-type': 'text/plain' },
      },
      request: { url: `${world.receiver.url}/…` },
    });
    expect(shown.delivery_attempts[0].response.headers['set-cookie']).toBeUndefined();
    expect(shown.delivery_attempts[1]).toMatchObject({ attempt: 2, outcome: 'delivered' });
    expect(shown.delivery_attempts[1].response.body).toBe('accepted as CRM-42');
    // What was sent: the delivery id, never the signature.
    const sent = shown.delivery_attempts[0].request.headers;
    expect(sent['webhook-id']).toBe(res.body.tracking.delivery_id);
    expect(sent['webhook-signature']).toBeUndefined();
    expect(world.receiver.received[0]!.headers['webhook-signature']).toBeTruthy();

    const exported = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(exported.conversation.execution.delivery_attempts.map((a: any) => a.response.body)).toEqual([
      '{"error":"crm database locked"}',
      'accepted as CRM-42',
    ]);

    const text = await cli(['conversations', 'show', id]);
    expect(text.stdout).toContain('answered 500 (text/plain): {"error":"crm database locked"}');
    expect(text.stdout).toContain('answered 200 (text/plain): accepted as CRM-42');
  });

  it('keeps the first 4 KB of a long answer and says it was cut; a receiver that never answers has response null', async () => {
    world.receiver.reply({ status: 503, body: 'x'.repeat(10_000) }, { status: 200, held: true });
    process.env.DELIVERY_TIMEOUT_MS = '1000';
    const res = await world.post(SEED_REQUEST).finally(() => {
      process.env.DELIVERY_TIMEOUT_MS = '5000';
    });
    const shown = await showJson(res.body.conversation_id);
    expect(shown.delivery_attempts[0].response).toMatchObject({ status: 503, body_truncated: true });
    expect(shown.delivery_attempts[0].response.body).toHaveLength(4096);
    expect(shown.delivery_attempts[1]).toMatchObject({ outcome: 'retryable', response: null });
    expect(shown.delivery_attempts[1].error).toMatch(/timed out|timeout/i);
  });
});

describe('deliveries resend: one more delivery of a delivered conversation, under its webhook-id', () => {
  it('delivers again with the same webhook-id and logs it as a resend attempt', async () => {
    const res = await world.post(SEED_REQUEST);
    const id = res.body.conversation_id as string;
    expect(res.body.tracking.delivery_status).toBe('delivered');
    world.receiver.reply({ status: 200, body: 'got it again' });
    const resent = await cli(['deliveries', 'resend', id]);
    expect(resent.code, resent.stderr).toBe(0);
    expect(resent.stdout).toContain(`${id} resent → delivered (HTTP 200)`);
    expect(world.receiver.received.map((r) => r.headers['webhook-id'])).toEqual([
      res.body.tracking.delivery_id,
      res.body.tracking.delivery_id,
    ]);
    const shown = await showJson(id);
    expect(shown.delivery_attempts.map((a: any) => [a.attempt, a.via, a.outcome])).toEqual([
      [1, 'workflow', 'delivered'],
      [2, 'resend', 'delivered'],
    ]);
    expect(shown.delivery_attempts[1].response.body).toBe('got it again');
    expect(shown.conversation.webhook_context.delivery_status).toBe('delivered');
    const exported = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(exported.conversation.execution.delivery_attempts).toHaveLength(2);
  });

  it('refuses, with the reason, a conversation that is not delivered (redrive it) or unknown', async () => {
    world.receiver.reply(400);
    const res = await world.post(SEED_REQUEST);
    expect(res.body.tracking.delivery_status).toBe('failed');
    const refused = await cli(['deliveries', 'resend', res.body.conversation_id]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/not delivered yet .*redrive it instead/);
    const unknown = await cli(['deliveries', 'resend', 'not-an-id']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('is not a conversation id');
  });
});

describe('receivers at run time: endpoints set | pause | resume, without a restart', () => {
  it('endpoints set --url redirects the next delivery; --url default goes back to the deployed one', async () => {
    const set = await cli(['endpoints', 'set', 'deal_analysis', '--url', `${world.receiver.url}/moved/deal`]);
    expect(set.code, set.stderr).toBe(0);
    // Its origin only (docs/security.md): the receiver's own, no longer the deployed one.
    expect(set.stdout).toContain(`${world.receiver.url}/…`);
    expect(set.stdout).not.toContain(`${world.receiver.url}/… (deployed)`);
    const res = await world.post(SEED_REQUEST);
    expect(res.body.tracking.delivery_status).toBe('delivered');
    expect(world.receiver.received.map((r) => r.path)).toEqual(['/moved/deal']);
    await cli(['endpoints', 'set', 'deal_analysis', '--url', 'default']);
    await world.post(SEED_REQUEST);
    expect(world.receiver.received.map((r) => r.path)).toEqual(['/moved/deal', '/hooks/deal_analysis']);
  });

  it('refuses a URL the delivery rules refuse, and an unknown type, with the reason', async () => {
    const bad = await cli(['endpoints', 'set', 'deal_analysis', '--url', 'ftp://example.com/x']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--url:');
    const unknown = await cli(['endpoints', 'pause', 'crm']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('"crm" is not a webhook type');
  });

  it('a paused receiver gets nothing: the caller is answered queued at once; resume and a redrive deliver it', async () => {
    expect((await cli(['endpoints', 'pause', 'deal_analysis'])).code).toBe(0);
    const queuedBefore = (await dealEndpoint()).queued;
    const res = await world.post(SEED_REQUEST);
    expect(res.body.tracking.delivery_status).toBe('queued');
    expect(world.receiver.received).toHaveLength(0);
    expect(await dealEndpoint()).toMatchObject({ status: 'paused', queued: queuedBefore + 1 });
    await cli(['endpoints', 'resume', 'deal_analysis']);
    expect((await world.gateway.redelivery.redrive(res.body.conversation_id)).status).toBe('delivered');
    expect(world.receiver.received).toHaveLength(1);
  });
});

describe('the circuit breaker: a failing receiver stops holding callers up', () => {
  it('after N consecutive failures new conversations are answered queued at once, and endpoints list says failing', async () => {
    process.env.ENDPOINT_FAILURE_THRESHOLD = '2';
    world.receiver.reply(500, 500, 500, 500, 500, 500, 500, 500);
    const queuedBefore = (await dealEndpoint()).queued;
    // The first conversation waits through the in-workflow retries; the streak reaches the threshold.
    const first = await world.post(SEED_REQUEST);
    expect(first.body.tracking.delivery_status).toBe('retrying');
    const attemptsBefore = world.receiver.received.length;
    expect(attemptsBefore).toBeGreaterThanOrEqual(2);
    // The next one gets no attempt: its receiver is failing and was just probed.
    const second = await world.post(SEED_REQUEST);
    expect(second.body.tracking.delivery_status).toBe('queued');
    expect(world.receiver.received).toHaveLength(attemptsBefore);
    const deal = await dealEndpoint();
    expect(deal).toMatchObject({ status: 'failing', queued: queuedBefore + 2 });
    expect(deal.consecutive_failures).toBeGreaterThanOrEqual(2);
    expect(deal.last_error).toContain('500');
    // An operator's redrive goes through a failing receiver; a success closes the circuit.
    world.receiver.reset();
    expect((await world.gateway.redelivery.redrive(second.body.conversation_id)).status).toBe('delivered');
    expect(await dealEndpoint()).toMatchObject({
      status: 'healthy',
      consecutive_failures: 0,
    });
  });
});

describe('endpoints set --url: a new URL is a new receiver (docs/operations.md#receivers)', () => {
  it('the old URL’s failure streak does not carry over: the new URL is healthy and delivered to at once; the same URL again keeps the streak', async () => {
    process.env.ENDPOINT_FAILURE_THRESHOLD = '2';
    world.receiver.reply(500, 500, 500, 500, 500, 500, 500, 500);
    const failed = await world.post(SEED_REQUEST);
    expect(failed.body.tracking.delivery_status).toBe('retrying');
    expect(await dealEndpoint()).toMatchObject({ status: 'failing' });
    // The same URL set again is the same receiver: still failing.
    await cli(['endpoints', 'set', 'deal_analysis', '--url', `${world.receiver.url}/hooks/deal_analysis`]);
    const again = await cli([
      'endpoints',
      'set',
      'deal_analysis',
      '--url',
      `${world.receiver.url}/hooks/deal_analysis`,
    ]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).not.toContain('a new URL is a new receiver');
    const kept = await dealEndpoint();
    expect(kept).toMatchObject({ status: 'failing' });
    expect(kept.consecutive_failures).toBeGreaterThanOrEqual(2);
    // A new URL, answering 200 at once: healthy before its first delivery, which is attempted, not queued.
    world.receiver.reset();
    const moved = await cli(['endpoints', 'set', 'deal_analysis', '--url', `${world.receiver.url}/moved/deal`]);
    expect(moved.code, moved.stderr).toBe(0);
    expect(moved.stdout).toContain(
      "deal_analysis: a new URL is a new receiver: it starts healthy (the previous URL's failure streak, circuit breaker and Retry-After hold do not carry over)",
    );
    expect(await dealEndpoint()).toMatchObject({ status: 'healthy', consecutive_failures: 0, last_error: null });
    // What the console's Endpoints page shows (its GET /local/endpoints): healthy too.
    const rows = (await (await fetch(`${world.gateway.url}/local/endpoints`)).json()) as { webhook_type: string }[];
    expect(rows.find((r) => r.webhook_type === 'deal_analysis')).toMatchObject({ status: 'healthy' });
    const next = await world.post(SEED_REQUEST);
    expect(next.body.tracking.delivery_status).toBe('delivered');
    expect(world.receiver.received.map((r) => r.path)).toEqual(['/moved/deal']);
  });

  it('an operator’s pause carries over to the new URL, and the command says so', async () => {
    expect((await cli(['endpoints', 'pause', 'deal_analysis'])).code).toBe(0);
    const moved = await cli(['endpoints', 'set', 'deal_analysis', '--url', `${world.receiver.url}/moved/deal`]);
    expect(moved.stdout).toMatch(
      /it stays paused, as paused \(since .+\): endpoints resume deal_analysis delivers to it/,
    );
    expect(await dealEndpoint()).toMatchObject({ status: 'paused' });
    const held = await world.post(SEED_REQUEST);
    expect(held.body.tracking.delivery_status).toBe('queued');
    expect(world.receiver.received).toHaveLength(0);
    // With --json, stdout stays one JSON document: the line is on stderr.
    const json = await cli([
      'endpoints',
      'set',
      'deal_analysis',
      '--url',
      `${world.receiver.url}/again/deal`,
      '--json',
    ]);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(expect.any(Array));
    expect(json.stderr).toContain('deal_analysis: a new URL is a new receiver');
  });
});

describe('a receiver failing for ENDPOINT_DISABLE_AFTER_DAYS is disabled: kept, reported once, resumable', () => {
  it('the failure past D days disables it; later deliveries are held without an attempt; resume and a redrive deliver them', async () => {
    process.env.ENDPOINT_FAILURE_THRESHOLD = '2';
    process.env.ENDPOINT_DISABLE_AFTER_DAYS = '5';
    // Its streak began 6 days ago: the store is given that time (nobody waits days), as Deliver gives it the attempt's.
    const store = new FileEndpointStore(path.join(world.dataDir, 'deliveries'));
    const sixDaysAgo = new Date(Date.now() - 6 * 86_400_000);
    for (let i = 0; i < 2; i++)
      await store.recordFailure('deal_analysis', 'HTTP 503', sixDaysAgo, { failureThreshold: 2, disableAfterMs: 0 });
    expect(await dealEndpoint()).toMatchObject({ status: 'failing', disabled_at: null });
    const queuedBefore = (await dealEndpoint()).queued;

    world.receiver.reply(503, 503, 503);
    const capture = captureJsonLines();
    let probed: Awaited<ReturnType<TestWorld['post']>>;
    let held: Awaited<ReturnType<TestWorld['post']>>;
    try {
      // The probe fails: more than 5 days of failure, so this failure disables the receiver.
      probed = await world.post(SEED_REQUEST);
      // Disabled: no attempt at all.
      held = await world.post(SEED_REQUEST);
    } finally {
      capture.restore();
    }
    // The probe was an attempt (it failed: no in-workflow retries, handed to the schedule); the next one had none.
    expect(probed.body.tracking.delivery_status).toBe('retrying');
    expect(held.body.tracking.delivery_status).toBe('queued');
    expect(world.receiver.received).toHaveLength(1);
    const disabledEvents = capture.events().filter((e) => e.event_type === 'WEBHOOK_ENDPOINT_DISABLED');
    expect(disabledEvents).toHaveLength(1);
    expect(disabledEvents[0]).toMatchObject({
      webhook_type: 'deal_analysis',
      failing_since: sixDaysAgo.toISOString(),
      consecutive_failures: 3,
    });
    const deal = await dealEndpoint();
    expect(deal).toMatchObject({
      status: 'disabled',
      queued: queuedBefore + 2,
      failing_since: sixDaysAgo.toISOString(),
    });
    expect(deal.disabled_at).not.toBeNull();
    const list = await cli(['endpoints', 'list']);
    expect(list.stdout).toMatch(/deal_analysis\s+disabled/);

    // Kept, not dropped: an operator's redrive does not go through a disabled receiver either.
    const heldId = held.body.conversation_id as string;
    expect((await world.gateway.redelivery.redrive(heldId)).status).toBe('held');
    expect(world.receiver.received).toHaveLength(1);

    // Resume re-enables it; both deliveries then reach the receiver.
    const resumed = await cli(['endpoints', 'resume', 'deal_analysis']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(await dealEndpoint()).toMatchObject({ status: 'healthy', consecutive_failures: 0, disabled_at: null });
    world.receiver.reset();
    expect((await world.gateway.redelivery.redrive(probed.body.conversation_id)).status).toBe('delivered');
    expect((await world.gateway.redelivery.redrive(heldId)).status).toBe('delivered');
    expect(world.receiver.received.map((r) => r.headers['webhook-id'])).toEqual([
      probed.body.tracking.delivery_id,
      held.body.tracking.delivery_id,
    ]);
    expect((await dealEndpoint()).queued).toBe(queuedBefore);
  });
});

describe('deliveries redrive | resend name the data folder they read: a gateway serving another refuses', () => {
  it("another folder's delivery is refused, saying whose gateway this is; the same folder by another path (a link) is redriven", async () => {
    // A folder whose gateway is not running, its dead delivery read by the command, and this gateway found at the URL
    // (its PORT, GATEWAY_URL): before, the gateway answered that no failed delivery of it is stored, "none was owed,
    // or its file was deleted", while the folder still owed it.
    const other = await mkdtemp(path.join(tmpdir(), 'other-data-'));
    try {
      const envelope = pendingEnvelope('otherfolder');
      await new LocalFailedDeliveryStore(other).put(envelope);
      const env = { LOCAL_DATA_DIR: other, GATEWAY_URL: world.gateway.url, NO_COLOR: '1' };
      const refused = await runMain(['deliveries', 'redrive', envelope.conversation_id], env);
      expect(refused.code).toBe(1);
      expect(refused.stdout).not.toContain('not_found');
      expect(refused.stderr).toContain(
        `this gateway serves the data folder ${world.dataDir}, not ${other}: nothing was done. Start the gateway of ${other}`,
      );
      const resend = await runMain(['deliveries', 'resend', envelope.conversation_id], env);
      expect(resend.stderr).toContain(`this gateway serves the data folder ${world.dataDir}, not ${other}`);

      world.receiver.reply(410);
      const res = await world.post(SEED_REQUEST);
      expect(res.body.tracking.delivery_status).toBe('failed');
      const link = path.join(other, 'link-to-the-gateways-folder');
      await symlink(world.dataDir, link);
      const linked = await runMain(['deliveries', 'redrive', res.body.conversation_id], {
        ...env,
        LOCAL_DATA_DIR: link,
      });
      expect(linked.code, linked.stderr).toBe(0);
      expect(linked.stdout).toContain(`${res.body.conversation_id} → delivered`);
      expect(world.receiver.received).toHaveLength(2);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});
