import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DeliverDeps } from '../../../functions/deliver/handler.ts';
import type { ConversationState, DeliveryAttempt } from '../../../functions/domain/conversation.ts';
import { type Endpoint, NEW_HEALTH } from '../../../functions/domain/endpoints.ts';
import { withAgentAnswer, withClassification } from '../../../functions/domain/lifecycle.ts';
import { DELIVERY_DEFERRED_EVENT } from '../../../functions/domain/observability.ts';
import { limitedClientSettings } from '../../../functions/shared/clients/request-limits.ts';
import { DynamoEndpointStore } from '../../../functions/shared/endpoint-store.ts';
import type { PostResult } from '../../../functions/shared/http-delivery.ts';
import type { RateClock } from '../../../functions/shared/receivers.ts';
import { startedRecord } from '../../support/fixtures.ts';
import { captureJsonLines } from '../../support/log-capture.ts';
import { type SilentEndpoint, startSilentEndpoint } from '../../support/servers.ts';
import { settledAndRead } from '../../support/settled-within.ts';

/**
 * Deliver with a caller waiting (docs/deploy.md, "Timeouts"): its AWS calls — the receivers' store, the outbound
 * rate, the signing secrets, the attempt log — end by deliver_by, not only by the clients' own limits (a stalled
 * call fails after ≈ 6.2 s, functions/shared/clients/request-limits.ts). Real clients and sockets against an
 * endpoint that never answers; the receiver is a fake POST that answers at once. Unless a test says otherwise,
 * Deliver reads the time left on a clock that stands still at the moment the state was made, so that its first
 * decision (an attempt) does not depend on how busy the machine is; the cut is the real signal at deliver_by, and a cut
 * call shows as an AbortError or a `deadline` hold (the clients' own limits fail with a TimeoutError, after ≈ 6.2 s). A
 * run still going at BOUND_MS, short of those limits, is reported as such instead of being waited for.
 */
const TARGET = 'https://hooks.example.com/deals';
/**
 * How long after the state was made its calls are cut (deliver_by, a real signal), as Validate's test gives its own:
 * with 800 ms, a loaded run of test/functions (load 15-23) had not sent the attempt log's PutItem to the stalled
 * endpoint when the cut came (only the UpdateItem had reached it), and the next test found it there. Under a try's 2 s
 * (functions/shared/clients/request-limits.ts): a longer wait sends each call's second try too.
 */
const DELIVER_IN_MS = 1_500;
const BOUND_MS = 5_000;

let aws: SilentEndpoint;
let deliver: typeof import('../../../functions/deliver/handler.ts').deliver;
let logs: ReturnType<typeof captureJsonLines>;
let posts: number;

beforeAll(async () => {
  aws = await startSilentEndpoint();
  process.env.AWS_ENDPOINT_URL_DYNAMODB = aws.url;
  process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = aws.url;
  ({ deliver } = await import('../../../functions/deliver/handler.ts'));
  // Warm, as a container is after its first conversation: the DynamoDB and Secrets Manager SDKs loaded (on first
  // use). On a busy machine loading them takes longer than the slack each test allows past deliver_by.
  await (await import('../../../functions/shared/clients/dynamodb.ts')).dynamoDb();
  await import('../../../functions/shared/clients/secrets-manager-sdk.ts');
});
afterAll(async () => {
  await aws.close();
  delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
  delete process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER;
});
beforeEach(() => {
  aws.requests.length = 0;
  posts = 0;
  process.env.DEAL_ANALYSIS_WEBHOOK_URL = TARGET;
  logs = captureJsonLines();
});
afterEach(() => {
  logs.restore();
  for (const name of ['DEAL_ANALYSIS_WEBHOOK_URL', 'DELIVERIES_TABLE_NAME', 'DELIVERY_SIGNING_SECRETS_ARN'])
    delete process.env[name];
});

/** Deliver's clock: the moment the state was made (dueSoon); nothing here waits for the receiver's rate. */
let madeAt = 0;
const standingClock: RateClock = { now: () => madeAt, sleep: async () => {} };
const realClock: RateClock = { now: Date.now, sleep: async () => {} };

/** A receiver that answers 200 at once. */
const post = async (_u: string, _b: string, _h: Record<string, string>, attempt: number): Promise<PostResult> => {
  posts += 1;
  const done: DeliveryAttempt = {
    attempt,
    at: new Date().toISOString(),
    duration_ms: 5,
    outcome: 'delivered',
    status_code: 200,
  };
  return { attempt: done, response: { status: 200, headers: {}, body: 'ok', body_truncated: false } };
};

