import { createHmac } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { signOutbound } from '../../functions/domain/signatures.ts';
import { runMain } from '../support/cli.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';
import { captureJsonLines } from '../support/log-capture.ts';

const secret = (seed: string) => `whsec_${Buffer.from(seed.padEnd(32, seed)).toString('base64')}`;
const CURRENT = secret('current-secret');
const PREVIOUS = secret('previous-secret');
const DEAL_SECRET = secret('deal-delivery');

let world: TestWorld;
/** The bodies `sign --file` reads (before: a folder of them left in the temp folder by every run). */
let bodies: string;
beforeAll(async () => {
  bodies = await mkdtemp(path.join(tmpdir(), 'sign-'));
  world = await startWorld({
    INBOUND_WEBHOOK_SECRETS: JSON.stringify({ testing_system: [CURRENT, PREVIOUS], limited_signed: CURRENT }),
    RATE_LIMITS: JSON.stringify({ limited_signed: { rateLimit: 0.001, burstLimit: 2 } }),
    DELIVERY_SIGNING_SECRETS: JSON.stringify({ deal_analysis: DEAL_SECRET }),
  });
});
afterAll(async () => {
  await world?.close();
  await rm(bodies, { recursive: true, force: true });
});
beforeEach(() => {
  world.agent.reset();
  world.receiver.reset();
  delete process.env.REQUIRE_SIGNED_WEBHOOKS;
});

function signed(body: string, key = CURRENT, at = new Date(), id = `msg_${Math.random().toString(36).slice(2)}`) {
  return signOutbound(key, id, at, body) as unknown as Record<string, string>;
}

