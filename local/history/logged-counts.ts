import type { LoggedAttempt } from '../../functions/domain/attempt-log.ts';
import { type FailedDeliveryEnvelope, withLoggedAttempts } from '../../functions/domain/failed-delivery.ts';
import { mapConcurrently } from '../store/json-files.ts';

/** An envelope as a list shows it: whole (`deliveries list`), or its head (the console's table). */
type Listed = Pick<FailedDeliveryEnvelope, 'conversation_id' | 'attempts'> & {
  conversation?: FailedDeliveryEnvelope['conversation'];
};

/**
 * The envelopes a list shows, each with the tries of its conversation that only the attempt log has
 * (withLoggedAttempts: those before Lambda refused a retry of the workflow's Deliver, and one whose Deliver Lambda
 * failed after it ran), so that `deliveries list` (local and --aws), GET /local/deliveries and the console's table count
 * what the next redelivery numbers its attempt after, before it runs. One read of the log per envelope shown (the
 * list's limit), none per envelope stored. An envelope whose log cannot be read keeps its own attempts, and is named in
 * `unread` with why (docs/operations.md, "Failed deliveries").
 */
export async function withLoggedCounts<E extends Listed>(
  envelopes: readonly E[],
  logged: (conversationId: string) => Promise<readonly LoggedAttempt[]>,
  concurrency = 8,
): Promise<{ envelopes: E[]; unread: { conversation_id: string; error: string }[] }> {
  const unread: { conversation_id: string; error: string }[] = [];
  const counted = await mapConcurrently([...envelopes], concurrency, async (envelope) => {
    try {
      return withLoggedAttempts(envelope, await logged(envelope.conversation_id));
    } catch (error) {
      unread.push({
        conversation_id: envelope.conversation_id,
        error: `${(error as Error).name}: ${(error as Error).message}`,
      });
      return envelope;
    }
  });
  return { envelopes: counted, unread };
}
