/**
 * A test delivery (docs/contract.md#test-deliveries): one delivery of the contract's shape, marked as a test and
 * signed as Deliver signs, POSTed once to a receiver, with its answer. `endpoints test <type>` (locally and with --aws)
 * and the console's Send test button send it; nothing keeps it (no conversation, no retry, no attempt log, no health).
 */
import { randomUUID } from 'node:crypto';
import type { DeliveryAttempt, WebhookType } from '../domain/conversation.ts';
import { buildTestDeliveryPayload, USER_AGENT, unsafeDeliveryUrl } from '../domain/delivery.ts';
import { shownDeliveryUrl } from '../domain/delivery-url.ts';
import { signOutbound } from '../domain/signatures.ts';
import { type PostResult, postJson } from './http-delivery.ts';

/** The header that marks a test delivery, beside `"test": true` in its body. */
const TEST_HEADER = { 'webhook-test': 'true' };

export interface TestDeliveryResult {
  webhook_type: WebhookType;
  url: string;
  delivery_id: string;
  /** How it was signed, in words: `signed with one secret`, `unsigned`, or unsigned because the secrets are unknown. */
  signing: string;
  delivered: boolean;
  attempt: DeliveryAttempt;
  response: PostResult['response'];
}

/** Where a test delivery goes, or why none can be sent there (no URL, or one Deliver would not use). */
export function testDeliveryTarget(type: WebhookType, url: string | null): { url: string } | { refused: string } {
  if (!url) return { refused: `${type} has no receiver URL: endpoints set ${type} --url https://…` };
  const unsafe = unsafeDeliveryUrl(url);
  return unsafe ? { refused: `${type}: ${unsafe}` } : { url };
}

/** POST the test delivery to `url` (a testDeliveryTarget), signed with `secrets` (null: unknown, sent unsigned). */
export async function sendTestDelivery(
  type: WebhookType,
  url: string,
  secrets: readonly string[] | null,
  timeoutMs: number,
): Promise<TestDeliveryResult> {
  const now = new Date();
  const deliveryId = randomUUID();
  const body = JSON.stringify(buildTestDeliveryPayload(type, deliveryId, now));
  const signed = secrets && secrets.length > 0 ? signOutbound(secrets, deliveryId, now, body) : null;
  const headers = { 'user-agent': USER_AGENT, ...(signed ?? { 'webhook-id': deliveryId }), ...TEST_HEADER };
  const { attempt, response } = await postJson(url, body, headers, 1, timeoutMs);
  const signing =
    secrets === null
      ? 'unsigned: its signing secrets are not known here'
      : secrets.length === 0
        ? 'unsigned'
        : `signed with ${secrets.length === 1 ? 'one secret' : `${secrets.length} secrets`}`;
  return {
    webhook_type: type,
    url: shownDeliveryUrl(url),
    delivery_id: deliveryId,
    signing,
    delivered: attempt.outcome === 'delivered',
    attempt,
    response,
  };
}
