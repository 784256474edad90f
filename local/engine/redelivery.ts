import { randomBytes } from 'node:crypto';
import {
  type FailedDeliveryEnvelope,
  isDue,
  redeliveryContext,
  redeliveryExecutionName,
  settleRedelivery,
} from '../../functions/domain/failed-delivery.ts';
import { settings } from '../../functions/shared/settings.ts';
import type { ExecutionStore } from '../store/execution-store.ts';
import type { LocalFailedDeliveryStore } from '../store/failed-delivery-store.ts';
import type { LocalWorkflow } from './engine.ts';

export type RedriveStatus = 'delivered' | 'failed' | 'already_delivered' | 'not_found' | 'not_due' | 'error';

export interface RedriveResult {
  conversation_id: string;
  status: RedriveStatus;
  execution_name?: string;
  envelope?: FailedDeliveryEnvelope;
  error?: string;
}

/**
 * Local redelivery: the automatic schedule (a poller inside the running gateway) and operator redrives both run
 * statemachine/redelivery.asl.json on the local engine, one conversation at a time (a per-conversation lock), so
 * two redrives of one conversation deliver once.
 */
export class LocalRedelivery {
  private readonly locks = new Map<string, Promise<unknown>>();
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<RedriveResult[]> | null = null;

  constructor(
    private readonly store: LocalFailedDeliveryStore,
    private readonly workflow: LocalWorkflow,
    private readonly executions: ExecutionStore,
  ) {}

  private schedule(): readonly number[] {
    return settings().redeliverySchedule;
  }

  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }

  /** One redelivery attempt of one conversation (`via` schedule only runs when it is due). */
  attempt(conversationId: string, via: 'schedule' | 'redrive'): Promise<RedriveResult> {
    return this.locked(conversationId, async () => {
      const envelope = await this.store.get(conversationId);
      if (!envelope) return { conversation_id: conversationId, status: 'not_found' };
      if (envelope.state === 'delivered')
        return { conversation_id: conversationId, status: 'already_delivered', envelope };
      if (via === 'schedule' && !isDue(envelope, new Date()))
        return { conversation_id: conversationId, status: 'not_due', envelope };
      const schedule = this.schedule();
      const name = redeliveryExecutionName(envelope, randomBytes(3).toString('hex'));
      const execution = await this.workflow.run(
        { conversation: envelope.conversation, redelivery: redeliveryContext(envelope, via, schedule) },
        name,
      );
      await this.executions.save(conversationId, execution);
      if (execution.status !== 'SUCCEEDED') {
        return {
          conversation_id: conversationId,
          status: 'error',
          execution_name: name,
          error: `${execution.error}: ${execution.cause ?? ''}`,
        };
      }
      const settled = settleRedelivery(envelope, execution.output, via, new Date(), schedule);
      if (!settled.ok)
        return { conversation_id: conversationId, status: 'error', execution_name: name, error: settled.error };
      const { updated } = settled;
      await this.store.put(updated);
      return {
        conversation_id: conversationId,
        status: updated.state === 'delivered' ? 'delivered' : 'failed',
        execution_name: name,
        envelope: updated,
      };
    });
  }

  /** Redeliver every pending envelope that is due. Sweeps never overlap. */
  runDue(): Promise<RedriveResult[]> {
    if (this.sweeping) return this.sweeping;
    this.sweeping = (async () => {
      const now = new Date();
      const due = (await this.store.list()).filter((e) => isDue(e, now));
      const results: RedriveResult[] = [];
      for (const envelope of due) results.push(await this.attempt(envelope.conversation_id, 'schedule'));
      return results;
    })().finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  start(pollMs: number, onResult?: (result: RedriveResult) => void): void {
    if (pollMs <= 0 || this.timer) return;
    this.timer = setInterval(() => {
      this.runDue()
        .then((results) => {
          for (const r of results) onResult?.(r);
        })
        .catch((error: Error) => console.error(`webhook-gateway: redelivery sweep failed: ${error.message}`));
    }, pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sweeping;
    await Promise.all([...this.locks.values()]);
  }
}
