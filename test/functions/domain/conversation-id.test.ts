import { afterEach, describe, expect, it } from 'vitest';
import {
  buildConversationId,
  CONVERSATION_ID_PATTERN,
  conversationDatePath,
  idPart,
  isConversationId,
  PROCESS_PART_LENGTH,
  randomSuffix,
  SOURCE_PART_LENGTH,
  SUFFIX_LENGTH,
} from '../../../functions/domain/conversation-id.ts';

const SEED_AT = new Date('2025-08-13T10:30:45Z');
const PART = /^[a-z0-9]+$/;

function parts(id: string): string[] {
  return id.split('_');
}

describe('buildConversationId', () => {
  it('reproduces the documented example exactly', () => {
    expect(
      buildConversationId({
        at: SEED_AT,
        sourceSystem: 'testing_system',
        sourceProcess: 'phase3_validation',
        suffix: 'abc123',
      }),
    ).toBe('webhook_20250813_103045_testing_phase3valid_abc123');
  });

  it('cuts the source to 7 and the process to 11 characters after dropping non-alphanumerics', () => {
    const id = buildConversationId({
      at: SEED_AT,
      sourceSystem: 'crm_integration',
      sourceProcess: 'nightly-batch.sync.v2',
      suffix: 's',
    });
    const [, , , source, process] = parts(id);
    expect(source).toBe('crminte');
    expect(source).toHaveLength(SOURCE_PART_LENGTH);
    expect(process).toBe('nightlybatc');
    expect(process).toHaveLength(PROCESS_PART_LENGTH);
  });

  it('keeps short names whole and lowercases them', () => {
    expect(buildConversationId({ at: SEED_AT, sourceSystem: 'CRM', sourceProcess: 'Sync', suffix: 'ABC' })).toBe(
      'webhook_20250813_103045_crm_sync_abc',
    );
  });

  it.each([
    ['+02:00 offset', '2025-08-13T12:30:45+02:00', 'webhook_20250813_103045_'],
    ['-07:00 offset', '2025-08-13T03:30:45-07:00', 'webhook_20250813_103045_'],
    ['offset crossing midnight backwards', '2025-08-14T01:15:00+05:30', 'webhook_20250813_194500_'],
    ['offset crossing midnight forwards', '2025-08-13T22:00:00-04:00', 'webhook_20250814_020000_'],
    ['milliseconds are dropped', '2025-08-13T10:30:45.999Z', 'webhook_20250813_103045_'],
  ])('uses UTC date and time regardless of the input offset (%s)', (_label, iso, prefix) => {
    expect(
      buildConversationId({ at: new Date(iso), sourceSystem: 'a', sourceProcess: 'b', suffix: 'c' }).startsWith(prefix),
    ).toBe(true);
  });

  describe('under a non-UTC process time zone', () => {
    const originalTz = process.env.TZ;
    afterEach(() => {
      if (originalTz === undefined) delete process.env.TZ;
      else process.env.TZ = originalTz;
    });

    it('still formats in UTC', () => {
      process.env.TZ = 'Asia/Kolkata';
      expect(new Date(0).getHours()).toBe(5); // the zone is in effect
      expect(
        buildConversationId({
          at: SEED_AT,
          sourceSystem: 'testing_system',
          sourceProcess: 'phase3_validation',
          suffix: 'abc123',
        }),
      ).toBe('webhook_20250813_103045_testing_phase3valid_abc123');
    });
  });

  const hostile = [
    '../',
    '../../etc/passwd',
    '/',
    '%2F',
    '%2e%2e%2f',
    'a/b\\c',
    '',
    '   ',
    '___',
    'ÄÖÜ',
    'İstanbul',
    'Ｋｅｌｖｉｎ', // full-width letters
    '\u212Aelvin', // Kelvin sign lowercases to ASCII k
    '日本語',
    '🙂🙂',
    'null\u0000byte',
    'new\nline\ttab',
    'UPPER_case-Mixed.123',
    'a'.repeat(10_000),
  ];

  it.each(hostile)('every part is lowercase [a-z0-9] for hostile source %j', (value) => {
    const id = buildConversationId({ at: SEED_AT, sourceSystem: value, sourceProcess: value, suffix: value });
    const [prefix, date, time, source, proc, suffix, ...rest] = parts(id);
    expect(rest).toEqual([]);
    expect(prefix).toBe('webhook');
    expect(date).toBe('20250813');
    expect(time).toBe('103045');
    for (const p of [source, proc, suffix]) expect(p).toMatch(PART);
    expect(source!.length).toBeLessThanOrEqual(SOURCE_PART_LENGTH);
    expect(proc!.length).toBeLessThanOrEqual(PROCESS_PART_LENGTH);
    expect(suffix!.length).toBeLessThanOrEqual(32);
    expect(id).not.toContain('/');
    expect(id).not.toContain('.');
    expect(id).not.toContain('%');
    expect(isConversationId(id)).toBe(true);
  });

  it('substitutes a placeholder for parts that clean to nothing', () => {
    const id = buildConversationId({ at: SEED_AT, sourceSystem: '../', sourceProcess: '', suffix: '%%' });
    expect(id).toBe('webhook_20250813_103045_x_x_x');
  });

  it('generates a random suffix of SUFFIX_LENGTH when none is given', () => {
    const id = buildConversationId({ at: SEED_AT, sourceSystem: 'testing_system', sourceProcess: 'phase3_validation' });
    expect(id).toMatch(new RegExp(`^webhook_20250813_103045_testing_phase3valid_[a-z0-9]{${SUFFIX_LENGTH}}$`));
    expect(isConversationId(id)).toBe(true);
  });

  it('generates 100,000 unique ids for the same second, source and process', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100_000; i++) {
      seen.add(
        buildConversationId({ at: SEED_AT, sourceSystem: 'testing_system', sourceProcess: 'phase3_validation' }),
      );
    }
    expect(seen.size).toBe(100_000);
    for (const id of [...seen].slice(0, 1000)) expect(id).toMatch(CONVERSATION_ID_PATTERN);
  });
});

