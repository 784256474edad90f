/**
 * `endpoints test <type>` (docs/operations.md#receivers), locally and with --aws: one signed test delivery to the
 * type's receiver (functions/shared/test-delivery.ts) and what it answered. Its output is all that is kept of it.
 */
import type { WebhookType } from '../../functions/domain/conversation.ts';
import { sendTestDelivery, testDeliveryTarget } from '../../functions/shared/test-delivery.ts';
import { CliError, out, outJson } from './shared.ts';
import { cell, printable } from './table.ts';

/**
 * Send it to `url` with `secrets` (null: not known here) and print the answer; exit 0 for a 2xx, else 1. `notTaken`:
 * what to do when it was not taken, where the caller knows better than "fix the receiver".
 */
export async function printTestDelivery(
  type: WebhookType,
  url: string | null,
  secrets: readonly string[] | null,
  options: { json: boolean; timeoutMs: number; notTaken?: string },
): Promise<number> {
  const target = testDeliveryTarget(type, url);
  if ('refused' in target) throw new CliError(target.refused);
  const result = await sendTestDelivery(type, target.url, secrets, options.timeoutMs);
  const { attempt, response } = result;
  if (options.json) {
    outJson(result);
    return result.delivered ? 0 : 1;
  }
  const answer = attempt.status_code ? `HTTP ${attempt.status_code}` : (attempt.error ?? 'no answer');
  out(
    `${type}: test delivery ${result.delivery_id} to ${result.url} (${result.signing}) → ${answer} in ${attempt.duration_ms} ms`,
  );
  // The receiver's text, as `conversations show` prints it: raw, an escape sequence in it would reach the terminal.
  if (response?.body) out(`  its answer: ${printable(cell(response.body, 300))}`);
  out(
    result.delivered
      ? '  the receiver took it (2xx). Nothing was kept: it is no conversation, and not in the attempt log.'
      : `  not taken; a test delivery is not retried: ${options.notTaken ?? 'fix the receiver'} and run this again.`,
  );
  return result.delivered ? 0 : 1;
}
