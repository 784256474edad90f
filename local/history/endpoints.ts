import type { WebhookType } from '../../functions/domain/conversation.ts';
import { type BreakerPolicy, type EndpointView, endpointView } from '../../functions/domain/endpoints.ts';
import { type FailedDeliveryEnvelope, owedBy } from '../../functions/domain/failed-delivery.ts';
import type { EndpointStore } from '../../functions/shared/endpoint-store.ts';

/** Deliveries still owed per webhook type: pending or dead envelopes that owe a delivery (not only an export). */
function queuedByType(envelopes: readonly FailedDeliveryEnvelope[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of envelopes)
    if (e.state !== 'settled' && owedBy(e) === 'delivery') counts[e.webhook_type] = (counts[e.webhook_type] ?? 0) + 1;
  return counts;
}

/** Every receiver as `endpoints list` and the console's Endpoints page show it (the local read model). */
export async function endpointViews(
  store: EndpointStore,
  envelopes: readonly FailedDeliveryEnvelope[],
  deployedUrls: Record<WebhookType, string | null>,
  policy: BreakerPolicy,
): Promise<EndpointView[]> {
  const queued = queuedByType(envelopes);
  return (await store.list()).map((e) =>
    endpointView(e, deployedUrls[e.webhook_type], policy, queued[e.webhook_type] ?? 0),
  );
}
