import { describe, expect, it } from 'vitest';
import { useHeldDeliverWorld } from '../../support/gateway.ts';

/**
 * A redelivery under way (the schedule's, a redrive, a resend) was shown nowhere until its history was saved: the
 * conversation looked idle while its receiver was being called again. Now the list marks its row `redelivering` (and
 * its JSON says which run), and the conversation's page names the run and the state it is in, its timeline showing
 * it as far as it went. The run is held in Deliver by the test until it lets it go.
 */
const setup = useHeldDeliverWorld();

const get = async (path: string) => (await fetch(`${setup.world.gateway.url}${path}`)).text();

describe('a redelivery under way, in the console', () => {
  it('is shown on the list and on the conversation page while it runs, and no more once it ended', async () => {
    const { world, held } = setup;
    const id = await setup.deadLettered();

    held.holdNext();
    const redrive = world.gateway.redelivery.redrive(id);
    await held.reached;
    const page = await get(`/console/conversations/${id}?fragment=1`);
    const name =
      /id="redelivery-under-way">A redelivery is under way: execution <code>([^<]+)<\/code>, in <b>Deliver<\/b>/.exec(
        page,
      )?.[1];
    expect(name, page).toBeDefined();
    expect(page).toContain(`data-name="${name}" data-machine="redelivery"`);
    expect(await get('/console?fragment=1')).toMatch(
      new RegExp(`data-id="${id}"[^]*?<span class="badge b-redelivering" title="redelivery ${name} under way">`),
    );
    const api = (await (await fetch(`${world.gateway.url}/console/api/conversations`)).json()) as any;
    expect(api.conversations[0]).toMatchObject({ conversation_id: id, redelivering: name });

    held.letGo();
    expect((await redrive).status).toBe('delivered');
    expect(await get(`/console/conversations/${id}?fragment=1`)).not.toContain('redelivery-under-way');
    expect(await get('/console?fragment=1')).not.toContain('b-redelivering');
  });
});
