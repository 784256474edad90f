/**
 * `endpoints test <type>` (docs/operations.md#receivers), locally and with --aws: one signed test delivery to the
 * type's receiver, as Deliver would sign and send it, and the receiver's answer. It is no conversation: not retried,
 * not queued, not in the attempt log nor in the receiver's health; its output is all that is kept of it.
 */
import { randomUUID } from 'node:crypto';
import type { WebhookType } from '../../functions/domain/conversation.ts';
import { buildTestDeliveryPayload, USER_AGENT, unsafeDeliveryUrl } from '../../functions/domain/delivery.ts';
import { signOutbound } from '../../functions/domain/signatures.ts';
import { postJson } from '../../functions/shared/http-delivery.ts';
import { CliError, out } from './shared.ts';
import { cell } from './table.ts';

/** The header that marks a test delivery (docs/contract.md#test-deliveries), beside `"test": true` in its body. */
const TEST_HEADER = { 'webhook-test': 'true' };

/**
 * POST the test delivery to `url`, signed with `secrets` (null: not known here, sent unsigned and said so), and print
 * what the receiver answered; exit 0 for a 2xx, else 1.
 */
export async function sendTestDelivery(
  type: WebhookType,
  url: string | null,
  secrets: readonly string[] | null,
  options: { json: boolean; timeoutMs: number },
): Promise<number> {
  if (!url) throw new CliError(`${type} has no receiver URL: endpoints set ${type} --url https://…`);
  const unsafe = unsafeDeliveryUrl(url);
  if (unsafe) throw new CliError(`${type}: ${unsafe}`);
  const now = new Date();
  const deliveryId = randomUUID();
  const body = JSON.stringify(buildTestDeliveryPayload(type, deliveryId, now));
  const signed = secrets && secrets.length > 0 ? signOutbound(secrets, deliveryId, now, body) : null;
  const headers = { 'user-agent': USER_AGENT, ...(signed ?? { 'webhook-id': deliveryId }), ...TEST_HEADER };
  const { attempt, response } = await postJson(url, body, headers, 1, options.timeoutMs);
  const delivered = attempt.outcome === 'delivered';
  const signing =
    secrets === null
      ? 'unsigned: its signing secrets are not known here'
      : secrets.length === 0
        ? 'unsigned'
        : `signed with ${secrets.length === 1 ? 'one secret' : `${secrets.length} secrets`}`;
  if (options.json) {
    out(
      JSON.stringify(
        { webhook_type: type, url, delivery_id: deliveryId, signing, delivered, attempt, response },
        null,
        2,
      ),
    );
    return delivered ? 0 : 1;
  }
  const answer = attempt.status_code ? `HTTP ${attempt.status_code}` : (attempt.error ?? 'no answer');
  out(`${type}: test delivery ${deliveryId} to ${url} (${signing}) → ${answer} in ${attempt.duration_ms} ms`);
  if (response?.body) out(`  its answer: ${cell(response.body, 300)}`);
  out(
    delivered
      ? '  the receiver took it (2xx). Nothing was kept: it is no conversation, and not in the attempt log.'
      : '  not taken; a test delivery is not retried: fix the receiver and run this again.',
  );
  return delivered ? 0 : 1;
}
