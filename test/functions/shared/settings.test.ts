import { describe, expect, it } from 'vitest';
import { DELIVERY_URL_VARIABLES } from '../../../functions/domain/delivery.ts';
import { DEFAULT_RETRY_SCHEDULE_MS } from '../../../functions/domain/failed-delivery.ts';
import { DEFAULTS, SettingsError, settings } from '../../../functions/shared/settings.ts';

describe('settings', () => {
  it('gives every documented default when nothing is set', () => {
    expect(settings({})).toEqual({
      exportBucket: undefined,
      exportEnabled: true,
      agentFunctionName: 'revops-manager-agent-wrapper',
      agentTimeoutMs: 20_000,
      asyncAgentTimeoutMs: 120_000,
      deliveryUrls: { deal_analysis: null, data_analysis: null, lead_analysis: null, general: null },
      deliveryTimeoutMs: 3_000,
      responseTimeoutMs: 29_000,
      redeliverySchedule: DEFAULT_RETRY_SCHEDULE_MS,
      requireSignedWebhooks: false,
      idempotencyTtlSeconds: 86_400,
      idempotencyTableName: undefined,
      idempotencyDir: undefined,
      statusTableName: undefined,
      statusDir: undefined,
      apiKeySources: {},
      s3ForcePathStyle: false,
      threadTableName: undefined,
      threadDir: undefined,
      threadTtlDays: 30,
      deliveriesTableName: undefined,
      deliveriesDir: undefined,
      deliverySigningSecretsFile: undefined,
      breaker: { failureThreshold: 5, disableAfterMs: 5 * 86_400_000 },
      attemptLogRetentionDays: 90,
    });
    expect(DEFAULTS.exportBucket).toBe('revops-conversations');
    expect(DEFAULTS.stackName).toBe('WebhookConversationGateway');
  });

  it('SOURCE_API_KEY_IDS: each API key id → its source, canonical; anything else is refused with the name', () => {
    expect(settings({ SOURCE_API_KEY_IDS: '{"a1b2c3": "Testing.System"}' }).apiKeySources).toEqual({
      a1b2c3: 'testing_system',
    });
    expect(() => settings({ SOURCE_API_KEY_IDS: '{"k": "../x"}' })).toThrow(/SOURCE_API_KEY_IDS\.k/);
    expect(() => settings({ SOURCE_API_KEY_IDS: '[1]' })).toThrow(/SOURCE_API_KEY_IDS must be a JSON object/);
  });

  it('reads each variable, and an empty one counts as unset', () => {
    const read = settings({
      CONVERSATION_EXPORT_S3_BUCKET: 'exports',
      ENABLE_CONVERSATION_EXPORT: 'FALSE',
      MANAGER_AGENT_TIMEOUT_MS: '1500',
      RESPONSE_TIMEOUT_MS: '',
      REDELIVERY_SCHEDULE: '1s,2m',
      REQUIRE_SIGNED_WEBHOOKS: 'true',
      ENDPOINT_FAILURE_THRESHOLD: '3',
      ENDPOINT_DISABLE_AFTER_DAYS: '0',
    });
    expect(read).toMatchObject({
      breaker: { failureThreshold: 3, disableAfterMs: 0 },
      exportBucket: 'exports',
      exportEnabled: false,
      agentTimeoutMs: 1500,
      responseTimeoutMs: 29_000,
      redeliverySchedule: [1000, 120_000],
      requireSignedWebhooks: true,
    });
  });

  it('maps each type to its documented environment variable', () => {
    expect(DELIVERY_URL_VARIABLES).toEqual({
      deal_analysis: 'DEAL_ANALYSIS_WEBHOOK_URL',
      data_analysis: 'DATA_ANALYSIS_WEBHOOK_URL',
      lead_analysis: 'LEAD_ANALYSIS_WEBHOOK_URL',
      general: 'GENERAL_WEBHOOK_URL',
    });
    const env = { DEAL_ANALYSIS_WEBHOOK_URL: ' https://d.example/ ', GENERAL_WEBHOOK_URL: 'https://g.example/' };
    expect(settings(env).deliveryUrls).toMatchObject({
      deal_analysis: 'https://d.example/',
      general: 'https://g.example/',
      lead_analysis: null,
    });
    expect(settings({ DATA_ANALYSIS_WEBHOOK_URL: '   ' }).deliveryUrls.data_analysis).toBeNull();
  });

  it('keeps its last read while the variables are unchanged, and sees a variable changed, unset or made bad', () => {
    const env: Record<string, string | undefined> = { DELIVERY_TIMEOUT_MS: '1500' };
    const first = settings(env);
    expect(settings(env)).toBe(first);
    expect(settings({ ...env })).toBe(first);
    expect(Object.isFrozen(first) && Object.isFrozen(first.breaker) && Object.isFrozen(first.deliveryUrls)).toBe(true);
    env.DELIVERY_TIMEOUT_MS = '2500';
    expect(settings(env).deliveryTimeoutMs).toBe(2500);
    env.GENERAL_WEBHOOK_URL = 'https://g.example/';
    expect(settings(env).deliveryUrls.general).toBe('https://g.example/');
    env.DELIVERY_TIMEOUT_MS = 'soon';
    expect(() => settings(env)).toThrow('DELIVERY_TIMEOUT_MS must be a positive whole number, got "soon"');
    expect(() => settings(env)).toThrow(SettingsError);
    delete env.DELIVERY_TIMEOUT_MS;
    expect(settings(env).deliveryTimeoutMs).toBe(DEFAULTS.deliveryTimeoutMs);
    const before = process.env.ENDPOINT_FAILURE_THRESHOLD;
    try {
      process.env.ENDPOINT_FAILURE_THRESHOLD = '7';
      expect(settings().breaker.failureThreshold).toBe(7);
      process.env.ENDPOINT_FAILURE_THRESHOLD = '8';
      expect(settings().breaker.failureThreshold).toBe(8);
    } finally {
      if (before === undefined) delete process.env.ENDPOINT_FAILURE_THRESHOLD;
      else process.env.ENDPOINT_FAILURE_THRESHOLD = before;
    }
  });

  it.each([
    ['MANAGER_AGENT_TIMEOUT_MS', '20s', 'MANAGER_AGENT_TIMEOUT_MS must be a positive whole number, got "20s"'],
    ['DELIVERY_TIMEOUT_MS', '0', 'DELIVERY_TIMEOUT_MS must be a positive whole number, got "0"'],
    ['ENABLE_CONVERSATION_EXPORT', 'no', 'ENABLE_CONVERSATION_EXPORT must be true or false, got "no"'],
    ['REDELIVERY_SCHEDULE', '5s,soon', 'REDELIVERY_SCHEDULE: "soon" is not a duration'],
  ])('refuses a bad %s with its name', (name, value, message) => {
    expect(() => settings({ [name]: value })).toThrow(SettingsError);
    expect(() => settings({ [name]: value })).toThrow(message);
  });
});