/** A synchronous conversation whose deliveries must end DELIVER_IN_MS from now. */
function dueSoon(): ConversationState {
  madeAt = Date.now();
  const now = new Date(madeAt);
  const deliverBy = now.getTime() + DELIVER_IN_MS;
  return {
    conversation: withClassification(withAgentAnswer(startedRecord(), { response: 'top deals' }, 40, now), now),
    budget: {
      agent_seconds: 20,
      deliver_by: new Date(deliverBy).toISOString(),
      answer_by: new Date(deliverBy + 3_000).toISOString(),
    },
  };
}

/** The receivers' store on the silent DynamoDB; `endpoint`: its read answers this at once (the rest stalls). */
function silentStore(endpoint?: Partial<Endpoint['config']>) {
  const store = new DynamoEndpointStore(
    'deliveries',
    new DynamoDBClient({ ...limitedClientSettings(), endpoint: aws.url }),
    { cacheTtlMs: 0 },
  );
  if (endpoint)
    store.get = async (type) => ({ webhook_type: type, config: endpoint, health: { ...NEW_HEALTH } }) as Endpoint;
  return store;
}

/**
 * How Deliver ended (a DeliveryDeferredError's hold parsed), once the stalled endpoint has read what it sent; one still
 * running after BOUND_MS is not waited for.
 */
async function settled<T>(run: Promise<T>) {
  const result = await settledAndRead(run, BOUND_MS, aws);
  return { ...result, hold: result.error && (JSON.parse(result.error.message) as Record<string, unknown>) };
}

async function run(deps: Pick<DeliverDeps, 'store'>, clock = standingClock) {
  return settled(deliver({ state: dueSoon(), execution_name: 'e1' }, { clock, post, ...deps }));
}

describe('Deliver with a caller waiting, against AWS endpoints that never answer', () => {
  it('a delivered answer is returned by deliver_by although the attempt log and the receiver’s health cannot be written', async () => {
    process.env.DELIVERIES_TABLE_NAME = 'deliveries';
    const ran = await run({ store: silentStore({}) });

    expect(ran.still, 'still waiting for DynamoDB long after deliver_by').toBeUndefined();
    expect(ran.error).toBeUndefined();
    expect(posts).toBe(1);
    expect(ran.output?.conversation.webhook_context.delivery_status).toBe('delivered');
    expect(aws.requests.map((r) => r.target).sort()).toEqual([
      'DynamoDB_20120810.PutItem', // the attempt log
      'DynamoDB_20120810.UpdateItem', // the receiver's success
    ]);
    expect(logs.lines.filter((l) => l.level === 'WARN').map((l) => [l.message, l.error])).toEqual(
      expect.arrayContaining([
        ['The delivery attempt could not be written to the attempt log', expect.stringMatching(/^AbortError/)],
        ["The receiver's health could not be recorded", expect.stringMatching(/^AbortError/)],
      ]),
    );
  });

  it('the receivers cannot be read: no attempt, queued for the schedule at deliver_by (deadline)', async () => {
    // The real clock: Deliver decides after the read was cut at deliver_by, when no time is left, however late.
    const ran = await run({ store: silentStore() }, realClock);

    expect(ran.still, 'still waiting for DynamoDB long after deliver_by').toBeUndefined();
    expect(posts).toBe(0);
    expect(ran.error?.name).toBe('DeliveryDeferredError');
    expect(ran.hold).toMatchObject({ hold: 'deadline', status: 'queued' });
    expect(aws.requests.map((r) => r.target)).toEqual(['DynamoDB_20120810.GetItem']);
  });

  it('the receiver’s outbound rate cannot be taken: no attempt, queued for the schedule (deadline)', async () => {
    const ran = await run({ store: silentStore({ rate_per_second: 5 }) });

    expect(ran.still, 'still waiting for DynamoDB long after deliver_by').toBeUndefined();
    expect(posts).toBe(0);
    expect(ran.error?.name).toBe('DeliveryDeferredError');
    expect(ran.hold).toMatchObject({ hold: 'deadline', status: 'queued', target: 'https://hooks.example.com/…' });
    expect(aws.requests.map((r) => r.target)).toEqual(['DynamoDB_20120810.UpdateItem']);
    expect(logs.events().filter((e) => e.event_type === DELIVERY_DEFERRED_EVENT)).toEqual([
      expect.objectContaining({ hold: 'deadline' }),
    ]);
  });

  it('the signing secrets cannot be read: no unsigned attempt, queued for the schedule (deadline)', async () => {
    process.env.DELIVERY_SIGNING_SECRETS_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:delivery';
    const ran = await run({ store: null });

    expect(ran.still, 'still waiting for Secrets Manager long after deliver_by').toBeUndefined();
    expect(posts).toBe(0);
    expect(ran.error?.name).toBe('DeliveryDeferredError');
    expect(ran.hold).toMatchObject({ hold: 'deadline', status: 'queued', target: 'https://hooks.example.com/…' });
    expect(aws.requests.map((r) => r.target)).toEqual(['secretsmanager.GetSecretValue']);
  });
});

