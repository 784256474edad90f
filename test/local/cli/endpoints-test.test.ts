import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signOutbound } from '../../../functions/domain/signatures.ts';
import { FileEndpointStore } from '../../../functions/shared/endpoint-store.ts';
import { runMain } from '../../support/cli.ts';
import { type ReceivedRequest, startReceiver, type TestReceiver } from '../../support/servers.ts';

/**
 * `endpoints test <type>` (Svix's "Send example"): one signed test delivery to the receiver, marked as a test, and
 * its answer printed; no conversation, no retry, nothing kept.
 */
const SECRET = 'whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=';
let dataDir: string;
let receiver: TestReceiver;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-endpoints-test-'));
  receiver = await startReceiver();
  const url = receiver.urlFor('deals');
  await new FileEndpointStore(path.join(dataDir, 'deliveries')).configure('deal_analysis', { url }, new Date());
  await writeFile(path.join(dataDir, 'delivery-signing-secrets.json'), JSON.stringify({ deal_analysis: SECRET }), {
    mode: 0o600,
  });
});
afterAll(async () => {
  await receiver.close();
  await rm(dataDir, { recursive: true, force: true });
});

const run = (...args: string[]) =>
  runMain(['endpoints', 'test', ...args], {
    LOCAL_DATA_DIR: dataDir,
    GATEWAY_URL: undefined,
    DELIVERY_SIGNING_SECRETS: undefined,
    DELIVERY_SIGNING_SECRETS_FILE: undefined,
  });

describe('endpoints test <type>', () => {
  it('POSTs a signed delivery marked as a test to the receiver and prints its answer', async () => {
    receiver.reset();
    receiver.reply({ status: 200, body: '{"seen":true}' });
    const result = await run('deal_analysis');
    expect(result.code, result.stderr).toBe(0);
    expect(receiver.received).toHaveLength(1);
    const [{ headers, body: payload }] = receiver.received as [ReceivedRequest];
    const body = JSON.stringify(payload);
    expect(payload).toMatchObject({
      type: 'conversation.completed',
      test: true,
      conversation_id: null,
      webhook_type: 'deal_analysis',
    });
    expect(headers).toMatchObject({ 'webhook-test': 'true', 'webhook-id': payload.delivery_id as string });
    // Signed as Deliver signs: a receiver verifying with its secret accepts it.
    const at = new Date(Number(headers['webhook-timestamp']) * 1000);
    expect(headers['webhook-signature']).toBe(
      signOutbound(SECRET, payload.delivery_id as string, at, body)['webhook-signature'],
    );
    expect(result.stdout).toContain(`deal_analysis: test delivery ${payload.delivery_id} to http://127.0.0.1:`);
    expect(result.stdout).toMatch(/\(signed with one secret\) → HTTP 200 in \d+ ms\n {2}its answer: \{"seen":true\}\n/);
  });

  it('a receiver that refuses it: exit 1 with its answer, not retried, and nothing kept (no queue, log, health)', async () => {
    receiver.reset();
    receiver.reply({ status: 503, body: '{"seen":false}' });
    const result = await run('deal_analysis', '--json');
    expect(result.code).toBe(1);
    expect(receiver.received).toHaveLength(1);
    const shown = JSON.parse(result.stdout);
    expect(shown).toMatchObject({
      webhook_type: 'deal_analysis',
      delivered: false,
      signing: 'signed with one secret',
      attempt: { status_code: 503, outcome: 'retryable' },
      response: { status: 503, body: '{"seen":false}' },
    });
    receiver.reply({ status: 503, body: 'down for maintenance' });
    const plain = await run('deal_analysis');
    expect(plain.code).toBe(1);
    expect(plain.stdout).toMatch(
      /→ HTTP 503 in \d+ ms\n {2}its answer: down for maintenance\n {2}not taken; a test delivery is not retried: fix the receiver and run this again\.\n$/,
    );
    const endpoint = await new FileEndpointStore(path.join(dataDir, 'deliveries')).get('deal_analysis');
    expect(endpoint.health.consecutive_failures).toBe(0);
    expect((await readdir(path.join(dataDir, 'deliveries'))).sort()).toEqual(['endpoints']);
  });

  // Before, printed raw: a receiver's `\u001b[31m` recoloured the operator's terminal, a `\u001b]0;…\u0007` retitled it.
  it("a receiver's answer with control characters is printed as conversations show prints it, escaped", async () => {
    receiver.reset();
    receiver.reply({ status: 410, body: '<b>\u001b[31mGone\u001b]0;owned\u0007</b>' });
    const result = await run('deal_analysis');
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('\n  its answer: <b>\\u001b[31mGone\\u001b]0;owned\\u0007</b>\n');
    for (const raw of ['\u001b', '\u0007', '\r']) expect(result.stdout).not.toContain(raw);
  });

  it('the built-in receiver with no gateway running: says to start the gateway, not to fix the receiver', async () => {
    // A fresh data folder: no gateway has run on it, its receivers are the built-in ones of PORT, where none listens.
    const fresh = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-endpoints-test-fresh-'));
    const probe = createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => probe.once('listening', resolve));
    const port = String((probe.address() as { port: number }).port);
    await new Promise((resolve) => probe.close(resolve));
    try {
      const result = await runMain(['endpoints', 'test', 'general'], {
        LOCAL_DATA_DIR: fresh,
        PORT: port,
        GATEWAY_URL: undefined,
        GENERAL_WEBHOOK_URL: undefined,
      });
      expect(result.code).toBe(1);
      expect(result.stdout).toContain(`to http://127.0.0.1:${port}/… (unsigned) → network error: ECONNREFUSED in `);
      // Its last line: what to do.
      expect(result.stdout.split('\n').at(-2)).toBe(
        `  not taken; a test delivery is not retried: its URL is the built-in receiver of a gateway not running on ${fresh}: start it (npm start) and run this again.`,
      );
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  });

  it('refuses an unknown type, and a receiver URL Deliver would not use', async () => {
    const unknown = await run('deals');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('"deals" is not a webhook type');
    const store = new FileEndpointStore(path.join(dataDir, 'deliveries'));
    await store.configure('general', { url: 'http://crm.example.com/hook' }, new Date());
    const unsafe = await run('general');
    expect(unsafe.code).toBe(1);
    expect(unsafe.stderr).toBe(
      'webhook-gateway: general: delivery URL must use https (plain http only to loopback): http://crm.example.com\n',
    );
  });
});
