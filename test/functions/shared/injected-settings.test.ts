import { describe, expect, it } from 'vitest';
import { injectClientSettings, injectedSettings } from '../../../functions/shared/clients/injected-settings.ts';

/** A host injects client settings before the handlers load; too late is an error, not a silently ignored setting. */
describe('injected client settings', () => {
  it('are what the client module gets; nothing injected is no settings (Lambda)', () => {
    const settings = { requestHandler: { handle: async () => ({}) } };
    injectClientSettings('s3', settings);
    expect(injectedSettings('s3')).toBe(settings);
  });

  it('once the client is built, the same settings again are fine and different ones are refused', () => {
    const built = injectedSettings('s3');
    expect(() => injectClientSettings('s3', built)).not.toThrow();
    expect(() => injectClientSettings('s3', { other: true })).toThrow(
      /already built: inject its settings before the handlers are loaded/,
    );
  });
});
