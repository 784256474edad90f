import type { ConversationRecord } from '../../functions/domain/conversation.ts';
import type { ExecutionInput } from '../../functions/domain/gateway-contract.ts';
import { type IdSource, startConversation } from '../../functions/domain/intake.ts';
import { withAgentAnswer, withClassification, withDeliveryAttempt } from '../../functions/domain/lifecycle.ts';

/** The README's example request (docs/contract.md#post-webhook). */
export const SEED_REQUEST = {
  query: 'What are the top 5 deals closing this quarter?',
  source_system: 'testing_system',
  source_process: 'phase3_validation',
  timestamp: '2025-08-13T10:30:45Z',
} as const;

export const RECEIVED_AT = '2025-08-13T10:30:45.000Z';
export const DELIVERY_ID = 'delivery_0b6c1a7e-1111-4222-8333-444455556666';

export function executionInput(body: unknown, overrides: Partial<ExecutionInput> = {}): ExecutionInput {
  return {
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'content-type': 'application/json', 'user-agent': 'vitest-agent/1.0' },
    request_id: 'req-123',
    source_ip: '203.0.113.7',
    received_at: RECEIVED_AT,
    ...overrides,
  };
}

/** A fresh, validated record built through the real Validate step. Throws if the request is rejected. */
export function startedRecord(
  request: Record<string, unknown> = { ...SEED_REQUEST },
  options: { input?: Partial<ExecutionInput>; ids?: Partial<IdSource> & { deliveryId?: string } } = {},
): ConversationRecord {
  const { deliveryId = DELIVERY_ID, ...ids } = options.ids ?? {};
  const result = startConversation(executionInput(request, options.input), { suffix: 'abc123', ...ids });
  if (!result.valid) throw new Error(`fixture request rejected: ${result.rejection}`);
  // A fixed delivery id, so that fixtures compare equal (the derived one is tested in delivery-id.test.ts).
  const record = result.conversation;
  return { ...record, webhook_context: { ...record.webhook_context, delivery_id: deliveryId } };
}

/** `started` answered ('Three deals.'), classified, and delivered at its first attempt, at `now`. */
export function deliveredRecord(started: ConversationRecord = startedRecord(), now = new Date()): ConversationRecord {
  const answered = withClassification(withAgentAnswer(started, { response: 'Three deals.' }, 5, now), now);
  const attempt = {
    attempt: 1,
    at: now.toISOString(),
    duration_ms: 40,
    outcome: 'delivered',
    status_code: 200,
  } as const;
  return withDeliveryAttempt(answered, attempt, 'https://hooks.example.com/deals', 'delivered');
}