describe('idPart', () => {
  it('lowercases, strips and cuts', () => {
    expect(idPart('Phase3_Validation', 11)).toBe('phase3valid');
    expect(idPart('ab', 7)).toBe('ab');
    expect(idPart('', 7)).toBe('x');
    expect(idPart('a-b-c-d', 2)).toBe('ab');
  });
});

describe('randomSuffix', () => {
  it('has the requested length and alphabet', () => {
    expect(randomSuffix()).toMatch(/^[a-z0-9]{10}$/);
    expect(randomSuffix(1)).toMatch(/^[a-z0-9]$/);
    expect(randomSuffix(64)).toMatch(/^[a-z0-9]{64}$/);
  });

  it('uses the whole alphabet with no visible bias', () => {
    const counts = new Map<string, number>();
    const text = Array.from({ length: 2000 }, () => randomSuffix(36)).join('');
    for (const ch of text) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    expect(counts.size).toBe(36);
    const expected = text.length / 36; // 2000
    for (const n of counts.values()) {
      expect(n).toBeGreaterThan(expected * 0.85);
      expect(n).toBeLessThan(expected * 1.15);
    }
  });
});

describe('isConversationId / CONVERSATION_ID_PATTERN', () => {
  it.each([
    'webhook_20250813_103045_testing_phase3valid_abc123',
    'webhook_20250813_103045_x_x_x',
    `webhook_20250813_103045_abcdefg_abcdefghijk_${'a'.repeat(32)}`,
  ])('accepts %s', (id) => {
    expect(isConversationId(id)).toBe(true);
  });

  it.each([
    '',
    'webhook_20250813_103045_testing_phase3valid_abc123/',
    'webhook_20250813_103045_testing_phase3valid_../',
    '../webhook_20250813_103045_testing_phase3valid_abc123',
    'webhook_20250813_103045_testing_phase3valid_abc123\n',
    'Webhook_20250813_103045_testing_phase3valid_abc123',
    'webhook_20250813_103045_Testing_phase3valid_abc123',
    'webhook_2025081_103045_testing_phase3valid_abc123',
    'webhook_20250813_10304_testing_phase3valid_abc123',
    'webhook_20250813_103045_testingx_phase3valid_abc123', // source too long
    'webhook_20250813_103045_testing_phase3validx_abc123', // process too long
    `webhook_20250813_103045_testing_phase3valid_${'a'.repeat(33)}`,
    'webhook_20250813_103045_testing_phase3valid',
    'webhook_20250813_103045_testing__abc123',
    'webhook_20250813_103045_test-ng_phase3valid_abc123',
    'webhook_20250813_103045_testing_phase3valid_abc%2F',
  ])('rejects %j', (id) => {
    expect(isConversationId(id)).toBe(false);
  });
});

describe('conversationDatePath', () => {
  it('is the id’s own YYYY/MM/DD', () => {
    expect(conversationDatePath('webhook_20250813_103045_testing_phase3valid_abc123')).toBe('2025/08/13');
    expect(conversationDatePath('webhook_19991231_235959_a_b_c')).toBe('1999/12/31');
  });

  it('follows the UTC date of a built id', () => {
    const id = buildConversationId({
      at: new Date('2025-01-01T01:00:00+03:00'),
      sourceSystem: 'a',
      sourceProcess: 'b',
    });
    expect(conversationDatePath(id)).toBe('2024/12/31');
  });

  it.each(['', 'not-an-id', 'webhook_2025_103045_a_b_c', '../webhook_20250813_103045_a_b_c'])(
    'throws for %j',
    (value) => {
      expect(() => conversationDatePath(value)).toThrow(/not a conversation id/);
    },
  );
});
