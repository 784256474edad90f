import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { folderOf, journalOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * Step Functions fails an execution with States.DataLimitExceeded, which no Catch handles, when a state's input or
 * output or a task's input or result passes 256 KiB. The local engine enforces it on states' outputs and the agent's
 * result only, so these tests measure what the largest conversations the contract accepts give and take at every
 * step: the states in the history, and the tasks' inputs (after Parameters) and results in the journal.
 */
const LIMIT = 256 * 1024;

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  world.agent.reset();
  world.receiver.reset();
});

/** The contract's largest content: 20,000 three-byte characters of query and 16 KB of metadata. */
const LARGEST = { ...SEED_REQUEST, query: '数'.repeat(20_000), metadata: { note: 'm'.repeat(16_000) } };
/** An agent's largest answer (64 KB). */
const largestAnswer = () => world.agent.behave(() => ({ payload: { response: 'a'.repeat(65_000) } }));

const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value) ?? '');

/** Every state input and output, task input and result of the conversation's executions, by size. */
async function payloads(conversationId: string) {
  const sizes: [string, number][] = [];
  const executions = await world.gateway.executions.executions(conversationId);
  for (const execution of executions) {
    const name = execution.state_machine;
    sizes.push([`${name} execution input`, bytes(execution.input)]);
    for (const event of execution.events) {
      if (event.input !== undefined) sizes.push([`${name} ${event.state} ${event.type} input`, bytes(event.input)]);
      if (event.output !== undefined) sizes.push([`${name} ${event.state} ${event.type} output`, bytes(event.output)]);
    }
    const journal = await journalOf(world, execution.execution_name);
    expect(journal.length, execution.execution_name).toBeGreaterThan(0);
    for (const entry of journal.filter((e) => e.k === 'in' || e.k === 'out'))
      sizes.push([`${name} ${entry.s} task ${entry.k === 'in' ? 'input' : 'result'}`, bytes(entry.d)]);
  }
  expect(sizes.some(([name]) => name.includes('Export task input'))).toBe(true);
  return sizes;
}

const overLimit = (sizes: [string, number][]) => sizes.filter(([, size]) => size > LIMIT);

describe("the largest accepted conversations stay within Step Functions' 256 KiB at every step", () => {
  it('the largest content and the largest answer: answered, delivered, exported', async () => {
    largestAnswer();
    const res = await world.post(LARGEST);
    expect(res.status).toBe(200);
    expect(res.body.tracking.delivery_status).toBe('delivered');
    const sizes = await payloads(res.body.conversation_id);
    expect(overLimit(sizes)).toEqual([]);
    // The record carries the question and the answer: the check measures something that large.
    expect(Math.max(...sizes.map(([, size]) => size))).toBeGreaterThan(200 * 1024);
    expect(await world.listKeys(folderOf(res.body.conversation_id))).toHaveLength(4);
  });

  it('a body padded with JSON whitespace to the gateway’s limit, its delivery failing into the queue', async () => {
    largestAnswer();
    world.receiver.reply(410);
    const json = JSON.stringify(LARGEST);
    const padded = `${json.slice(0, -1)}${' '.repeat(250_000 - Buffer.byteLength(json))}}`;
    const res = await world.post(padded);
    expect(res.status).toBe(200);
    expect(res.body.tracking.delivery_status).toBe('failed');
    const sizes = await payloads(res.body.conversation_id);
    expect(overLimit(sizes)).toEqual([]);
    expect(sizes.find(([name]) => name === 'conversation execution input')![1]).toBeGreaterThan(250_000);
    expect(sizes.some(([name]) => name === 'conversation QueueFailedDelivery task input')).toBe(true);
  });

  it('a thread’s next turn: the earlier turns the agent is given beside the largest content and answer', async () => {
    largestAnswer();
    const thread = { ...LARGEST, thread_id: 'largest-thread' };
    expect((await world.post(thread)).status).toBe(200);
    const res = await world.post(thread);
    expect(res.status).toBe(200);
    const agentGot = world.agent.invocations.at(-1)!.request.thread as { earlier_turns: unknown[] };
    expect(agentGot.earlier_turns).toHaveLength(1);
    expect(overLimit(await payloads(res.body.conversation_id))).toEqual([]);
  });

  it('an asynchronous start: the accept execution and the run it starts', async () => {
    largestAnswer();
    const res = await world.post(LARGEST, { prefer: 'respond-async' });
    expect(res.status).toBe(202);
    await world.gateway.idle();
    const sizes = await payloads(res.body.conversation_id);
    expect(new Set(sizes.map(([name]) => name.split(' ')[0]))).toEqual(new Set(['accept', 'conversation']));
    expect(overLimit(sizes)).toEqual([]);
    expect(await world.listKeys(folderOf(res.body.conversation_id))).toHaveLength(4);
  });
});
