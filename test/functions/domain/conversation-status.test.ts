import { describe, expect, it } from 'vitest';
import {
  authorizeStatusRequest,
  runningStatus,
  STATUS_TTL_SECONDS,
  type StatusRequest,
  statusResult,
  statusSigningPayload,
} from '../../../functions/domain/conversation-status.ts';
import { OPEN_POLICY, signOutbound } from '../../../functions/domain/signatures.ts';

const ID = 'webhook_20261129_123213_testing_phase3valid_a0ci3ntgci';
const SECRET = `whsec_${Buffer.from('a-secret-of-thirty-two-bytes!!!!').toString('base64')}`;
const NOW = new Date('2026-11-29T12:35:00Z');
const request = (overrides: Partial<StatusRequest> = {}): StatusRequest => ({
  conversation_id: ID,
  source_system: 'testing_system',
  headers: {},
  api_key_id: null,
  ...overrides,
});

describe('who may read a status', () => {
  it('an unsigned source (no secret) names itself, in any spelling: its canonical form', () => {
    expect(authorizeStatusRequest(request({ source_system: 'Testing.System' }), OPEN_POLICY)).toEqual({
      ok: true,
      source: 'testing_system',
    });
  });

  it('no source named → 400; a malformed one → 400; an id that cannot exist → 404', () => {
    const missing = authorizeStatusRequest(request({ source_system: null }), OPEN_POLICY);
    expect(missing).toMatchObject({ ok: false, result: { statusCode: 400 } });
    expect(authorizeStatusRequest(request({ source_system: '../etc' }), OPEN_POLICY)).toMatchObject({
      result: { statusCode: 400 },
    });
    // Said in the words of a request's own error: ASCII letters, and which character breaks the rule.
    expect(authorizeStatusRequest(request({ source_system: 'büro' }), OPEN_POLICY)).toMatchObject({
      result: {
        statusCode: 400,
        body: {
          error: {
            details: [
              {
                field: 'source_system',
                message: expect.stringMatching(
                  /ASCII letters .*at most 64 characters\): character 2 is 'ü' \(U\+00FC\)$/,
                ),
              },
            ],
          },
        },
      },
    });
    expect(authorizeStatusRequest(request({ conversation_id: '../../x' }), OPEN_POLICY)).toMatchObject({
      result: { statusCode: 404, body: { error: { code: 'NOT_FOUND' } } },
    });
    // docs/contract.md: an id of no conversation's shape is 404 before source_system is looked at.
    // Saying what is wrong with the id, naming no source_system (none was sent).
    const notAnId = authorizeStatusRequest(request({ conversation_id: 'abc', source_system: null }), OPEN_POLICY);
    expect(notAnId).toMatchObject({ result: { statusCode: 404, body: { error: { code: 'NOT_FOUND' } } } });
    const message = (notAnId as { result: { body: { error: { message: string } } } }).result.body.error.message;
    expect(message).toMatch(/^No conversation "abc": not a conversation id of this gateway/);
    expect(message).not.toContain('source_system');
  });

  it('a source with a secret signs `GET /conversations/<id>`: a signature over anything else is refused', () => {
    const policy = { secrets: { testing_system: [SECRET] }, requireSignature: false };
    const sign = (payload: string) => signOutbound(SECRET, 'msg_1', new Date(), payload) as never;
    expect(authorizeStatusRequest(request(), policy)).toMatchObject({ result: { statusCode: 401 } });
    expect(authorizeStatusRequest(request({ headers: sign(statusSigningPayload(ID)) }), policy)).toEqual({
      ok: true,
      source: 'testing_system',
    });
    expect(authorizeStatusRequest(request({ headers: sign('') }), policy)).toMatchObject({
      result: { statusCode: 401 },
    });
    expect(
      authorizeStatusRequest(request({ headers: sign(statusSigningPayload(`${ID.slice(0, -1)}x`)) }), policy),
    ).toMatchObject({ result: { statusCode: 401 } });
  });

  it('REQUIRE_SIGNED_WEBHOOKS: a source without a secret cannot read at all', () => {
    expect(authorizeStatusRequest(request(), { secrets: {}, requireSignature: true })).toMatchObject({
      result: { statusCode: 401 },
    });
  });

  it("an API key may read only as its own source: another's, or one no source owns → 403 SOURCE_MISMATCH", () => {
    const keys = { k1: 'testing_system', k2: 'other_system' };
    expect(authorizeStatusRequest(request({ api_key_id: 'k1' }), OPEN_POLICY, keys)).toMatchObject({ ok: true });
    for (const id of ['k2', 'k3'])
      expect(authorizeStatusRequest(request({ api_key_id: id }), OPEN_POLICY, keys)).toMatchObject({
        result: { statusCode: 403, body: { error: { code: 'SOURCE_MISMATCH' } } },
      });
  });
});

