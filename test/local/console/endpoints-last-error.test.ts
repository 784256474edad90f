import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawGet } from '../../support/browser.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The Endpoints page showed a receiver's last error without saying when it was, and cut at 60 characters with no way
 * to read the rest: a receiver healthy again for days still showed its old error in red, as if current. Now the
 * cell says when the last failure was, and gives the whole error on demand (a disclosure, not a mouse-only title).
 */
let world: TestWorld;

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

describe("the Endpoints page's last error", () => {
  it('says when it was, and holds the whole of it', async () => {
    const error = `the CRM is being migrated to a new cluster, please try again later (ticket ${'X'.repeat(40)})`;
    world.receiver.reply({ status: 400, body: error }, 200);
    expect((await world.post(SEED_REQUEST)).body.tracking.delivery_status).toBe('failed');
    world.receiver.reset();
    expect((await world.post(SEED_REQUEST)).body.tracking.delivery_status).toBe('delivered');

    const receivers = JSON.parse((await rawGet(`${world.gateway.url}/local/endpoints`)).body) as {
      webhook_type: string;
      status: string;
      last_error: string;
      last_failure_at: string;
    }[];
    const receiver = receivers.find((r) => r.webhook_type === 'deal_analysis')!;
    expect(receiver.status).toBe('healthy');
    expect(receiver.last_error).toContain(error);
    const page = await rawGet(`${world.gateway.url}/console/endpoints`);
    const row = /<tr data-type="deal_analysis" data-state="healthy">(.*?)<\/tr>/s.exec(page.body)![1]!;
    const cell = /<td class="err last-error"[^>]*>(.*?)<\/td>/s.exec(row)?.[1];
    // Its time, which may wrap after its date.
    expect(cell?.replace(/<\/?span[^>]*>/g, '')).toContain(`<small class="time">${receiver.last_failure_at}</small>`);
    // The whole of it on demand, as a disclosure the keyboard and a screen reader open (a title only a mouse shows).
    const unescaped = (text: string) => text.replaceAll('&quot;', '"').replaceAll('&#39;', "'");
    const whole =
      /<details class="answer" data-receiver-error="deal_analysis"><summary>(.*?)<\/summary><pre class="text">(.*?)<\/pre><\/details>/s.exec(
        cell!,
      );
    expect(whole).not.toBeNull();
    expect(unescaped(whole![1]!)).toBe(`${receiver.last_error.slice(0, 60)}…`);
    expect(unescaped(whole![2]!)).toBe(receiver.last_error);
  });

  it('says that its queued deliveries count the dead-lettered ones too', async () => {
    // It said "queued" only: the permanent failure above, dead-lettered (no more automatic attempts), is counted.
    const page = await rawGet(`${world.gateway.url}/console/endpoints`);
    const row = /<tr data-type="deal_analysis" data-state="healthy">(.*?)<\/tr>/s.exec(page.body)![1]!;
    expect(/<td class="num queued"[^>]*>(\d+)<\/td>/.exec(row)?.[1]).toBe('1');
    expect(/<th scope="col" class="num" title="([^"]*)">queued<\/th>/.exec(page.body)?.[1]).toBe(
      'deliveries still owed to it: waiting for the schedule, or dead-lettered (no more automatic attempts); Recover below redrives both',
    );
  });

  it('says that its last success is written at most every 10 s', async () => {
    // It said nothing: a receiver taking a delivery every second showed a last success up to 10 s old as the last.
    const page = await rawGet(`${world.gateway.url}/console/endpoints`);
    expect(/<th scope="col" title="([^"]*)">last success<\/th>/.exec(page.body)?.[1]).toBe(
      'written at most every 10 s (one write, not one per delivery): a receiver taking deliveries may have had a later one',
    );
  });
});
