import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTestDelivery } from '../../functions/shared/test-delivery.ts';
import { runMain } from '../support/cli.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * Deliveries checked as a receiver checks them: by a verifier written here from the Standard Webhooks spec
 * (https://www.standardwebhooks.com), not the gateway's library, over the bytes as they came off the socket
 * (docs/security.md, Signed deliveries; docs/contract.md, Deliveries): `webhook-signature` is a space-separated list
 * of `v1,<base64 HMAC-SHA256>`, keyed by the base64 after `whsec_`, over `<webhook-id>.<webhook-timestamp>.<body>`.
 */
function verify(
  secret: string,
  headers: IncomingHttpHeaders,
  raw: Buffer,
  nowSeconds: number,
): 'ok' | 'no signature matches' | 'stale' {
  const id = String(headers['webhook-id']);
  const timestamp = String(headers['webhook-timestamp']);
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > 300) return 'stale';
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key)
    .update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`, 'utf8'), raw]))
    .digest();
  const matches = String(headers['webhook-signature'] ?? '')
    .split(' ')
    .filter((entry) => entry.startsWith('v1,'))
    .map((entry) => Buffer.from(entry.slice(3), 'base64'))
    .some((given) => given.length === expected.length && timingSafeEqual(given, expected));
  return matches ? 'ok' : 'no signature matches';
}

const secret = (seed: string) => `whsec_${Buffer.from(seed.padEnd(32, seed)).toString('base64')}`;
const NEW = secret('the-new-delivery-secret');
const OLD = secret('the-old-delivery-secret');

/** A receiver keeping each request's raw bytes; it answers the statuses queued, then 200. */
interface Received {
  headers: IncomingHttpHeaders;
  raw: Buffer;
  at: number;
}
let receiver: Server;
let receiverUrl: string;
const received: Received[] = [];
let answers: number[] = [];

/** An answer with what a receiver gets wrong first: two- to four-byte UTF-8, a line separator, and size (under 64 KB). */
const ANSWER = `Pipeline: Müller GmbH €1.2M — 東京 renewal 😀, ${'né 中文 🚀\u2028'.repeat(3_000)}`;

let world: TestWorld;
beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, raw: Buffer.concat(chunks), at: Date.now() });
      res.writeHead(answers.shift() ?? 200, { 'content-type': 'text/plain' }).end('seen');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/deal_analysis`;
  world = await startWorld({
    // A rotation under way: both secrets sign every delivery.
    DELIVERY_SIGNING_SECRETS: JSON.stringify({ deal_analysis: [NEW, OLD] }),
    DEAL_ANALYSIS_WEBHOOK_URL: receiverUrl,
  });
  world.agent.behave(() => ({ payload: { response: ANSWER, agent: 'test-agent' } }));
});
afterAll(async () => {
  await world?.close();
  await new Promise<void>((r) => receiver?.close(() => r()));
});

const cli = (args: string[]) =>
  runMain(args, { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url, NO_COLOR: '1' });

describe('deliveries as a receiver verifies them (an independent Standard Webhooks verifier, raw bytes)', () => {
  it('retries, a redrive and a resend: one webhook-id, each attempt signed at its own time by both secrets, the same bytes', async () => {
    answers = [503, 410]; // a retry in the workflow, then a permanent answer: dead-lettered
    const res = await world.post({ ...SEED_REQUEST, query: 'Top deals closing this quarter? Müller 東京 😀' });
    const id = res.body.conversation_id as string;
    expect(res.body.tracking, JSON.stringify(res.body).slice(0, 600)).toMatchObject({
      webhook_type: 'deal_analysis',
      delivery_status: 'failed',
    });
    const redriven = await cli(['deliveries', 'redrive', id]);
    expect(redriven.code, redriven.stderr).toBe(0);
    const resent = await cli(['deliveries', 'resend', id]);
    expect(resent.code, resent.stderr).toBe(0);

    expect(received).toHaveLength(4);
    const shown = await cli(['conversations', 'show', id, '--json']);
    const attempts = JSON.parse(shown.stdout).delivery_attempts as {
      at: string;
      via: string;
      request: { headers: Record<string, string> };
    }[];
    expect(attempts.map((a) => a.via)).toEqual(['workflow', 'workflow', 'redrive', 'resend']);
    for (const [n, delivery] of received.entries()) {
      const now = Math.floor(delivery.at / 1000);
      expect(delivery.headers['webhook-id']).toBe(res.body.tracking.delivery_id);
      expect(String(delivery.headers['webhook-signature']).split(' ')).toHaveLength(2);
      // A receiver holding either secret verifies it; one holding another does not.
      expect([
        verify(NEW, delivery.headers, delivery.raw, now),
        verify(OLD, delivery.headers, delivery.raw, now),
      ]).toEqual(['ok', 'ok']);
      expect(verify(secret('someone-else'), delivery.headers, delivery.raw, now)).toBe('no signature matches');
      // Signed when it was sent, not when the conversation was: the timestamp is the attempt's own second (or the one
      // before it, signing comes first), and the attempt log keeps the timestamp the receiver got.
      const sentAt = Math.floor(Date.parse(attempts[n]!.at) / 1000);
      expect(Number(delivery.headers['webhook-timestamp'])).toBeGreaterThanOrEqual(sentAt - 1);
      expect(Number(delivery.headers['webhook-timestamp'])).toBeLessThanOrEqual(sentAt);
      expect(attempts[n]!.request.headers['webhook-timestamp']).toBe(delivery.headers['webhook-timestamp']);
      // The bytes signed are the bytes sent, and every attempt sends the same ones.
      expect(delivery.raw.equals(received[0]!.raw)).toBe(true);
      expect(Number(delivery.headers['content-length'])).toBe(delivery.raw.length);
    }
    const body = JSON.parse(received[0]!.raw.toString('utf8'));
    expect(body).toMatchObject({ delivery_id: res.body.tracking.delivery_id, conversation_id: id });
    expect(body.response.response).toBe(ANSWER);
    expect(received[0]!.raw.length).toBeGreaterThan(50_000);
    // One byte changed anywhere breaks it.
    const tampered = Buffer.from(received[0]!.raw);
    tampered.writeUInt8(tampered.readUInt8(tampered.length - 2) ^ 1, tampered.length - 2);
    expect(verify(NEW, received[0]!.headers, tampered, Math.floor(received[0]!.at / 1000))).toBe(
      'no signature matches',
    );
  });

  it('a test delivery is signed the same way, under its own new webhook-id, marked webhook-test', async () => {
    received.length = 0;
    answers = [];
    const sent = await sendTestDelivery('deal_analysis', receiverUrl, [NEW, OLD], 5_000);
    expect(sent.delivered, JSON.stringify(sent)).toBe(true);
    const [delivery] = received;
    expect(delivery!.headers).toMatchObject({ 'webhook-id': sent.delivery_id, 'webhook-test': 'true' });
    const now = Math.floor(delivery!.at / 1000);
    expect([
      verify(NEW, delivery!.headers, delivery!.raw, now),
      verify(OLD, delivery!.headers, delivery!.raw, now),
    ]).toEqual(['ok', 'ok']);
    expect(JSON.parse(delivery!.raw.toString('utf8'))).toMatchObject({ test: true, delivery_id: sent.delivery_id });
  });
});