/**
 * Deliver with nobody waiting (an asynchronous conversation, a redelivery: no deliver_by) still ends before its own
 * Lambda's timeout (DELIVERY_TIMEOUT_MS + 5 s): its AWS calls each stop only at the clients' limits (≈ 6.2 s), so two
 * slow ones before the POST used to leave it killed mid-POST — the task failed, its Catch queued the delivery, and the
 * receiver could get it twice — and slow writes after a delivered POST failed the task the same way.
 */
describe('Deliver with nobody waiting, near its Lambda’s timeout', () => {
  /** An asynchronous conversation's state (no deadlines); Deliver's Lambda ends `lambdaLeftMs` after it was made. */
  async function runAsync(deps: Pick<DeliverDeps, 'store'>, lambdaLeftMs: number) {
    const state = dueSoon();
    state.budget = { agent_seconds: 120, deliver_by: null, answer_by: null };
    const endsAt = madeAt + lambdaLeftMs;
    return settled(deliver({ state, execution_name: 'e1' }, { clock: standingClock, post, endsAt, ...deps }));
  }

  it('a signing-secret read that stalls is cut before the Lambda ends: no attempt, queued (deadline)', async () => {
    process.env.DELIVERY_SIGNING_SECRETS_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:delivery';
    const ran = await runAsync({ store: null }, 2_000);

    expect(ran.still, 'still waiting for Secrets Manager past the Lambda’s timeout').toBeUndefined();
    expect(posts).toBe(0);
    expect(ran.error?.name).toBe('DeliveryDeferredError');
    expect(ran.hold).toMatchObject({ hold: 'deadline', status: 'queued', target: 'https://hooks.example.com/…' });
    expect(String(ran.hold?.message)).toMatch(/this Deliver Lambda's timeout less 1500 ms \(an AWS call was cut at it/);
  });

  it('too little of the Lambda left for a whole attempt: no POST, queued rather than cut off mid-POST', async () => {
    const ran = await runAsync({ store: null }, 4_000); // 2.5 s left for the POST, whose timeout is 3 s

    expect(posts).toBe(0);
    expect(ran.error?.name).toBe('DeliveryDeferredError');
    expect(ran.hold).toMatchObject({ hold: 'deadline', status: 'queued', target: 'https://hooks.example.com/…' });
    expect(String(ran.hold?.message)).toMatch(
      /has 2500 ms left .* not the attempt's 3000 ms .*rather than cut off mid-POST$/,
    );
  });

  it('a delivered answer is returned before the Lambda ends although its writes after the POST stall', async () => {
    process.env.DELIVERIES_TABLE_NAME = 'deliveries';
    process.env.DELIVERY_TIMEOUT_MS = '1000';
    try {
      const ran = await runAsync({ store: silentStore({}) }, 2_700);

      expect(ran.still, 'still waiting for DynamoDB past the Lambda’s timeout').toBeUndefined();
      expect(ran.error).toBeUndefined();
      expect(posts).toBe(1);
      expect(ran.output?.conversation.webhook_context.delivery_status).toBe('delivered');
      expect(logs.lines.filter((l) => l.level === 'WARN').map((l) => [l.message, l.error])).toEqual(
        expect.arrayContaining([
          ['The delivery attempt could not be written to the attempt log', expect.stringMatching(/^AbortError/)],
          ["The receiver's health could not be recorded", expect.stringMatching(/^AbortError/)],
        ]),
      );
    } finally {
      delete process.env.DELIVERY_TIMEOUT_MS;
    }
  });
});
