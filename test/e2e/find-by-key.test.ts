import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signOutbound } from '../../functions/domain/signatures.ts';
import { ExecutionStore } from '../../local/store/execution-store.ts';
import { runMain, until } from '../support/cli.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * A source system knows its own message id (the `webhook-id` it signed, or the `Idempotency-Key` it sent), not the
 * conversation id: the console's list, its JSON and `conversations list | show --key` find the conversation by it
 * (docs/operations.md, "Find a conversation by the source's message id"). A delivery the source sent again, answered
 * from the key, points at the first conversation; a retry that ran again after an agent failure is found beside it.
 * Before, none of them took a key: the operator had the source's id and nothing to look it up with.
 */
const SECRET = `whsec_${Buffer.from('find-by-key-secret'.padEnd(32, '-')).toString('base64')}`;

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld({ INBOUND_WEBHOOK_SECRETS: JSON.stringify({ signed_crm: SECRET }) });
});
afterAll(async () => {
  await world?.close();
});

const api = async (query: string) => {
  const response = await fetch(`${world.gateway.url}/console/api/conversations${query}`);
  return { status: response.status, body: (await response.json()) as any };
};
const cli = (...args: string[]) => runMain(['conversations', ...args], { LOCAL_DATA_DIR: world.dataDir });
const saved = async (id: string) => {
  const store = new ExecutionStore(world.dataDir);
  await until(`the history of ${id}`, async () => (await store.executions(id)).length > 0);
};

describe('finding a conversation by the Idempotency-Key or webhook-id its source sent', () => {
  it('a signed delivery sent twice: the second answered from the key, both point at the first conversation', async () => {
    const body = JSON.stringify({ ...SEED_REQUEST, source_system: 'signed_crm' });
    const headers = () => ({
      ...(signOutbound(SECRET, 'msg_2Zq8', new Date(), body) as unknown as Record<string, string>),
      // Ignored beside a signature (docs/contract.md#idempotent-retries): the signed webhook-id is the key.
      'Idempotency-Key': 'unsigned-key',
    });
    const first = await world.post(body, headers());
    expect(first.status).toBe(200);
    const again = await world.post(body, headers());
    expect(again.status).toBe(200);
    const id = first.body.conversation_id as string;
    expect(again.body.conversation_id).toBe(id);
    await saved(id);

    const { status, body: listed } = await api('?key=msg_2Zq8');
    expect(status).toBe(200);
    expect(listed.conversations).toEqual([
      expect.objectContaining({ conversation_id: id, idempotency_key: 'msg_2Zq8', webhook_id: 'msg_2Zq8' }),
    ]);
    expect(listed.next_cursor).toBeNull();
    expect((await api('?key=msg_2Zq8&source=signed_crm')).body.conversations).toHaveLength(1);
    expect((await api('?key=msg_2Zq8&source=other_crm')).body.conversations).toEqual([]);
    expect((await api('?key=MSG_2ZQ8')).body.conversations).toEqual([]);
    expect((await api('?key=unsigned-key')).body.conversations).toEqual([]);

    const shown = await cli('show', '--key', 'msg_2Zq8');
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`conversation ${id}`);
    expect(shown.stdout).toMatch(/request {4}idempotency key msg_2Zq8 {3}webhook-id msg_2Zq8/);
    const page = await (await fetch(`${world.gateway.url}/console/conversations/${id}`)).text();
    expect(page).toContain('idempotency key <code>msg_2Zq8</code> · webhook-id <code>msg_2Zq8</code>');
  });

  it('an asynchronous start is found by its key while it runs and once it ended', async () => {
    world.agent.reset();
    // The agent answers once the test has seen the conversation running.
    let answer = () => {};
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    world.agent.behave(async () => {
      await answered;
      return { payload: { response: 'Top deals: Acme', agent: 'test-agent' } };
    });
    const accepted = await world.post(SEED_REQUEST, { prefer: 'respond-async', 'Idempotency-Key': 'order-77' });
    expect(accepted.status).toBe(202);
    const id = accepted.body.conversation_id as string;
    try {
      await until('its run waits on the agent', async () => world.agent.invocations.length === 1);
      expect((await api('?key=order-77')).body.conversations).toEqual([
        expect.objectContaining({ conversation_id: id, status: 'in_progress', idempotency_key: 'order-77' }),
      ]);
    } finally {
      answer(); // a failed check leaves no run waiting on the agent
    }
    await until(
      'its run ended',
      async () => (await api('?key=order-77')).body.conversations[0]?.status === 'completed',
    );
    world.agent.reset();
    expect((await api('?key=order-77')).body.conversations.map((c: any) => c.conversation_id)).toEqual([id]);
    const listed = await cli('list', '--key', 'order-77', '--json');
    expect(JSON.parse(listed.stdout)).toEqual([
      expect.objectContaining({ conversation_id: id, idempotency_key: 'order-77', webhook_id: null }),
    ]);
  });

  it('a retry that ran again after an agent failure is found beside the failed one; show --key shows the newest', async () => {
    world.agent.behave(() => ({ functionError: 'Unhandled', payload: { errorType: 'Boom', errorMessage: 'down' } }));
    const failed = await world.post(SEED_REQUEST, { 'webhook-id': 'evt_retry_1' });
    expect(failed.status).toBe(502);
    world.agent.reset();
    const retry = await world.post(SEED_REQUEST, { 'webhook-id': 'evt_retry_1' });
    expect(retry.status).toBe(200);
    const [failedId, retryId] = [failed.body.error.conversation_id as string, retry.body.conversation_id as string];
    await saved(retryId);
    expect((await api('?key=evt_retry_1')).body.conversations.map((c: any) => c.conversation_id)).toEqual([
      retryId,
      failedId,
    ]);
    const shown = await cli('show', '--key', 'evt_retry_1');
    expect(shown.stdout).toContain(`conversation ${retryId}`);
    expect(shown.stderr).toContain(`"evt_retry_1" also started ${failedId} (testing_system/phase3_validation, failed)`);
  });

  it('says so when no conversation has the key, and refuses what cannot be one', async () => {
    const none = await cli('show', '--key', 'never-sent');
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(
      /no conversation in .* was started by a request with Idempotency-Key or webhook-id "never-sent"/,
    );
    const listed = await cli('list', '--key', 'never-sent');
    expect(listed.stdout).toMatch(/^No conversations match these filters/);
    const bad = await api(`?key=${encodeURIComponent('two words')}`);
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/^key takes the Idempotency-Key or webhook-id a source sent/);
    const both = await cli('show', 'webhook_20261203_000000_a_b_c', '--key', 'x');
    expect(both.stderr).toMatch(/takes a conversation id or --key, not both/);
    const search = await cli('search', 'deals', '--key', 'msg_2Zq8');
    expect(search.stderr).toMatch(/conversations search takes no --key/);
  });
});
