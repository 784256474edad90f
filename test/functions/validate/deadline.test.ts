import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Context } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { executionInput, SEED_REQUEST } from '../../support/fixtures.ts';
import { captureJsonLines } from '../../support/log-capture.ts';
import { trackConnections } from '../../support/servers.ts';
import { settledAndRead, settledWithin } from '../../support/settled-within.ts';

/**
 * Validate against DynamoDB and Secrets Manager that stall or refuse (docs/deploy.md, "Timeouts"). Its Lambda has
 * 10 s, and a stalled call ends only at the clients' own limits (≈ 6.2 s, functions/shared/clients/request-limits.ts):
 * two in a row used to outlive it (Sandbox.Timedout, a 500), its Idempotency-Key left claimed, so the caller's retry
 * got 409 for up to 7 minutes; a refusal was a 500 too. Now its calls end LAMBDA_TAIL_MS before its timeout, the key's
 * release LAMBDA_RETURN_MS before it, and it fails with StorageUnavailable, which both workflows answer 503
 * STORAGE_UNAVAILABLE (test/infra/api-templates.test.ts). Real clients and sockets; a run still going at BOUND_MS is
 * reported as such instead of being waited for.
 */
const BOUND_MS = 5_000;
/**
 * The Lambda's time left when Validate starts: its calls are cut at 1.5 s, the key's release at 2.7 s. With 300 ms for
 * its calls, a loaded machine took that long to send the secret's read, which the deadline then cut before it was sent
 * (as test/functions/export/lambda-timeout.test.ts found).
 */
const LAMBDA_LEFT_MS = 3_000;

let server: Server;
let connections: ReturnType<typeof trackConnections>;
let refuse = false;
let targets: string[] = [];
let handler: typeof import('../../../functions/validate/handler.ts').handler;
let logs: ReturnType<typeof captureJsonLines>;

beforeAll(async () => {
  server = createServer((req, res) => {
    targets.push(String(req.headers['x-amz-target']));
    req.resume();
    if (!refuse) return; // stalls
    res.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' });
    res.end(JSON.stringify({ __type: 'ResourceNotFoundException', message: 'Requested resource not found' }));
  });
  connections = trackConnections(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  process.env.AWS_ENDPOINT_URL_DYNAMODB = url;
  process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = url;
  ({ handler } = await import('../../../functions/validate/handler.ts'));
  // Warm, as a container is after its first request: the SDKs loaded (on first use).
  await (await import('../../../functions/shared/clients/dynamodb.ts')).dynamoDb();
  await import('../../../functions/shared/clients/secrets-manager-sdk.ts');
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
  delete process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER;
});
beforeEach(() => {
  targets = [];
  refuse = false;
  logs = captureJsonLines();
});
afterEach(() => {
  logs.restore();
  for (const name of ['IDEMPOTENCY_TABLE_NAME', 'INBOUND_WEBHOOK_SECRETS_ARN']) delete process.env[name];
});

/**
 * How Validate of a keyed request ended; one still running after BOUND_MS is not waited for. With `stalled`, once it
 * ended, the endpoint's connections are waited for, each closed by a cut call: what its calls sent is then in `targets`
 * (a loaded run of test/functions at load 18: the secret's read, sent just before the cut, was read by the endpoint
 * only after the first test's assertions, and the next test found it among its own).
 */
async function run({ stalled = true } = {}) {
  const input = executionInput(SEED_REQUEST, {
    headers: { 'content-type': 'application/json', 'idempotency-key': `stalled-${Date.now()}` },
  });
  const context = { getRemainingTimeInMillis: () => LAMBDA_LEFT_MS } as Context;
  const ran = handler(input, context) as Promise<unknown>;
  return stalled ? settledAndRead(ran, BOUND_MS, connections) : settledWithin(ran, BOUND_MS);
}

describe('Validate near its Lambda’s timeout', () => {
  it('a stalled inbound-secret read is cut before the Lambda ends: StorageUnavailable, nothing claimed', async () => {
    process.env.INBOUND_WEBHOOK_SECRETS_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:inbound';
    process.env.IDEMPOTENCY_TABLE_NAME = 'idempotency';
    const ran = await run();

    expect(ran.still, 'still waiting for Secrets Manager past the Lambda’s timeout').toBeUndefined();
    expect(ran.error?.name).toBe('StorageUnavailable');
    expect(ran.error?.message).toMatch(/^AbortError/);
    expect(targets).toEqual(['secretsmanager.GetSecretValue']);
  });

  it('a stalled key claim is cut, its release tried before the Lambda ends: StorageUnavailable', async () => {
    process.env.IDEMPOTENCY_TABLE_NAME = 'idempotency';
    const ran = await run();

    expect(ran.still, 'still waiting for DynamoDB past the Lambda’s timeout').toBeUndefined();
    expect(ran.error?.name).toBe('StorageUnavailable');
    // The claim, then its conditional release (the cut claim may have been written).
    expect(targets).toEqual(['DynamoDB_20120810.PutItem', 'DynamoDB_20120810.DeleteItem']);
    expect(logs.lines.find((l) => l.code === 'STORAGE_UNAVAILABLE')).toMatchObject({
      level: 'ERROR',
      event_type: 'WEBHOOK_REQUEST_REJECTED',
      error: expect.stringMatching(/^AbortError/),
    });
  });

  it('a table that refuses the claim (deleted): StorageUnavailable at once, not a 500', async () => {
    process.env.IDEMPOTENCY_TABLE_NAME = 'idempotency';
    refuse = true;
    const ran = await run({ stalled: false }); // answered: its connection is kept for the next call

    expect(ran.error?.name).toBe('StorageUnavailable');
    expect(ran.error?.message).toBe('ResourceNotFoundException: Requested resource not found');
    expect(logs.lines.find((l) => l.code === 'STORAGE_UNAVAILABLE')).toMatchObject({
      key_release_error: 'ResourceNotFoundException: Requested resource not found',
    });
  });
});
