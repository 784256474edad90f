import { describe, expect, it } from 'vitest';
import { redeliveryEventDetail } from '../../../local/cli/shared.ts';
import { pendingEnvelope } from '../../support/aws-fixtures.ts';

/** The line `npm start` prints for each redelivery of the schedule (local/cli/main.ts, onRedelivery). */
describe('the running gateway’s redelivery line', () => {
  it('a run that did not succeed says why, and when it comes back', () => {
    // Before: `error (next …)`, nothing of why (a Lambda that would not run Deliver, a failed execution).
    const envelope = pendingEnvelope(undefined, undefined, {
      failed_runs: 1,
      next_due_at: '2026-12-04T22:10:00.000Z',
    });
    const error = 'Lambda did not run Deliver (Lambda.TooManyRequestsException: Rate Exceeded.); no attempt was made';
    expect(redeliveryEventDetail({ conversation_id: 'c', status: 'error', error, envelope })).toBe(
      `error: ${error} (next 2026-12-04T22:10:00.000Z)`,
    );
  });

  it('a delivered one says only that', () => {
    expect(redeliveryEventDetail({ conversation_id: 'c', status: 'delivered' })).toBe('delivered');
  });
});
