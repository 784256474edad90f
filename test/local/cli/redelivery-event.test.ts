import { describe, expect, it } from 'vitest';
import { redeliveryEventDetail, resultDetail } from '../../../local/cli/shared.ts';
import { formatTimeline } from '../../../local/history/timeline.ts';
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

/**
 * What a receiver answered reaches the operator's terminal through a redrive's or a resend's line and the timeline of
 * `conversations show`: each written out as `conversations show` writes the answer itself (`\u001b`), never raw.
 * Before, an answer `<b>\u001b[31mGone</b>` recoloured the terminal (and a `\u001b]0;…\u0007` retitled it).
 */
describe("a receiver's answer in the commands' lines", () => {
  const ANSWER = 'HTTP 410: <b>\u001b[31mGone\u001b]0;owned\u0007</b>\r\nnext';
  const SHOWN = 'HTTP 410: <b>\\u001b[31mGone\\u001b]0;owned\\u0007</b>\\r\\nnext';

  it('a failed redrive or resend says why, printable', () => {
    expect(resultDetail({ conversation_id: 'c', status: 'failed', error: ANSWER })).toBe(`: ${SHOWN}`);
    expect(resultDetail({ conversation_id: 'c', status: 'error', error: ANSWER })).toBe(`: ${SHOWN}`);
  });

  it("the timeline's caught and failed states say their error, printable", () => {
    const at = Date.parse('2026-12-05T00:35:21.720Z');
    const text = formatTimeline({
      execution_name: 'e',
      state_machine: 'conversation',
      status: 'FAILED',
      started_at: new Date(at).toISOString(),
      stopped_at: new Date(at + 30).toISOString(),
      input: {},
      error: `DeliveryPermanentError: ${ANSWER}`,
      events: [
        { type: 'StateEntered', timestamp: at, state: 'Deliver' },
        { type: 'StateFailed', timestamp: at + 20, error: 'DeliveryPermanentError', cause: ANSWER },
      ],
    });
    for (const raw of ['\u001b', '\u0007', '\r']) expect(text).not.toContain(raw);
    expect(text).toContain(`failed: DeliveryPermanentError: ${SHOWN}`);
    expect(text.split('\n')[0]).toContain(`— DeliveryPermanentError: ${SHOWN}`);
  });
});