describe('what a status answers', () => {
  const running = runningStatus(ID, 'testing_system', new Date('2026-11-29T12:32:14Z'));

  it('running: 200, status running, come back in 2 s, never cached', () => {
    expect(statusResult(running, ID, 'testing_system', NOW)).toEqual({
      statusCode: 200,
      body: { success: true, conversation_id: ID, status: 'running', accepted_at: '2026-11-29T12:32:14.000Z' },
      headers: { 'cache-control': 'no-store', 'retry-after': '2' },
    });
  });

  it('completed: the synchronous 200 body with status; failed: the error body with status', () => {
    const body = {
      success: true,
      conversation_id: ID,
      response: { content: 'hi' },
      tracking: { webhook_type: 'general' },
    };
    const done = { ...running, status: 'completed' as const, body: JSON.stringify(body), completed_at: 'T' };
    expect(statusResult(done, ID, 'testing_system', NOW).body).toEqual({
      ...body,
      status: 'completed',
      completed_at: 'T',
    });
    const error = { success: false, error: { code: 'TIMEOUT', message: 'm', conversation_id: ID } };
    const failed = { ...running, status: 'failed' as const, body: JSON.stringify(error), completed_at: 'T' };
    expect(statusResult(failed, ID, 'testing_system', NOW).body).toMatchObject({ ...error, status: 'failed' });
  });

  it('still running 7 minutes after it was accepted (past the 5-minute run): failed, with the error a synchronous call would have got', () => {
    const accepted = Date.parse(running.accepted_at);
    const before = statusResult(running, ID, 'testing_system', new Date(accepted + 419_000));
    expect(before.body).toMatchObject({ status: 'running' });
    const lost = statusResult(running, ID, 'testing_system', new Date(accepted + 420_000));
    expect(lost).toEqual({
      statusCode: 200,
      body: {
        success: false,
        error: {
          code: 'INTERNAL_ERROR',
          message: expect.stringMatching(
            /^The conversation workflow failed: its run ended without recording an outcome/,
          ),
          conversation_id: ID,
        },
        conversation_id: ID,
        status: 'failed',
        completed_at: '2026-11-29T12:39:14.000Z',
      },
      headers: { 'cache-control': 'no-store' },
    });
  });

  it('started again by local crash recovery (restarted_at): its 7 minutes count from then, and a restarted_at that is not a time is ignored', () => {
    const accepted = Date.parse(running.accepted_at);
    const restarted = { ...running, restarted_at: new Date(accepted + 600_000).toISOString() };
    expect(statusResult(restarted, ID, 'testing_system', new Date(accepted + 601_000)).body).toEqual({
      success: true,
      conversation_id: ID,
      status: 'running',
      accepted_at: running.accepted_at,
    });
    const lost = statusResult(restarted, ID, 'testing_system', new Date(accepted + 1_020_000)).body;
    expect(lost).toMatchObject({ status: 'failed', completed_at: new Date(accepted + 1_020_000).toISOString() });
    const garbled = { ...running, restarted_at: 'not a time' };
    expect(statusResult(garbled, ID, 'testing_system', new Date(accepted + 420_000)).body).toMatchObject({
      status: 'failed',
    });
  });

  it("another source's record, no record and an expired one all answer the same 404", () => {
    const other = statusResult(running, ID, 'other_system', NOW);
    const none = statusResult(null, ID, 'testing_system', NOW);
    const later = new Date(NOW.getTime() + (STATUS_TTL_SECONDS + 60) * 1000);
    const expired = statusResult(running, ID, 'testing_system', later);
    // What other_system hears of testing_system's id is what it hears of an id that does not exist.
    expect(other).toEqual(statusResult(null, ID, 'other_system', NOW));
    expect(expired).toEqual(none);
    expect(none.statusCode).toBe(404);
    // The source named is the caller's own, never another's.
    expect((none.body as { error: { message: string } }).error.message).toContain(
      `No asynchronous conversation ${ID} of source_system testing_system`,
    );
  });
});
