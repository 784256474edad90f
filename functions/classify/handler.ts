import type { ConversationState } from '../domain/conversation.ts';
import { withClassification } from '../domain/lifecycle.ts';
import { logEvent } from '../shared/events.ts';
import { stageHandler } from '../shared/powertools.ts';

/** Classify: pick webhook_type (the request's own wins) and record why; the delivery is then queued. */
export const handler = stageHandler('Classify', async (state: ConversationState): Promise<ConversationState> => {
  const record = withClassification(state.conversation, new Date());
  logEvent('WEBHOOK_RESPONSE_CLASSIFIED', record, {
    classification_reason: record.webhook_context.classification_reason,
  });
  logEvent('WEBHOOK_OUTBOUND_QUEUED', record, { delivery_id: record.webhook_context.delivery_id });
  return { ...state, conversation: record };
});