describe('inbound Standard Webhooks verification over the raw body', () => {
  const body = JSON.stringify(SEED_REQUEST);

  it('a correctly signed request is accepted', async () => {
    const res = await world.post(body, signed(body));
    expect(res.status).toBe(200);
  });

  it('a correctly signed body that is not JSON is the contract’s 400 INVALID_JSON, not a server error', async () => {
    const broken = '{"query": "What are the top 5 deals", "source_system": "testing_system",';
    const res = await world.post(broken, signed(broken));
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('INVALID_JSON');
  });

  it('the previous secret still verifies during a rotation', async () => {
    expect((await world.post(body, signed(body, PREVIOUS))).status).toBe(200);
  });

  it('several signatures in one header: any match is enough', async () => {
    const headers = signed(body);
    headers['webhook-signature'] =
      `v1,${Buffer.from('x'.repeat(32)).toString('base64')} ${headers['webhook-signature']}`;
    expect((await world.post(body, headers)).status).toBe(200);
  });

  it('the raw bytes count: re-serialised JSON with the same meaning does not verify', async () => {
    const headers = signed(body);
    const spaced = JSON.stringify(SEED_REQUEST, null, 2);
    const res = await world.post(spaced, headers);
    expect(res.status).toBe(401);
  });

  const BAD: [string, () => Record<string, string>, RegExp][] = [
    ['missing signature headers', () => ({}), /missing webhook-id, webhook-timestamp, webhook-signature headers/],
    ['a wrong secret', () => signed(body, secret('attacker')), /no signature matches/],
    [
      'a stale timestamp (10 minutes old)',
      () => signed(body, CURRENT, new Date(Date.now() - 600_000)),
      /outside the 5-minute tolerance/,
    ],
    [
      'a timestamp from the future',
      () => signed(body, CURRENT, new Date(Date.now() + 600_000)),
      /outside the 5-minute tolerance/,
    ],
    [
      'a signature for another body',
      () => signed(JSON.stringify({ ...SEED_REQUEST, query: 'other' })),
      /no signature matches/,
    ],
    [
      'a timestamp that is not Unix seconds',
      () => ({ ...signed(body), 'webhook-timestamp': '2025-08-13T10:30:45Z' }),
      /whole seconds since the Unix epoch/,
    ],
    // Before, "no signature matches" and "must be the signing time in whole seconds": the header sent twice reaches
    // the gateway as one, its values joined with ", ", which named neither the header nor what was wrong.
    [
      'webhook-id sent twice',
      () => {
        const headers = signed(body);
        return { ...headers, 'webhook-id': `${headers['webhook-id']}, ${headers['webhook-id']}` };
      },
      /^Webhook signature rejected: webhook-id is sent 2 times: send it once$/,
    ],
    [
      'webhook-timestamp sent twice',
      () => {
        const headers = signed(body);
        return { ...headers, 'webhook-timestamp': `${headers['webhook-timestamp']}, ${headers['webhook-timestamp']}` };
      },
      /^Webhook signature rejected: webhook-timestamp is sent 2 times: send it once$/,
    ],
    // Before, "no signature matches" alone: a sender who left out the version never learnt the form.
    [
      'a signature that is not v1,<base64>',
      () => ({ ...signed(body), 'webhook-signature': 'sha256=abc' }),
      /^Webhook signature rejected: no signature matches \(webhook-signature holds no "v1,<base64 HMAC-SHA256>" entry, the only form checked\)$/,
    ],
    [
      'a signature without its v1, prefix',
      () => {
        const headers = signed(body);
        return { ...headers, 'webhook-signature': headers['webhook-signature']!.slice('v1,'.length) };
      },
      /^Webhook signature rejected: no signature matches \(webhook-signature holds no "v1,<base64 HMAC-SHA256>" entry/,
    ],
  ];
  it.each(BAD)(
    '%s → 401 INVALID_SIGNATURE, no agent call, no export, a log line and a metric',
    async (_name, headers, reason) => {
      const before = (await world.listKeys()).length;
      const capture = captureJsonLines();
      let res: Awaited<ReturnType<TestWorld['post']>>;
      try {
        res = await world.post(body, headers());
      } finally {
        capture.restore();
      }
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject({ success: false, error: { code: 'INVALID_SIGNATURE' } });
      expect(res.body.error.message).toMatch(reason);
      expect(world.agent.invocations).toHaveLength(0);
      expect((await world.listKeys()).length).toBe(before);
      expect(
        capture.lines.some((l) => l.event_type === 'WEBHOOK_REQUEST_REJECTED' && l.code === 'INVALID_SIGNATURE'),
      ).toBe(true);
      expect(capture.metrics().some((m) => m['Webhook.signature_rejected'] === 1)).toBe(true);
    },
  );

  it('a signed request of a source without a secret is accepted unchecked, and a warning names the sources with one', async () => {
    const other = JSON.stringify({ ...SEED_REQUEST, source_system: 'testing_sytem' }); // misspelt
    const quiet = JSON.stringify({ ...SEED_REQUEST, source_system: 'unsigned_source' });
    const capture = captureJsonLines();
    let res: Awaited<ReturnType<TestWorld['post']>>;
    let plain: Awaited<ReturnType<TestWorld['post']>>;
    let good: Awaited<ReturnType<TestWorld['post']>>;
    try {
      res = await world.post(other, signed(other));
      plain = await world.post(quiet);
      good = await world.post(body, signed(body));
    } finally {
      capture.restore();
    }
    expect([res.status, plain.status, good.status]).toEqual([200, 200, 200]);
    const warnings = capture.lines.filter((l) => l.event_type === 'WEBHOOK_SIGNATURE_UNCHECKED');
    expect(warnings).toEqual([
      expect.objectContaining({
        level: 'WARN',
        source_system: 'testing_sytem',
        sources_with_secrets: ['testing_system', 'limited_signed'],
      }),
    ]);
  });

  it('a signed request replayed within the tolerance with a new Idempotency-Key gets the first answer: it does not run again', async () => {
    const headers = signed(body);
    const first = await world.post(body, { ...headers, 'idempotency-key': 'sender-key-1' });
    expect(first.status).toBe(200);
    const objects = (await world.listKeys()).length;
    for (const replayKey of ['attacker-key-1', 'attacker-key-2']) {
      const replay = await world.post(body, { ...headers, 'idempotency-key': replayKey });
      expect(replay.status).toBe(200);
      expect(replay.body.conversation_id).toBe(first.body.conversation_id);
    }
    const bare = await world.post(body, headers);
    expect(bare.body.conversation_id).toBe(first.body.conversation_id);
    expect(world.agent.invocations).toHaveLength(1);
    expect(world.receiver.received).toHaveLength(1);
    expect((await world.listKeys()).length).toBe(objects);
  });

  it('a source without a secret may send unsigned requests unless REQUIRE_SIGNED_WEBHOOKS=true', async () => {
    const other = JSON.stringify({ ...SEED_REQUEST, source_system: 'scheduler' });
    expect((await world.post(other)).status).toBe(200);
    process.env.REQUIRE_SIGNED_WEBHOOKS = 'true';
    const res = await world.post(other);
    expect(res.status).toBe(401);
    expect(res.body.error.message).toMatch(/"scheduler" has no signing secret and unsigned requests are not allowed/);
  });
});

describe('a body that is not UTF-8', () => {
  it('signed over its bytes as Standard Webhooks says → 401 saying the bytes were read as U+FFFD; nothing runs', async () => {
    const bytes = Buffer.from(JSON.stringify({ ...SEED_REQUEST, query: 'Café pipeline' }), 'latin1');
    const id = 'msg_latin1';
    const timestamp = String(Math.floor(Date.now() / 1000));
    const key = Buffer.from(CURRENT.slice('whsec_'.length), 'base64');
    const mac = createHmac('sha256', key)
      .update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`), bytes]))
      .digest('base64');
    const res = await fetch(`${world.gateway.url}/webhook`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': timestamp,
        'webhook-signature': `v1,${mac}`,
      },
      body: bytes,
    });
    expect(res.status).toBe(401);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe('INVALID_SIGNATURE');
    expect(error.message).toContain('not UTF-8, they were read as U+FFFD');
    expect(world.agent.invocations).toHaveLength(0);
  });

  it('a wrong signature over a UTF-8 body says no more than that', async () => {
    const wrong = await world.post(JSON.stringify(SEED_REQUEST), signed('{}'));
    expect(wrong.body.error.message).toBe('Webhook signature rejected: no signature matches');
  });
});

describe('webhook-gateway sign (what the README shows a sender)', () => {
  it('prints curl -H arguments that make the README request pass, where unsigned it gets 401', async () => {
    const body = JSON.stringify(SEED_REQUEST);
    expect((await world.post(body)).status).toBe(401);
    const signedBy = await runMain(['sign', '--secret', CURRENT, '--data', body]);
    expect(signedBy.code).toBe(0);
    const args = signedBy.stdout.trim().split(' ');
    expect(args.filter((a) => a === '-H')).toHaveLength(3);
    const headers = Object.fromEntries(
      args.filter((a) => a !== '-H').map((h) => [h.slice(0, h.indexOf(':')), h.slice(h.indexOf(':') + 1)]),
    );
    expect(Object.keys(headers)).toEqual(['webhook-id', 'webhook-timestamp', 'webhook-signature']);
    expect((await world.post(body, headers)).status).toBe(200);
  });

  it('sign --file of a body with line breaks says to send it with --data-binary: curl -d @file would drop them', async () => {
    const file = path.join(bodies, 'body.json');
    await writeFile(file, `${JSON.stringify(SEED_REQUEST, null, 2)}\n`);
    const signedBy = await runMain(['sign', '--secret', CURRENT, '--file', file, '--json']);
    expect(signedBy.code).toBe(0);
    expect(signedBy.stderr).toContain(`send it with curl --data-binary @${file}`);
    const headers = JSON.parse(signedBy.stdout) as Record<string, string>;
    const raw = await readFile(file, 'utf8');
    expect((await world.post(raw, headers)).status).toBe(200); // the bytes as they are in the file
    const flat = file.replace('body.json', 'flat.json');
    await writeFile(flat, JSON.stringify(SEED_REQUEST));
    expect((await runMain(['sign', '--secret', CURRENT, '--file', flat])).stderr).toBe('');
  });

  it('sign --file refuses a body that is not UTF-8: the gateway reads it with U+FFFD, so no signature over it matches', async () => {
    const file = path.join(bodies, 'latin1.json');
    await writeFile(file, Buffer.from(JSON.stringify({ ...SEED_REQUEST, query: 'Café pipeline' }), 'latin1'));
    const signedBy = await runMain(['sign', '--secret', CURRENT, '--file', file]);
    expect(signedBy.code).toBe(1);
    expect(signedBy.stdout).toBe('');
    expect(signedBy.stderr).toContain(`${file} is not UTF-8 (byte 0xE9 at offset`);
    expect(signedBy.stderr).toContain('iconv');
  });

  it('refuses to sign without a whsec_ secret or without exactly one body', async () => {
    expect((await runMain(['sign', '--data', '{}'])).stderr).toMatch(/needs --secret/);
    expect((await runMain(['sign', '--secret', 'nope', '--data', '{}'])).stderr).toMatch(
      /--secret: secrets must be "whsec_"/,
    );
    expect((await runMain(['sign', '--secret', CURRENT])).stderr).toMatch(/exactly one of --data JSON or --file PATH/);
  });
});

describe('outbound signing', () => {
  const UNSIGNED_SOURCE = { ...SEED_REQUEST, source_system: 'crm_integration' };
  it('every delivery carries Standard Webhooks headers a receiver can verify; webhook-id is the delivery id', async () => {
    world.receiver.reply(503, 200);
    const res = await world.post(UNSIGNED_SOURCE);
    expect(res.body.tracking.delivery_status).toBe('delivered');
    expect(world.receiver.received).toHaveLength(2);
    for (const delivery of world.receiver.received) {
      expect(delivery.headers['webhook-id']).toBe(res.body.tracking.delivery_id);
      const headers = {
        'webhook-id': String(delivery.headers['webhook-id']),
        'webhook-timestamp': String(delivery.headers['webhook-timestamp']),
        'webhook-signature': String(delivery.headers['webhook-signature']),
      };
      expect(new Webhook(DEAL_SECRET).verify(JSON.stringify(delivery.body), headers)).toEqual(delivery.body);
      expect(() => new Webhook(secret('someone-else')).verify(JSON.stringify(delivery.body), headers)).toThrow();
    }
  });

  it('a type without a delivery secret is delivered unsigned, still with webhook-id', async () => {
    const res = await world.post({ ...UNSIGNED_SOURCE, query: 'Say hello' });
    expect(res.body.tracking.webhook_type).toBe('general');
    expect(world.receiver.received[0]!.headers['webhook-id']).toBe(res.body.tracking.delivery_id);
    expect(world.receiver.received[0]!.headers['webhook-signature']).toBeUndefined();
  });

  it('a plain-http delivery URL to anything but loopback is refused as a permanent failure', async () => {
    process.env.DEAL_ANALYSIS_WEBHOOK_URL = 'http://crm.example.com/hooks/deals';
    try {
      const res = await world.post(UNSIGNED_SOURCE);
      expect(res.body.tracking.delivery_status).toBe('failed');
      const envelope = await world.gateway.failedDeliveries.get(res.body.conversation_id);
      expect(envelope!.last_error).toMatch(/must use https/);
    } finally {
      process.env.DEAL_ANALYSIS_WEBHOOK_URL = world.receiver.urlFor('deal_analysis');
    }
  });
});

describe('rate limits count only requests the source really sent', () => {
  it('unsigned or forged requests naming a signed source get 401 and do not spend its rate: the real source still gets through', async () => {
    const body = JSON.stringify({ ...SEED_REQUEST, source_system: 'limited_signed' });
    for (let i = 0; i < 5; i++) {
      expect((await world.post(body)).status).toBe(401);
      expect((await world.post(body, signed(body, secret('forged')))).status).toBe(401);
    }
    expect((await world.post(body, signed(body))).status).toBe(200);
    expect((await world.post(body, signed(body))).status).toBe(200);
    const third = await world.post(body, signed(body));
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toMatch(/^\d+$/);
  });
});

describe('secrets and signatures stay out of logs, exports and execution history', () => {
  it('after signed requests and signed deliveries, no secret or signature is stored anywhere', async () => {
    const body = JSON.stringify(SEED_REQUEST);
    const headers = signed(body);
    const capture = captureJsonLines();
    let res: Awaited<ReturnType<TestWorld['post']>>;
    try {
      res = await world.post(body, headers);
    } finally {
      capture.restore();
    }
    expect(res.status).toBe(200);
    const deliveredSignature = String(world.receiver.received.at(-1)!.headers['webhook-signature']);
    const secrets = [CURRENT, PREVIOUS, DEAL_SECRET].flatMap((s) => [s, s.slice(6)]);
    const signatures = [headers['webhook-signature']!.slice(3), deliveredSignature.slice(3)];
    const logs = JSON.stringify(capture.lines);
    const exports = await Promise.all(
      (await world.listKeys(folderOf(res.body.conversation_id))).map((k) => world.getText(k)),
    );
    const historyDir = path.join(world.gateway.executions.dir, res.body.conversation_id);
    const history = await Promise.all(
      (await readdir(historyDir)).map((f) => readFile(path.join(historyDir, f), 'utf8')),
    );
    for (const [where, text] of [
      ['logs', logs],
      ['exports', exports.join('\n')],
      ['history', history.join('\n')],
    ] as const) {
      for (const needle of [...secrets, ...signatures])
        expect(text.includes(needle), `${where} contains ${needle.slice(0, 12)}…`).toBe(false);
    }
    expect(history.join('\n')).toContain('"webhook-signature":"[redacted]"');
  });
});
