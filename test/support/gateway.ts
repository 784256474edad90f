import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect } from 'vitest';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { DELIVERY_URL_VARIABLES } from '../../functions/domain/delivery.ts';
import type { RateClock } from '../../functions/shared/receivers.ts';
import type { JournalEntry } from '../../local/engine/journal.ts';
import type { GatewayOptions } from '../../local/server/config.ts';
import { type RunningGateway, startGateway } from '../../local/server/gateway.ts';
import { startAgent, startReceiver, type TestAgent, type TestReceiver } from './servers.ts';

/** Retry waits shortened for tests only (the definition's real intervals stay in the file). */
export const NO_WAIT = {
  Validate: 0,
  InvokeManagerAgent: 0,
  Deliver: 0,
  Export: 0,
  ExportFailedConversation: 0,
  CloseWithoutExport: 0,
  RecordOnlyInLogs: 0,
};

const GATEWAY_VARIABLES = [
  'AWS_ENDPOINT_URL_S3',
  'AWS_ENDPOINT_URL_LAMBDA',
  'CONVERSATION_EXPORT_S3_BUCKET',
  'ENABLE_CONVERSATION_EXPORT',
  'MANAGER_AGENT_FUNCTION_NAME',
  'MANAGER_AGENT_TIMEOUT_MS',
  'ASYNC_AGENT_TIMEOUT_MS',
  'DELIVERY_TIMEOUT_MS',
  'RESPONSE_TIMEOUT_MS',
  'REDELIVERY_SCHEDULE',
  'DELIVERY_SIGNING_SECRETS',
  'INBOUND_WEBHOOK_SECRETS',
  'REQUIRE_SIGNED_WEBHOOKS',
  'IDEMPOTENCY_DIR',
  'IDEMPOTENCY_TABLE_NAME',
  'STATUS_DIR',
  'STATUS_TABLE_NAME',
  'PUBLIC_URL',
  'THREAD_DIR',
  'THREAD_TABLE_NAME',
  'THREAD_TTL_DAYS',
  'RATE_LIMITS',
  'API_KEYS',
  'SOURCE_API_KEY_IDS',
  'REDELIVERY_POLL_MS',
  'ENDPOINT_FAILURE_THRESHOLD',
  'ENDPOINT_DISABLE_AFTER_DAYS',
  'DELIVERIES_DIR',
  'DELIVERIES_TABLE_NAME',
  'DELIVERY_SIGNING_SECRETS_FILE',
  ...Object.values(DELIVERY_URL_VARIABLES),
];

