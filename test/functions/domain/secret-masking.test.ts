import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import {
  CLOUDWATCH_REGEX_CHARACTERS,
  MASK,
  maskSecrets,
  SECRET_PATTERNS,
} from '../../../functions/domain/secret-masking.ts';

const SECRET = `whsec_${Buffer.from('a-secret-of-thirty-two-bytes-ok!').toString('base64')}`;

/** A real Standard Webhooks signature (v1,<base64>) whose base64 holds both `/` and `+`. */
function signatureWithSlashAndPlus(): string {
  const wh = new Webhook(SECRET);
  for (let i = 0; ; i++) {
    const signature = wh.sign(`msg_${i}`, new Date(1_700_000_000_000), '{"query":"x"}');
    if (signature.includes('/') && signature.includes('+')) return signature;
  }
}

describe('the secret patterns', () => {
  it('are valid CloudWatch Logs custom data identifiers (name and regex character sets, lengths)', () => {
    expect(SECRET_PATTERNS.length).toBeLessThanOrEqual(10);
    for (const { name, regex } of SECRET_PATTERNS) {
      expect(name).toMatch(/^[A-Za-z0-9_-]{1,128}$/);
      expect(regex).toMatch(CLOUDWATCH_REGEX_CHARACTERS);
      expect(() => new RegExp(regex)).not.toThrow();
    }
  });

  it('the character check itself refuses groups and quotes', () => {
    for (const bad of ['(v1|v2),x', 'v1:"x"', 'x'.repeat(201)]) expect(bad).not.toMatch(CLOUDWATCH_REGEX_CHARACTERS);
  });
});

describe('maskSecrets', () => {
  const signature = signatureWithSlashAndPlus();
  const base64 = signature.slice(3);

  const forms: Record<string, string> = {
    'as sent': signature,
    'escaped by API Gateway (escapeJavaScript writes \\/)': signature.replaceAll('/', '\\/'),
    'then inside a JSON string': JSON.stringify(signature.replaceAll('/', '\\/')),
    'then inside a JSON string inside a JSON string': JSON.stringify(JSON.stringify(signature.replaceAll('/', '\\/'))),
  };
  for (const [name, text] of Object.entries(forms)) {
    it(`masks an inbound signature ${name}`, () => {
      const masked = maskSecrets(`{"webhook-signature":${JSON.stringify(text)}}`);
      expect(masked).toContain(MASK);
      expect(masked).not.toContain(base64.slice(0, 8));
      expect(masked).not.toContain(base64.slice(-8));
    });
  }

  it('masks each of several signatures in one header and keeps the spaces between them', () => {
    const other = new Webhook(`whsec_${Buffer.from('another-secret-of-32-bytes-long!').toString('base64')}`).sign(
      'msg_1',
      new Date(0),
      '{}',
    );
    expect(maskSecrets(`${signature} ${other} v1a,${'A'.repeat(86)}==`)).toBe(`${MASK} ${MASK} ${MASK}`);
  });

  it('never breaks the JSON it masks, at any depth, even for an unpadded value', () => {
    for (const value of [
      signature,
      signature.replace(/=+$/, ''),
      `v1,${'a/'.repeat(30)}`,
      SECRET,
      SECRET.replace(/=+$/, ''),
    ]) {
      let doc: unknown = { headers: { 'webhook-signature': value.replaceAll('/', '\\/') }, after: 'kept' };
      for (let depth = 0; depth < 3; depth++) {
        const masked = maskSecrets(JSON.stringify(doc));
        expect(() => JSON.parse(masked), `${value} at depth ${depth}`).not.toThrow();
        expect(masked).toContain(MASK);
        expect(masked).toContain('kept');
        doc = { details: { input: JSON.stringify(doc) } };
      }
    }
  });

  it('masks whsec_ secrets', () => {
    expect(maskSecrets(`secret=${SECRET};`)).toBe(`secret=${MASK};`);
  });

  it('leaves conversation ids, request ids, webhook ids, timestamps and questions alone', () => {
    const text = JSON.stringify({
      conversation_id: 'testing_system_phase3_validation_20251101_120000_abcd1234',
      request_id: 'c0ffee00-1234-4abc-8def-0123456789ab',
      'webhook-id': 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W',
      'webhook-timestamp': '1700000000',
      query: 'What is v1, our plan? See v1,short and whsec_short.',
    });
    expect(maskSecrets(text)).toBe(text);
  });
});
