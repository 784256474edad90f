import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { parseApiKeySources } from '../../../functions/domain/source-identity.ts';
import { parseApiKeys, requestApiKey } from '../../../local/server/api-keys.ts';

const KEY = 'x'.repeat(20);
const request = (headers: Record<string, string | string[]>) => ({ headers }) as unknown as IncomingMessage;

describe('API_KEYS: the local per-source API keys', () => {
  it('are read by canonical source; the handlers get ids and sources only, in the SOURCE_API_KEY_IDS form', () => {
    const keys = parseApiKeys(JSON.stringify({ 'CRM.Sync': KEY, testing_system: `${KEY}y` }));
    expect(keys.required).toBe(true);
    expect(keys.match(KEY)).toEqual({ id: 'local-key-crm_sync', source: 'crm_sync' });
    expect(keys.match(`${KEY}y`)).toEqual({ id: 'local-key-testing_system', source: 'testing_system' });
    expect(keys.match(`${KEY}z`)).toBeNull();
    expect(keys.match(KEY.slice(1))).toBeNull();
    expect(keys.sourceApiKeyIds).not.toContain(KEY);
    expect(parseApiKeySources(keys.sourceApiKeyIds)).toEqual({
      'local-key-crm_sync': 'crm_sync',
      'local-key-testing_system': 'testing_system',
    });
  });

  it('refuses what is not a JSON object of source → key, a short key, one key for two sources, two spellings', () => {
    expect(() => parseApiKeys('["k"]')).toThrow(/API_KEYS must be a JSON object/);
    expect(() => parseApiKeys('{nope')).toThrow(/API_KEYS must be a JSON object/);
    expect(() => parseApiKeys('{"a": "short"}')).toThrow(/API_KEYS\.a: the key must be a string of at least 20/);
    expect(() => parseApiKeys(JSON.stringify({ a: KEY, b: KEY }))).toThrow(/API_KEYS\.b: the key is another source's/);
    expect(() => parseApiKeys(JSON.stringify({ crm_sync: KEY, 'CRM.Sync': `${KEY}y` }))).toThrow(/same source/);
  });

  it('none configured: no key needed, none passed on', () => {
    for (const raw of [undefined, '', ' ']) {
      const keys = parseApiKeys(raw);
      expect(keys.required).toBe(false);
      expect(requestApiKey(keys, request({ 'x-api-key': KEY }))).toEqual({});
    }
    expect(requestApiKey(undefined, request({}))).toEqual({});
  });

  it("a request's x-api-key: its id and source, or null (403 INVALID_API_KEY) when missing or unknown", () => {
    const keys = parseApiKeys(JSON.stringify({ testing_system: KEY }));
    expect(requestApiKey(keys, request({ 'x-api-key': KEY }))).toEqual({
      id: 'local-key-testing_system',
      source: 'testing_system',
    });
    expect(requestApiKey(keys, request({}))).toBeNull();
    expect(requestApiKey(keys, request({ 'x-api-key': 'y'.repeat(20) }))).toBeNull();
  });
});