export interface TestWorld {
  gateway: RunningGateway;
  agent: TestAgent;
  receiver: TestReceiver;
  dataDir: string;
  s3: S3Client;
  post(body: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  listKeys(prefix?: string): Promise<string[]>;
  getJson(key: string): Promise<any>;
  getText(key: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * The whole local system on ephemeral ports: the gateway (engine + handlers + embedded S3), a real test agent
 * on the Lambda Invoke path, and a real receiver for the four delivery URLs.
 */
export async function startWorld(
  env: Record<string, string> = {},
  options: Pick<
    GatewayOptions,
    | 'stageOverrides'
    | 'rateLimitClock'
    | 'onExecution'
    | 'responseTimer'
    | 'budgetClock'
    | 'onRecovery'
    | 'summaryIndexRetry'
  > = {},
): Promise<TestWorld> {
  for (const name of GATEWAY_VARIABLES) delete process.env[name];
  const agent = await startAgent();
  const receiver = await startReceiver();
  process.env.AWS_ENDPOINT_URL_LAMBDA = agent.url;
  process.env.MANAGER_AGENT_FUNCTION_NAME = 'test-manager-agent';
  process.env.CONVERSATION_EXPORT_S3_BUCKET = 'test-conversations';
  // The agent's and a delivery attempt's timeouts are real timers: seconds of room for an answer given at once on a
  // loaded machine (before: 2 s and 1 s). A test about a timeout sets its own, shorter, with a slower peer.
  process.env.MANAGER_AGENT_TIMEOUT_MS = '5000';
  process.env.DELIVERY_TIMEOUT_MS = '5000';
  process.env.REDELIVERY_POLL_MS = '0'; // the automatic schedule is off unless a test turns it on
  // One receiver serves every test of a file, most of them failing it on purpose: its circuit breaker stays closed
  // unless a test is about the breaker (it passes its own ENDPOINT_FAILURE_THRESHOLD).
  process.env.ENDPOINT_FAILURE_THRESHOLD = '1000';
  for (const type of WEBHOOK_TYPES) process.env[DELIVERY_URL_VARIABLES[type]] = receiver.urlFor(type);
  Object.assign(process.env, env);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-test-'));
  const gateway = await startGateway({
    port: 0,
    s3Port: 0,
    dataDir,
    retryIntervalOverrides: NO_WAIT,
    stageOverrides: options.stageOverrides,
    rateLimitClock: options.rateLimitClock,
    onExecution: options.onExecution,
    responseTimer: options.responseTimer,
    budgetClock: options.budgetClock,
    onRecovery: options.onRecovery,
    summaryIndexRetry: options.summaryIndexRetry,
  });
  const s3 = new S3Client({ endpoint: gateway.s3Endpoint, forcePathStyle: true, region: 'us-east-1' });
  const world: TestWorld = {
    gateway,
    agent,
    receiver,
    dataDir,
    s3,
    async post(body, headers = {}) {
      const response = await fetch(`${gateway.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON
      }
      return { status: response.status, body: parsed, headers: response.headers };
    },
    listKeys: (prefix = '') => listAllKeys(s3, gateway.bucket, prefix),
    async getText(key) {
      const out = await s3.send(new GetObjectCommand({ Bucket: gateway.bucket, Key: key }));
      return out.Body!.transformToString();
    },
    async getJson(key) {
      return JSON.parse(await world.getText(key));
    },
    async close() {
      await world.gateway.close();
      await agent.close();
      await receiver.close();
      s3.destroy();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return world;
}

/**
 * A clock that stands still until the test moves it (`advance`), for startWorld's `budgetClock`: a conversation's
 * budget then counts only the time the test says passed (a slow agent, a slow receiver), however busy the machine.
 * Its `sleep` (Deliver's wait for a receiver's rate) moves it on at once.
 */
export interface ManualClock extends RateClock {
  advance(ms: number): void;
}

export function manualClock(start = Date.now()): ManualClock {
  let at = start;
  return {
    now: () => at,
    sleep: async (ms) => {
      at += ms;
    },
    advance: (ms) => {
      at += ms;
    },
  };
}

/** Every key under `prefix`, sorted: each page of the listing (S3 returns at most 1,000 a page). */
export async function listAllKeys(s3: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(o.Key!);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

export const SEED_REQUEST = {
  query: 'What are the top 5 deals closing this quarter?',
  source_system: 'testing_system',
  source_process: 'phase3_validation',
  timestamp: '2025-08-13T10:30:45Z',
};

/**
 * `count` conversations whose delivery is owed: the deal_analysis receiver paused (every delivery held, queued in the
 * failed-delivery store), then SEED_REQUEST posted `count` times. Their ids, oldest first.
 */
export async function queueOwedDeliveries(world: TestWorld, count: number): Promise<string[]> {
  const paused = await fetch(`${world.gateway.url}/local/endpoints/deal_analysis/pause`, { method: 'POST' });
  expect(paused.status).toBe(200);
  const ids: string[] = [];
  for (let n = 0; n < count; n++) {
    const answer = await world.post(SEED_REQUEST);
    expect(answer.body.tracking.delivery_status).toBe('queued');
    ids.push(answer.body.conversation_id);
  }
  return ids;
}

/** One conversation whose delivery failed (its receiver answered 400) and is owed; the receiver answers 200 again. */
export async function failOneDelivery(world: TestWorld): Promise<void> {
  world.receiver.reply(400);
  const failed = await world.post(SEED_REQUEST);
  expect(failed.body.tracking.delivery_status).toBe('failed');
  world.receiver.reset();
}

/** The events of one state in a conversation's first execution history, in order. */
export async function stateEvents(world: TestWorld, conversationId: string, state: string) {
  const [execution] = await world.gateway.executions.executions(conversationId);
  return execution!.events.filter((e) => e.state === state);
}

/**
 * A Deliver stage (for startWorld's stageOverrides) that holds the next run, once `holdNext()` was called, in Deliver
 * until `letGo()`: `reached` settles when that run got there. Every other run delivers at once.
 */
async function deliverHold() {
  const { handler: deliver } = await import('../../functions/deliver/handler.ts');
  let armed = false;
  let reachedDeliver!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((resolve) => {
    reachedDeliver = resolve;
  });
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    stage: async (input: unknown) => {
      if (armed) {
        armed = false;
        reachedDeliver();
        await gate;
      }
      return deliver(input as never);
    },
    holdNext: () => {
      armed = true;
    },
    reached,
    letGo: () => release(),
  };
}

/** A world whose Deliver holds a run when asked (useHeldDeliverWorld): what a test of a redelivery under way uses. */
export interface HeldDeliverWorld {
  readonly world: TestWorld;
  /** `holdNext()`, then `reached` once the next run is in Deliver, held there until `letGo()`. */
  readonly held: Awaited<ReturnType<typeof deliverHold>>;
  /**
   * SEED_REQUEST posted while the receiver refuses it for good (410): dead-lettered at once, for the operator to
   * redrive. Its conversation id, once the gateway is idle and the receiver's record cleared.
   */
  deadLettered(): Promise<string>;
}

/**
 * startWorld with a Deliver that holds a run when asked (deliverHold), started before the tests of the file or the
 * describe it is called in and closed after them, the held run let go first (close() waits for it).
 */
export function useHeldDeliverWorld(): HeldDeliverWorld {
  let world: TestWorld | undefined;
  let held: Awaited<ReturnType<typeof deliverHold>> | undefined;
  beforeAll(async () => {
    held = await deliverHold();
    world = await startWorld({}, { stageOverrides: { deliver: held.stage } });
  });
  afterAll(async () => {
    held?.letGo();
    await world?.close();
  });
  return {
    get world() {
      return world!;
    },
    get held() {
      return held!;
    },
    async deadLettered() {
      world!.receiver.reply(410);
      const failed = await world!.post(SEED_REQUEST);
      expect(failed.body, JSON.stringify(failed.body)).toHaveProperty('tracking.delivery_status', 'failed');
      await world!.gateway.idle();
      world!.receiver.reset();
      return failed.body.conversation_id as string;
    },
  };
}

/**
 * Every line of a crash journal's folder (local/engine/journal.ts), in the order written; a segment's reserve (its
 * first line, spaces) is not an entry.
 */
export async function journalEntries(dir: string): Promise<JournalEntry[]> {
  const entries: JournalEntry[] = [];
  for (const name of (await readdir(dir)).sort()) {
    for (const line of (await readFile(path.join(dir, name), 'utf8')).split('\n'))
      if (line.trim() !== '') entries.push(JSON.parse(line) as JournalEntry);
  }
  return entries;
}

/** One execution's lines of the world's crash journal (local/engine/journal.ts), in the order they were written. */
export async function journalOf(world: TestWorld, execution: string): Promise<JournalEntry[]> {
  return (await journalEntries(path.join(world.dataDir, 'journal'))).filter((e) => e.e === execution);
}

export function folderOf(conversationId: string): string {
  const m = /^webhook_(\d{4})(\d{2})(\d{2})_/.exec(conversationId)!;
  return `conversation-history/${m[1]}/${m[2]}/${m[3]}/${conversationId}/`;
}
