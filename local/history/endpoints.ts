import { WEBHOOK_TYPES, type WebhookType } from '../../functions/domain/conversation.ts';
import { type BreakerPolicy, type EndpointView, endpointView } from '../../functions/domain/endpoints.ts';
import { type FailedDeliveryEnvelope, owedBy } from '../../functions/domain/failed-delivery.ts';
import type { SecretsBySource } from '../../functions/domain/signatures.ts';
import { type EndpointStore, receiverFileUnreadable } from '../../functions/shared/endpoint-store.ts';
import { damagedFileMessage } from '../store/damaged-files.ts';

/** What the queued counts look at: an envelope, or its head (local/store/failed-delivery-store.ts). */
type QueueableEnvelope = Pick<FailedDeliveryEnvelope, 'state' | 'owed' | 'webhook_type'>;

/** Deliveries still owed per webhook type: pending or dead envelopes that owe a delivery (not only an export). */
function queuedByType(envelopes: readonly QueueableEnvelope[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of envelopes)
    if (e.state !== 'settled' && owedBy(e) === 'delivery') counts[e.webhook_type] = (counts[e.webhook_type] ?? 0) + 1;
  return counts;
}

/** A receiver whose file is damaged (docs/operations.md, "After a crash"): the file and what to do, and its queue. */
export interface UnreadableReceiver {
  webhook_type: WebhookType;
  unreadable: string;
  queued: number;
}

/**
 * Every receiver as the console's Endpoints page shows it: each one's view, or, for one whose file is damaged, that
 * file and what to do (the others are shown all the same; `endpoints list` shows them, and names the file on stderr).
 * `secrets`: the delivery secrets by type, to say how each receiver's deliveries are signed; null when not read.
 */
export async function receiverRows(
  store: EndpointStore,
  envelopes: readonly QueueableEnvelope[],
  deployedUrls: Record<WebhookType, string | null>,
  policy: BreakerPolicy,
  secrets: SecretsBySource | null,
): Promise<(EndpointView | UnreadableReceiver)[]> {
  const queued = queuedByType(envelopes);
  return Promise.all(
    WEBHOOK_TYPES.map(async (type) => {
      const count = queued[type] ?? 0;
      try {
        return endpointView(await store.get(type), deployedUrls[type], policy, count, secrets);
      } catch (error) {
        const damaged = receiverFileUnreadable(error);
        if (damaged === null) throw error;
        return { webhook_type: type, unreadable: damagedFileMessage(damaged), queued: count };
      }
    }),
  );
}

/** A receiver whose deliveries wait for an operator (paused, or disabled), and since when (stateSince). */
export type HeldReceiver = Pick<EndpointView, 'webhook_type' | 'paused_at' | 'disabled_at'> & {
  status: 'paused' | 'disabled';
};

/**
 * What holds each receiver's deliveries, by webhook type: an operator, until it is resumed (`held`: paused, disabled);
 * or its last Retry-After, until the time it gave (`waits`: only those not over; gateDelivery in
 * functions/domain/endpoints.ts).
 */
export interface ReceiverHolds {
  held: ReadonlyMap<string, HeldReceiver>;
  waits: ReadonlyMap<string, string>;
}

export const NO_HOLDS: ReceiverHolds = { held: new Map(), waits: new Map() };

export function receiverHolds(receivers: readonly (EndpointView | UnreadableReceiver)[]): ReceiverHolds {
  const held = new Map<string, HeldReceiver>();
  const waits = new Map<string, string>();
  for (const r of receivers) {
    if (!('status' in r)) continue;
    if (r.status === 'paused' || r.status === 'disabled') held.set(r.webhook_type, { ...r, status: r.status });
    else if (r.retry_after_until) waits.set(r.webhook_type, r.retry_after_until);
  }
  return { held, waits };
}

/**
 * When a listed envelope's next attempt is: its next_due_at, except for a delivery owed to a paused or disabled
 * receiver, which no schedule tries (however overdue next_due_at looks) until an operator resumes it, and one whose
 * receiver's Retry-After asked for nothing until after next_due_at, which is tried then.
 */
export function nextAttemptLabel(
  e: QueueableEnvelope & Pick<FailedDeliveryEnvelope, 'next_due_at'>,
  { held, waits }: ReceiverHolds,
): string {
  const owed = e.state === 'pending' && owedBy(e) === 'delivery';
  const hold = owed ? held.get(e.webhook_type) : undefined;
  if (hold) return `held: ${hold.status}, until resumed`;
  const wait = owed ? waits.get(e.webhook_type) : undefined;
  // Both ISO 8601 UTC: compared as text.
  if (wait && (!e.next_due_at || wait > e.next_due_at)) return `held: Retry-After, until ${wait}`;
  return e.next_due_at ?? '-';
}
