import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EndedExecution, LocalWorkflow } from '../../../local/engine/engine.ts';
import { ExecutionJournal } from '../../../local/engine/journal.ts';
import { LocalRedelivery } from '../../../local/engine/redelivery.ts';
import { RunningExecutions } from '../../../local/engine/running.ts';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { LocalFailedDeliveryStore } from '../../../local/store/failed-delivery-store.ts';
import { pendingEnvelope } from '../../support/aws-fixtures.ts';

/**
 * Ctrl-C while the schedule works through more envelopes than one batch (local/engine/redelivery.ts): the stop waits
 * for the redeliveries under way, which the "stopping: …" line counts (RunningExecutions.inFlight), and sends no
 * other; an envelope not sent stays pending, as it was, for the next start.
 */
let dataDir: string;
let journal: ExecutionJournal;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-redelivery-stop-'));
  journal = await ExecutionJournal.open(path.join(dataDir, 'journal'));
});
afterAll(async () => {
  journal.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('LocalRedelivery.stop() during a sweep of two batches', () => {
  it('waits only for the runs under way (those counted), leaving the envelopes not sent pending', async () => {
    const store = new LocalFailedDeliveryStore(dataDir);
    const envelopes = Array.from({ length: 12 }, (_, i) => pendingEnvelope(`stop${String(i).padStart(2, '0')}`));
    for (const envelope of envelopes) await store.put(envelope);

    const started: string[] = [];
    let tenStarted!: () => void;
    const ten = new Promise<void>((resolve) => {
      tenStarted = resolve;
    });
    let letGo!: () => void;
    const gate = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    // Each run fails (its envelope counts a failed run): what matters is which envelopes were sent at all.
    const workflow = {
      name: 'redelivery',
      timeoutMs: 60_000,
      async run(input: unknown, name: string): Promise<EndedExecution> {
        started.push(name);
        if (started.length === 10) tenStarted();
        await gate;
        const at = new Date().toISOString();
        return {
          execution_name: name,
          state_machine: 'redelivery',
          status: 'FAILED',
          error: 'Held',
          cause: 'held by the test',
          started_at: at,
          stopped_at: at,
          input,
          events: [],
        };
      },
    } as unknown as LocalWorkflow;
    const running = new RunningExecutions();
    const redelivery = new LocalRedelivery(store, workflow, new ExecutionStore(dataDir), journal, undefined, running);

    const sweep = redelivery.runDue();
    await ten; // the first batch (10) is under way
    const counted = running.inFlight(() => 60_000, 1_000).count;
    const stopped = redelivery.stop();
    letGo();
    await stopped;
    const results = await sweep;

    expect(counted).toBe(10);
    // Before: 12, the stop waited for the second batch too, which the line had not counted.
    expect(started).toHaveLength(counted);
    expect(results).toHaveLength(10);
    const after = await Promise.all(envelopes.map((e) => store.get(e.conversation_id)));
    const sent = after.filter((e) => e!.failed_runs === 1);
    const left = after.filter((e) => !e!.failed_runs);
    expect(sent).toHaveLength(10);
    expect(left).toHaveLength(2);
    for (const envelope of left) {
      const before = envelopes.find((e) => e.conversation_id === envelope!.conversation_id)!;
      expect(envelope).toEqual(before);
    }
    expect(running.inFlight(() => 60_000, 1_000).count).toBe(0);
  });
});
